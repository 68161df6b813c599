"""SIGHUP reloads policies/rbac.json: a valid change takes effect without a restart; an
invalid file is refused (named with line and column in the log) and the previous policy
stays in force; an action the policy does not name is denied."""
import json
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Controller, SRC, run  # noqa: E402


def wait_for(pred, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def main(res):
    pol = tempfile.mkdtemp(prefix="mu-pol-")
    for f in os.listdir(os.path.join(SRC, "policies")):
        shutil.copy(os.path.join(SRC, "policies", f), pol)
    ctl = Controller(policies=pol)
    try:
        ctl.start()
        rq = ctl.request
        r = rq("POST", "/v1/users", {"name": "watcher", "role": "observer"})
        uid = r.json["id"]
        tok = rq("POST", "/v1/tokens", {"name": "t", "user_id": uid}).json["secret"]
        res.check(rq("GET", "/v1/tenants", token=tok).status == 200, "observer may list tenants")

        path = os.path.join(pol, "rbac.json")
        with open(path) as f:
            good = json.load(f)
        with open(path, "w") as f:
            f.write('{\n  "version": 1,\n  "actions": {\n    "tenant.list": ["operator",]\n  }\n}\n')
        ctl.send_signal(signal.SIGHUP)
        res.check(wait_for(lambda: "policy reload refused" in ctl.read_log()),
                  "an invalid policy is refused on SIGHUP")
        log = ctl.read_log()
        res.check("line 4" in log and "column" in log, "the refusal names line and column")
        res.check(rq("GET", "/v1/tenants", token=tok).status == 200,
                  "the previous policy stays in force")

        changed = dict(good)
        changed["actions"] = dict(good["actions"])
        changed["actions"]["tenant.list"] = [r for r in good["actions"]["tenant.list"]
                                             if r != "observer"]
        with open(path, "w") as f:
            json.dump(changed, f)
        ctl.send_signal(signal.SIGHUP)
        res.check(wait_for(lambda: rq("GET", "/v1/tenants", token=tok).status == 403),
                  "a valid change takes effect without restart")
        del changed["actions"]["tenant.read"]
        with open(path, "w") as f:
            json.dump(changed, f)
        ctl.send_signal(signal.SIGHUP)
        res.check(wait_for(lambda: rq("GET", "/v1/tenants/1").status == 403),
                  "an action the policy does not name is denied, even to operators")
    finally:
        ctl.stop()
        ctl.cleanup()
        shutil.rmtree(pol, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run(main))
