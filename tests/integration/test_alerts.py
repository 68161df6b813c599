"""Alerts on a real mutualisd (alerts every 100 ms, hold times of a few seconds from a
policies directory of the test's own), on a node of libvirt's test driver:

- a tenant's quota flapping above 90 % for less than for_s at a time never fires (the log
  shows each hold starting and ending), for longer in total than for_s;
- held for good, tenant_quota_high fires no earlier than for_s after the change that
  caused it, and resolves no earlier than resolve_after_s after the change that cleared it
  (judged from the recorded times: the quota change's audit entry, the alert's pending,
  since and resolved times, the alert's own audit entries), visible in GET /v1/alerts
  (firing, resolved, all; bad ?state refused), in the audit trail, and in /metrics;
- the cluster filled past 85 % of its memory fires allocation_high, and resolves once the
  VM is gone;
- a node whose agent stops reporting is late (reports_late, at once past late_s), then
  down, and node_down fires after for_s; its
  reports back, the alert resolves after resolve_after_s;
- a bad alerts.json is refused on SIGHUP with file, line and column, and the policy in
  force stays (the rule it would have disabled still fires);
- firing and resolved alerts reach the operators' webhook (the root tenant's, filtered to
  "alert." events) over HTTPS, signed, with their event ids."""
import calendar
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import agentlib as A  # noqa: E402
from harness import Controller, Failure, SRC, cli, run  # noqa: E402
from webhook_receiver import Receiver, make_pki  # noqa: E402

FOR_S, RESOLVE_S = 2, 2


def must(r, status, what):
    if r.status != status:
        raise Failure(f"setup {what}: expected {status}, got {r!r}")
    return r.json


