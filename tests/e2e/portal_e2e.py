"""Browser tests of the portal: starts a real mutualisd (tests/integration/harness.py),
fills it through the API (two nodes on libvirt's test driver, a syndicat > EPCI > two
communes tree, flavors, an image, VMs in both communes, an operator and a commune's
tenant-admin with passwords, catalogue requests when the controller has that API), then
runs tests/e2e/portal.mjs in Debian's chromium for one scenario:

  dashboard  the operator logs in through the form; the dashboard at 1280x800 and 390x844
             (gauges, per-node bars, headroom, N+1, alerts, pending requests, forecast),
             English switch, logout; no console error; no serious/critical axe violation.
  commune    the commune's tenant-admin: catalogue, requests, VMs and quota render, the
             other commune's VM and requests do not, a VM action goes through (CSRF token),
             the request form; at 1280x800 and 360 px; same console and axe rules.

Screenshots go to <build>/e2e-artifacts/<scenario>/ (their paths are printed).
Skips (exit 77) only when chromium or tests/e2e/node_modules is missing and
MU_REQUIRE_E2E is not set; with MU_REQUIRE_E2E=1 a missing piece is a failure.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import BIN, Controller, Failure  # noqa: E402

CHROMIUM = os.environ.get("MU_E2E_CHROMIUM", "/usr/bin/chromium")
PW = "correct horse battery staple"


def must(r, status, what):
    if r.status != status:
        raise Failure(f"setup {what}: expected {status}, got {r!r}")
    return r.json


def prerequisites():
    missing = []
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append(CHROMIUM)
    if not shutil.which("node"):
        missing.append("node")
    for mod in ("playwright-core", "axe-core"):
        if not os.path.isdir(os.path.join(HERE, "node_modules", mod)):
            missing.append(f"tests/e2e/node_modules/{mod} (run: npm ci in tests/e2e)")
    return missing


def sample_params(item):
    """Valid values for an item's typed parameters."""
    out = {}
    for p in item.get("parameters", []):
        if not p.get("required"):
            continue
        t = p.get("type")
        if t == "domain":
            out[p["name"]] = "mairie-test.fr"
        elif t == "email":
            out[p["name"]] = "secretariat@mairie-test.fr"
        elif t == "integer":
            out[p["name"]] = p.get("min", 1)
        elif t == "enum":
            out[p["name"]] = p["choices"][0]
        else:
            out[p["name"]] = "test"
    return out


