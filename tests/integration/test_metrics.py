"""GET /metrics on a populated controller: `promtool check metrics` accepts the body; the
node, VM, tenant (configured tenants only), request, ingestion and queue series are there
with the expected values; refusals without a token (401) and with a tenant token (403); an
observer reads it; an allow-listed address reads it without a token when configured."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from harness import Controller, Failure, run  # noqa: E402


def must(r, status, what):
    if r.status != status:
        raise Failure(f"setup {what}: expected {status}, got {r!r}")
    return r.json


def series(body):
    """{(name, frozenset(labels)): value} of every sample line."""
    out = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        if not m:
            raise Failure(f"unparsable sample line {line!r}")
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                      m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def get(s, name, **labels):
    return s.get((name, frozenset(labels.items())))


def main(res):
    promtool = shutil.which("promtool")
    tmp = tempfile.mkdtemp(prefix="mu-met-")
    ctl = Controller()
    try:
        ctl.start()
        tenants = populate(ctl)
        ctl.stop()
        # Restart with per-tenant series for one tenant and an allow-listed address.
        cfg = os.path.join(tmp, "mutualisd.json")
        with open(cfg, "w") as f:
            json.dump({"metrics_tenants": [tenants["Commune \"A\""]],
                       "metrics_allow": ["127.0.0.1"]}, f)
        ctl.extra_args = ["--config", cfg]
        ctl.start()
        scenario(ctl, res, tenants, promtool, allow=True)
        ctl.stop()
        # Default: token only, no tenant series.
        ctl.extra_args = []
        ctl.start()
        scenario(ctl, res, tenants, promtool, allow=False)
    finally:
        rc = ctl.stop()
        res.check(rc == 0, f"mutualisd exited cleanly ({rc})")
        ctl.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def populate(ctl):
    rq = ctl.request
    for name in ("met-a", "met-b"):
        must(rq("POST", "/v1/nodes", {"name": name, "uri": "test:///default",
                                      "pool": "default-pool"}), 201, "node")
    S = must(rq("POST", "/v1/tenants", {"name": "Syndicat", "kind": "syndicat"}), 201, "s")["id"]
    A = must(rq("POST", "/v1/tenants", {"name": "Commune \"A\"", "kind": "other",
                                        "parent_id": S}), 201, "a")["id"]
    for t in (S, A):
        must(rq("PUT", f"/v1/tenants/{t}/quota", {"vcpus": 40, "ram_mib": "unlimited",
                                                  "disk_gib": "unlimited", "vms": 10}),
             200, "quota")
    must(rq("POST", "/v1/flavors", {"name": "small", "vcpus": 2, "ram_mib": 256,
                                    "disk_gib": 3}), 201, "flavor")
    data = b"\0" * 4096
    iid = must(rq("POST", "/v1/images", {"name": "img", "format": "raw",
                                         "sha256": hashlib.sha256(data).hexdigest()}), 201,
               "image")["id"]
    must(rq("PUT", f"/v1/images/{iid}/data", raw=data,
            headers={"Content-Type": "application/octet-stream"}), 200, "upload")
    for i in range(3):
        must(rq("POST", "/v1/vms", {"tenant_id": A, "name": f"m{i}", "flavor": "small",
                                    "image_id": iid}), 202, "vm")
    return {"Syndicat": S, "Commune \"A\"": A}


def scenario(ctl, res, tenants, promtool, allow):
    rq = ctl.request
    tag = "allow-list" if allow else "default"
    # a tenant reader and an observer
    u = must(rq("POST", "/v1/users", {"name": f"reader-{tag}", "role": "tenant-reader",
                                      "tenant_id": tenants["Syndicat"]}), 201, "user")["id"]
    reader = must(rq("POST", "/v1/tokens", {"name": f"t-{tag}", "user_id": u}), 201, "tok")
    o = must(rq("POST", "/v1/users", {"name": f"obs-{tag}", "role": "observer"}), 201,
             "user")["id"]
    obs = must(rq("POST", "/v1/tokens", {"name": f"o-{tag}", "user_id": o}), 201, "tok")
    rq("GET", "/v1/nodes/999999")  # a 404 to count
    must(rq("GET", "/v1/nodes"), 200, "nodes")  # a 2xx to count

    # A request is counted when libmicrohttpd reports it complete, just after its last byte
    # left: the next request (on another connection thread) may come first. Read /metrics
    # until both requests above are counted (bounded), then check that answer.
    for _ in range(100):
        r = rq("GET", "/metrics")
        if r.status != 200:
            break
        s0 = series(r.body)
        if (get(s0, "mutualis_http_requests_total", route="/v1/nodes", method="GET",
                status_class="2xx") and
                get(s0, "mutualis_http_requests_total", route="/v1/nodes/{id}", method="GET",
                    status_class="4xx")):
            break
        time.sleep(0.05)
    res.check(r.status == 200 and
              r.headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
              f"[{tag}] operator reads /metrics as text 0.0.4 ({r.status}, "
              f"{r.headers.get('content-type')})")
    body = r.body
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=body.encode(),
                           capture_output=True, timeout=60)
        res.check(p.returncode == 0, f"[{tag}] promtool check metrics passes "
                                     f"({(p.stdout + p.stderr).decode()[:500]})")
    else:
        print("SKIP promtool not found: install the Debian package prometheus "
              "(scripts/install-deps.sh test) to check the format")
    s = series(body)
    nodes = {n["name"]: n for n in must(rq("GET", "/v1/nodes"), 200, "nodes")["items"]}
    ok = True
    for name, n in nodes.items():
        c = n["capacity"]
        want = {"vcpus": c["cpus"], "ram_mib": c["memory_mib"], "disk_gib": c["disk_gib"]}
        for res_name, v in want.items():
            ok &= get(s, "mutualis_node_capacity", node=name, resource=res_name) == v
            ok &= get(s, "mutualis_node_allocated", node=name,
                      resource=res_name) == n["allocated"][res_name]
        # default policy: cpu ×4, ram ×1 minus 1024 MiB reserved, disk ×1
        ok &= get(s, "mutualis_node_allocatable", node=name, resource="vcpus") == c["cpus"] * 4
        ok &= get(s, "mutualis_node_allocatable", node=name,
                  resource="ram_mib") == c["memory_mib"] - 1024
        ok &= get(s, "mutualis_node_state", node=name, state=n["state"]) == 1
        ok &= get(s, "mutualis_node_state", node=name, state="draining") == 0
        ok &= get(s, "mutualis_node_health", node=name, health=n["health"]) == 1
        ok &= get(s, "mutualis_node_used", node=name, resource="ram_mib") is None
    res.check(ok, f"[{tag}] node capacity, allocatable, allocated, state and health series")
    vms = sum(v for (nm, _), v in s.items() if nm == "mutualis_vms")
    res.check(vms == 3, f"[{tag}] mutualis_vms adds up to the 3 VMs ({vms})")
    req_ok = get(s, "mutualis_http_requests_total", route="/v1/nodes", method="GET",
                 status_class="2xx")
    req_404 = get(s, "mutualis_http_requests_total", route="/v1/nodes/{id}", method="GET",
                  status_class="4xx")
    res.check(req_ok and req_ok >= 1 and req_404 and req_404 >= 1,
              f"[{tag}] request counters by route pattern ({req_ok}, {req_404})")
    cnt = get(s, "mutualis_http_request_duration_seconds_count", route="/v1/nodes")
    inf = get(s, "mutualis_http_request_duration_seconds_bucket", route="/v1/nodes", le="+Inf")
    res.check(cnt is not None and cnt == inf and cnt >= 1, f"[{tag}] latency histogram")
    res.check(get(s, "mutualis_operations_pending") is not None and
              get(s, "mutualis_report_ingest_reports_total", outcome="stored") == 0,
              f"[{tag}] operations queue and ingestion counters")
    A = str(tenants["Commune \"A\""])
    ta = get(s, "mutualis_tenant_allocated", tenant='Commune \\"A\\"', tenant_id=A,
             resource="vcpus")
    tl = get(s, "mutualis_tenant_limit", tenant='Commune \\"A\\"', tenant_id=A, resource="vcpus")
    if allow:
        res.check(ta == 6 and tl == 40 and
                  get(s, "mutualis_tenant_limit", tenant='Commune \\"A\\"', tenant_id=A,
                      resource="ram_mib") is None,
                  f"[{tag}] configured tenant's allocation and limit, label escaped ({ta}, {tl})")
        res.check(not any(nm == "mutualis_tenant_allocated" and ("tenant_id", str(
            tenants["Syndicat"])) in lb for (nm, lb) in s),
            f"[{tag}] no series for tenants not configured")
    else:
        res.check(ta is None and not any(nm.startswith("mutualis_tenant_") for nm, _ in s),
                  f"[{tag}] no tenant series by default")

    r = rq("GET", "/metrics", token=obs["secret"])
    res.check(r.status == 200, f"[{tag}] observer reads /metrics ({r.status})")
    r = rq("GET", "/metrics", token=reader["secret"])
    res.check(r.status == 403, f"[{tag}] tenant token: 403 ({r.status})")
    r = rq("GET", "/metrics", token="mu_bogus")
    res.check(r.status == 401, f"[{tag}] bad token: 401 even from an allowed address "
                               f"({r.status})")
    r = rq("GET", "/metrics", token=None)
    if allow:
        res.check(r.status == 200 and "mutualis_node_capacity" in r.body,
                  f"[{tag}] allow-listed address reads without a token ({r.status})")
    else:
        res.check(r.status == 401, f"[{tag}] no token: 401 ({r.status})")


if __name__ == "__main__":
    sys.exit(run(main))