def wait_for(what, cond, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise Failure(f"timed out waiting for {what}")


def ms(rfc3339):
    """RFC 3339 UTC with milliseconds -> epoch ms."""
    base, frac = rfc3339.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(frac[:3])


def policy(disable_quota_rule=False, broken=False):
    rules = {
        "node_down": {"enabled": True, "severity": "critical", "for_s": FOR_S,
                      "resolve_after_s": RESOLVE_S},
        "n_plus_1_lost": {"enabled": False},
        "reports_late": {"enabled": True, "late_s": 1, "for_s": 0, "resolve_after_s": 0},
        "cert_expiring": {"enabled": False},
        "operations_failing": {"enabled": False},
        "tenant_quota_high": {"enabled": not disable_quota_rule, "severity": "warning",
                              "threshold_percent": 90, "for_s": FOR_S,
                              "resolve_after_s": RESOLVE_S},
        "allocation_high": {"enabled": True, "severity": "critical", "threshold_percent": 85,
                            "for_s": FOR_S, "resolve_after_s": RESOLVE_S},
    }
    text = json.dumps({"version": 1, "rules": rules}, indent=2)
    if broken:  # a typo on line 4, column 5 (the first rule's key)
        text = text.replace('"node_down"', '"node_dwn"', 1)
    return text


def main(res):
    tmp = tempfile.mkdtemp(prefix="mu-alerts-")
    pol = os.path.join(tmp, "policies")
    shutil.copytree(os.path.join(SRC, "policies"), pol)
    with open(os.path.join(pol, "alerts.json"), "w") as f:
        f.write(policy())
    ca, cert, key = make_pki(tmp)
    hook = Receiver(cert, key, script=(200,))
    cfg = os.path.join(tmp, "mutualisd.json")
    with open(cfg, "w") as f:
        json.dump({"alerts_interval_ms": 100, "capacity_interval_s": 1, "report_interval_s": 1,
                   "webhook_allow": ["127.0.0.1/32"], "webhook_ca_file": ca,
                   "webhook_retry_base_ms": 200}, f)
    ctl = Controller(policies=pol, extra_args=["--config", cfg]).start()
    try:
        scenario(ctl, res, pol, hook)
    finally:
        hook.close()
        rc = ctl.stop()
        res.check(rc == 0, f"mutualisd exited cleanly ({rc})")
        ctl.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def audit(ctl, target, action=None):
    items = must(ctl.request("GET", "/v1/audit?limit=1000"), 200, "audit")["items"]
    return [e for e in items if e["target"] == target and (action is None or e["action"] == action)]


def alerts(ctl, state="all"):
    return must(ctl.request("GET", f"/v1/alerts?state={state}&limit=1000"), 200,
                "alerts")["items"]


def find(ctl, rule, subject, state):
    return [a for a in alerts(ctl, state) if a["rule"] == rule and a["subject"] == subject]


def set_vcpus(ctl, tenant, vcpus):
    must(ctl.request("PUT", f"/v1/tenants/{tenant}/quota",
                     {"vcpus": vcpus, "ram_mib": "unlimited", "disk_gib": "unlimited",
                      "vms": "unlimited"}), 200, "quota")
    # the time the change committed, as the audit trail recorded it
    return ms(audit(ctl, f"tenant/{tenant}/quota", "quota.update")[-1]["time"])


def scenario(ctl, res, pol, hook):
    rq = ctl.request
    must(rq("POST", "/v1/nodes", {"name": "al-a", "uri": "test:///default",
                                  "pool": "default-pool"}), 201, "node")
    S = must(rq("POST", "/v1/tenants", {"name": "Syndicat", "kind": "syndicat"}), 201, "s")["id"]
    # The operators' webhook: the root tenant's, alert events only.
    hook.secret = must(rq("PUT", f"/v1/tenants/{S}/webhook",
                          {"url": hook.url(), "types": ["alert."]}), 201, "webhook")["secret"]
    C = must(rq("POST", "/v1/tenants", {"name": "Commune", "kind": "other", "parent_id": S}),
             201, "c")["id"]
    for t in (S, C):
        must(rq("PUT", f"/v1/tenants/{t}/quota", {"vcpus": "unlimited", "ram_mib": "unlimited",
                                                  "disk_gib": "unlimited", "vms": "unlimited"}),
             200, "quota")
    data = b"\0" * 4096
    iid = must(rq("POST", "/v1/images", {"name": "img", "format": "raw",
                                         "sha256": hashlib.sha256(data).hexdigest()}), 201,
               "image")["id"]
    must(rq("PUT", f"/v1/images/{iid}/data", raw=data,
            headers={"Content-Type": "application/octet-stream"}), 200, "upload")
    must(rq("POST", "/v1/flavors", {"name": "one", "vcpus": 1, "ram_mib": 64, "disk_gib": 1}),
         201, "flavor")
    wait_for("the node to be up", lambda: must(rq("GET", "/v1/nodes"), 200, "nodes")["items"][0]
             ["health"] == "up")
    must(rq("POST", "/v1/vms", {"tenant_id": C, "name": "v1", "flavor": "one", "image_id": iid}),
         202, "vm")

    res.check(alerts(ctl) == [], "no alert on a quiet cluster")
    r = rq("GET", "/v1/alerts?state=burning")
    res.check(r.status == 400 and "firing, resolved or all" in r.json.get("detail", ""),
              "?state outside firing|resolved|all is refused with a detail")

    # --- flapping: 1 vCPU used of a 1-vCPU quota (100 % > 90 %) for ~1 s at a time -----
    subject = f"tenant-{C}"
    t_start = time.time()
    for _ in range(4):
        set_vcpus(ctl, C, 1)
        time.sleep(FOR_S / 2)
        set_vcpus(ctl, C, "unlimited")
        time.sleep(0.5)
    flapped = time.time() - t_start
    log = ctl.read_log()
    holds = log.count(f"alert hold started rule=tenant_quota_high subject={subject}")
    ends = log.count(f"alert hold ended before firing rule=tenant_quota_high subject={subject}")
    res.check(flapped > FOR_S and holds >= 3 and ends >= 3,
              f"the evaluator saw the condition come and go ({holds} holds, {ends} ended) "
              f"over {flapped:.1f} s")
    res.check(find(ctl, "tenant_quota_high", subject, "all") == [] and
              audit(ctl, f"alert/tenant_quota_high/{subject}") == [],
              f"a condition shorter than for_s ({FOR_S} s) never fires, however often")

    # --- held: fires after for_s, resolves after resolve_after_s -------------------------
    t_on = set_vcpus(ctl, C, 1)
    a = wait_for("tenant_quota_high to fire",
                 lambda: find(ctl, "tenant_quota_high", subject, "firing"))[0]
    res.check(a["severity"] == "warning" and "above 90% of its quota" in a["detail"] and
              "vCPU 1 of 1" in a["detail"], f"the alert says what and how much ({a['detail']})")
    res.check(a["pending_ms"] >= t_on and a["since_ms"] - a["pending_ms"] >= FOR_S * 1000,
              f"fired {a['since_ms'] - t_on} ms after the change, held "
              f"{a['since_ms'] - a['pending_ms']} ms >= for_s")
    fire = audit(ctl, f"alert/tenant_quota_high/{subject}", "alert.fire")
    res.check(len(fire) == 1 and fire[0]["actor"] == "mutualisd" and
              ms(fire[0]["time"]) >= a["since_ms"],
              "the firing is in the audit trail, once, by mutualisd")
    text = rq("GET", "/metrics").body
    res.check('mutualis_alerts_firing{rule="tenant_quota_high"} 1' in text and
              'mutualis_alerts_firing{rule="node_down"} 0' in text and
              "mutualis_n_plus_1_ok" in text, "/metrics counts the firing alert per rule")
    promtool = shutil.which("promtool")
    if promtool:
        import subprocess
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True)
        res.check(p.returncode == 0, f"promtool check metrics accepts it {p.stdout}{p.stderr}")

    t_off = set_vcpus(ctl, C, "unlimited")
    b = wait_for("tenant_quota_high to resolve",
                 lambda: find(ctl, "tenant_quota_high", subject, "resolved"))[0]
    res.check(b["id"] == a["id"] and b["state"] == "resolved" and
              b["resolved_ms"] - t_off >= RESOLVE_S * 1000,
              f"resolved {b['resolved_ms'] - t_off} ms after the change cleared it "
              f"(>= resolve_after_s)")
    res.check(find(ctl, "tenant_quota_high", subject, "firing") == [] and
              len(find(ctl, "tenant_quota_high", subject, "all")) == 1,
              "?state=firing no longer lists it; ?state=all does")
    resolve = audit(ctl, f"alert/tenant_quota_high/{subject}", "alert.resolve")
    res.check(len(resolve) == 1 and ms(resolve[0]["time"]) >= b["resolved_ms"],
              "the resolution is in the audit trail")
    rc, out, err = cli(ctl, "alert", "list", "--all", "--json")
    got = json.loads(out)["items"] if rc == 0 else []
    res.check(any(x["id"] == b["id"] and x["state"] == "resolved" for x in got),
              "mutualis alert list --all --json shows the resolved alert")
    rc, out, err = cli(ctl, "alert", "list")
    res.check(rc == 0 and "RULE" in out and "tenant_quota_high" not in out,
              "mutualis alert list (firing only) no longer shows it")
    rc, out, err = cli(ctl, "alert", "list", "--state", "burning")
    res.check(rc == 2 and "--state must be firing, resolved or all" in err,
              "a bad --state is a usage error")

    # --- allocation above 85 % of the cluster's memory -----------------------------------
    cap = must(rq("GET", "/v1/capacity"), 200, "capacity")
    fc = cap["forecast"]
    res.check(fc["reason"] == f"needs 7 days of history, have {fc['history_days']}" and
              fc["history_days"] == 1 and fc["resources"]["ram_mib"]["points"][0]["peak"] == 64,
              f"the forecast shows today's point and why there is no fit ({fc['reason']})")
    ram = cap["cluster"]["all"]["ram_mib"]
    big = ram["allocatable"] * 9 // 10
    must(rq("POST", "/v1/flavors", {"name": "big", "vcpus": 1, "ram_mib": big, "disk_gib": 1}),
         201, "flavor")
    t_big = time.time() * 1000
    vm = must(rq("POST", "/v1/vms", {"tenant_id": C, "name": "v2", "flavor": "big",
                                     "image_id": iid}), 202, "vm")["vm"]["id"]
    a = wait_for("allocation_high to fire",
                 lambda: find(ctl, "allocation_high", "ram_mib", "firing"))[0]
    res.check(a["severity"] == "critical" and a["since_ms"] - a["pending_ms"] >= FOR_S * 1000
              and a["pending_ms"] >= t_big - 1000 and "memory allocation at 9" in a["detail"],
              f"allocation_high fires after its hold ({a['detail']})")
    must(rq("DELETE", f"/v1/vms/{vm}"), 202, "delete")
    b = wait_for("allocation_high to resolve",
                 lambda: find(ctl, "allocation_high", "ram_mib", "resolved"), timeout=90)[0]
    res.check(b["resolved_ms"] - b["since_ms"] >= RESOLVE_S * 1000,
              "allocation_high resolves once the VM is gone, after its hold")

    def hooked(state):
        want = "alert.firing" if state == "firing" else "alert.resolved"
        return lambda reqs: [x for x in reqs if x["json"] and x["json"]["type"] == want
                             and x["json"]["subject"] == "alert/allocation_high/ram_mib"]
    got = hook.wait(lambda reqs: hooked("firing")(reqs) and hooked("resolved")(reqs), timeout=60)
    res.check(got is not None, "the operators' webhook received allocation_high firing and "
              "resolved")
    if got:
        fired, solved = hooked("firing")(got)[0], hooked("resolved")(got)[0]
        res.check(all(x["signature_ok"] and x["headers"].get("x-mutualis-event") ==
                      str(x["json"]["id"]) for x in (fired, solved)) and
                  fired["json"]["id"] < solved["json"]["id"],
                  "alert deliveries are signed and carry their event ids, in order")
        res.check(all(x["json"]["type"].startswith("alert.") for x in got),
                  "the type filter holds: only alert events reach the operators' webhook")

    # --- a node whose agent stops reporting ------------------------------------------------
    node = must(rq("POST", "/v1/nodes", {"name": "al-agent", "uri": "test:///default",
                                         "pool": "default-pool"}), 201, "node")["id"]
    d = tempfile.mkdtemp(prefix="mu-alerts-agent-")
    cert, key, _ = A.controller_cert(ctl, d, "al-agent")
    conn = A.connect(ctl, cert, key)
    epoch, seq = A.new_epoch(), [0]
    t_last = 0

    def report_for(seconds):
        nonlocal t_last
        end = time.time() + seconds
        while time.time() < end:
            t_last = time.time() * 1000
            seq[0] += 1
            r = A.post(conn, A.report("al-agent", epoch, seq[0]))
            if r.status != 200:
                raise Failure(f"report refused: {r!r}")
            time.sleep(0.25)

    def health_change(to):
        es = [e for e in audit(ctl, f"node/{node}", "node.health") if f"-> {to}" in e["detail"]]
        return es and ms(es[-1]["time"])

    report_for(1)
    res.check(must(rq("GET", f"/v1/nodes/{node}"), 200, "node")["health"] == "up",
              "the agent's node is up")
    t_down = wait_for("the node to go down (3 missed reports)", lambda: health_change("down"))
    a = wait_for("node_down to fire", lambda: find(ctl, "node_down", "al-agent", "firing"))[0]
    res.check(a["severity"] == "critical" and a["pending_ms"] >= t_down - 200 and
              a["since_ms"] - a["pending_ms"] >= FOR_S * 1000 and "is down" in a["detail"],
              f"node_down fired {a['since_ms'] - t_down} ms after the node went down "
              f"({a['detail']})")
    res.check(len(audit(ctl, "alert/node_down/al-agent", "alert.fire")) == 1,
              "node_down is in the audit trail")
    late = find(ctl, "reports_late", "al-agent", "all")
    res.check(len(late) == 1 and late[0]["since_ms"] - t_last >= 1000 and
              late[0]["since_ms"] < t_down and late[0]["resolved_ms"] >= t_down,
              f"reports_late fired {late and int(late[0]['since_ms'] - t_last)} ms after the last "
              f"report, and resolved once the node was down (health down is node_down's)")
    report_for(0.5)
    t_up = health_change("up")
    res.check(bool(t_up), "the node is up again at its next report")
    report_for(RESOLVE_S + 1)  # keep it up while the alert clears
    b = wait_for("node_down to resolve", lambda: find(ctl, "node_down", "al-agent", "resolved"))[0]
    res.check(b["resolved_ms"] - t_up >= RESOLVE_S * 1000,
              f"node_down resolved {b['resolved_ms'] - t_up} ms after the node came back")
    conn.close()
    shutil.rmtree(d, ignore_errors=True)

    # --- a bad alerts.json on SIGHUP -----------------------------------------------------
    path = os.path.join(pol, "alerts.json")
    with open(path, "w") as f:
        f.write(policy(disable_quota_rule=True, broken=True))
    ctl.send_signal(signal.SIGHUP)
    wait_for("the reload to be refused", lambda: "policy reload refused" in ctl.read_log())
    line = [ln for ln in ctl.read_log().splitlines() if "policy reload refused" in ln][-1]
    res.check("alerts.json: line 4, column 5" in line and "node_dwn" in line,
              f"the refusal names file, line and column ({line.split('detail=')[-1]})")
    t_on = set_vcpus(ctl, C, 1)
    a = wait_for("tenant_quota_high to fire again",
                 lambda: find(ctl, "tenant_quota_high", subject, "firing"))[0]
    res.check(a["since_ms"] - a["pending_ms"] >= FOR_S * 1000,
              "the policy in force stayed: the rule the bad file disables still fires")
    set_vcpus(ctl, C, "unlimited")


if __name__ == "__main__":
    sys.exit(run(main))