def populate(ctl):
    rq = ctl.request
    routes = sorted({path for path in must(rq("GET", "/v1/openapi.json", token=None), 200,
                                           "openapi")["paths"]})
    nodes = []
    for name in ("noeud-a", "noeud-b"):
        must(rq("POST", "/v1/nodes", {"name": name, "uri": "test:///default",
                                      "pool": "default-pool"}), 201, "node")
        nodes.append(name)
    S = must(rq("POST", "/v1/tenants", {"name": "Syndicat Numérique Test", "kind": "syndicat"}),
             201, "syndicat")["id"]
    E = must(rq("POST", "/v1/tenants", {"name": "CC du Val Test", "kind": "epci",
                                        "epci_form": "CC", "parent_id": S}), 201, "epci")["id"]
    C1 = must(rq("POST", "/v1/tenants", {"name": "Commune de Testville", "kind": "commune",
                                         "insee": "01001", "parent_id": E}), 201, "c1")["id"]
    C2 = must(rq("POST", "/v1/tenants", {"name": "Commune Voisine", "kind": "commune",
                                         "insee": "01002", "parent_id": E}), 201, "c2")["id"]
    for t in (S, E):
        must(rq("PUT", f"/v1/tenants/{t}/quota", {"vcpus": "unlimited", "ram_mib": "unlimited",
                                                  "disk_gib": "unlimited", "vms": "unlimited"}),
             200, "quota")
    for t in (C1, C2):
        must(rq("PUT", f"/v1/tenants/{t}/quota", {"vcpus": 8, "ram_mib": 8192, "disk_gib": 100,
                                                  "vms": 10}), 200, "quota")
    flavors = [("tiny", 1, 64, 1), ("small", 1, 128, 2), ("medium", 2, 256, 4)]
    for name, c, m, d in flavors:
        must(rq("POST", "/v1/flavors", {"name": name, "vcpus": c, "ram_mib": m, "disk_gib": d}),
             201, "flavor")
    data = b"\0" * 4096
    img = must(rq("POST", "/v1/images", {"name": "debian-12-web", "format": "raw",
                                         "sha256": hashlib.sha256(data).hexdigest()}), 201,
               "image")["id"]
    must(rq("PUT", f"/v1/images/{img}/data", raw=data,
            headers={"Content-Type": "application/octet-stream"}), 200, "upload")
    ops = []
    for tenant, name, flavor in ((C1, "mairie-web", "small"), (C1, "mairie-archives", "tiny"),
                                 (C2, "voisine-web", "medium")):
        j = must(rq("POST", "/v1/vms", {"tenant_id": tenant, "name": name, "flavor": flavor,
                                        "image_id": img}), 202, "vm")
        ops.append(j["operation"]["id"])
    end = time.time() + 60
    for op in ops:
        while True:
            j = must(rq("GET", f"/v1/operations/{op}"), 200, "operation")
            if j["state"] in ("succeeded", "failed"):
                break
            if time.time() > end:
                raise Failure(f"setup: operation {op} did not finish")
            time.sleep(0.05)
    must(rq("POST", "/v1/users", {"name": "exploitant", "role": "operator", "password": PW}),
         201, "operator user")
    must(rq("POST", "/v1/users", {"name": "secretaire", "role": "tenant-admin", "tenant_id": C1,
                                  "password": PW}), 201, "tenant-admin user")

    expect = {"routes": routes, "nodes": nodes, "flavors": [f[0] for f in flavors],
              "own_vms": ["mairie-web", "mairie-archives"],
              "foreign": ["voisine-web", "Commune Voisine"],
              "quota_levels": ["Commune de Testville", "CC du Val Test", "Syndicat Numérique Test"],
              "catalogue": [], "catalogue_ids": [], "requests_api": "/v1/requests" in routes,
              "own_requests": [], "foreign_requests": []}
    if "/v1/catalog" in routes:
        cat = rq("GET", "/v1/catalog")
        if cat.status == 200 and cat.json and cat.json.get("items"):
            items = cat.json["items"]
            expect["catalogue"] = [i["name"]["fr"] for i in items]
            expect["catalogue_ids"] = [i["id"] for i in items]
            # The form test: an item with a required domain parameter, and valid values.
            for it in items:
                dom = [p["name"] for p in it.get("parameters", [])
                       if p.get("type") == "domain" and p.get("required")]
                if dom:
                    expect["form"] = {"item": it["id"], "domain": dom[0],
                                      "values": sample_params(it)}
                    break
            if expect["requests_api"]:
                it = items[0]
                for tenant, key in ((C1, "own_requests"), (C2, "foreign_requests")):
                    r = rq("POST", "/v1/requests", {"tenant_id": tenant, "item": it["id"],
                                                    "flavor": it["flavors"][0],
                                                    "parameters": sample_params(it),
                                                    "justification": "Test de bout en bout"})
                    if r.status == 201:
                        expect[key].append(r.json["id"])
                    else:
                        print(f"     note: request for {it['id']} refused: {r!r}")
    expect["pending"] = expect["own_requests"] + expect["foreign_requests"]
    return expect


def main():
    scenario = sys.argv[1] if len(sys.argv) > 1 else "dashboard"
    missing = prerequisites()
    if missing:
        if os.environ.get("MU_REQUIRE_E2E"):
            print(f"FAIL browser test prerequisites missing: {', '.join(missing)}")
            print("0 passed, 1 failed")
            return 1
        print(f"skipped: browser test prerequisites missing: {', '.join(missing)}")
        return 77
    out = os.path.join(os.path.abspath(BIN), "e2e-artifacts", scenario)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    ctl = Controller().start()
    try:
        try:
            expect = populate(ctl)
        except Failure as e:
            print(f"FAIL {e.args[0] if e.args else 'setup'}")
            print("0 passed, 1 failed")
            return 1
        user = "exploitant" if scenario == "dashboard" else "secretaire"
        env = dict(os.environ, MU_E2E_URL=ctl.url, MU_E2E_SCENARIO=scenario, MU_E2E_USER=user,
                   MU_E2E_PASSWORD=PW, MU_E2E_OUT=out, MU_E2E_EXPECT=json.dumps(expect),
                   MU_E2E_CHROMIUM=CHROMIUM)
        try:
            p = subprocess.run(["node", os.path.join(HERE, "portal.mjs")], env=env, cwd=HERE,
                               capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired as e:
            print(e.stdout or "")
            print("FAIL the browser test did not finish in 300 s")
            print("0 passed, 1 failed")
            return 1
        sys.stdout.write(p.stdout)
        if p.stderr.strip():
            sys.stdout.write("stderr: " + p.stderr[-3000:] + "\n")
        print(f"     artefacts in {out}")
        rc = ctl.stop()
        if rc != 0:
            print(f"FAIL mutualisd exited with {rc}")
            return 1
        return 0 if p.returncode == 0 else 1
    finally:
        ctl.cleanup()


if __name__ == "__main__":
    sys.exit(main())
