"""Audit trail: changes and refused attempts are recorded with actor, role, tenant,
action, target, outcome and request id; tenants see only their subtree; the HMAC chain
detects an edited entry, a deleted entry and a truncated tail (`mutualis audit verify`
names the first bad entry and exits 3)."""
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Controller, cli, run  # noqa: E402


def main(res):
    ctl = Controller()
    try:
        ctl.start()
        body(ctl, res)
    finally:
        ctl.stop()
        ctl.cleanup()


def body(ctl, res):
    rq = ctl.request
    S = rq("POST", "/v1/tenants", {"name": "Syndicat", "kind": "syndicat"}).json["id"]
    A = rq("POST", "/v1/tenants", {"name": "Commune A", "kind": "commune", "insee": "01001",
                                   "parent_id": S}).json["id"]
    B = rq("POST", "/v1/tenants", {"name": "Commune B", "kind": "commune", "insee": "01002",
                                   "parent_id": S}).json["id"]
    uid = rq("POST", "/v1/users", {"name": "maire-a", "role": "tenant-admin",
                                   "tenant_id": A}).json["id"]
    tok = rq("POST", "/v1/tokens", {"name": "t", "user_id": uid}).json["secret"]
    rq("PATCH", f"/v1/tenants/{B}", {"population": 10})
    r = rq("PATCH", f"/v1/tenants/{A}", {"population": 5}, token=tok)  # denied by policy
    res.check(r.status == 403, "tenant-admin may not patch (policy)")
    rid = r.headers["x-request-id"]
    r = rq("GET", "/v1/audit?limit=1000")
    items = r.json["items"]
    denied = [e for e in items if e["request_id"] == rid]
    res.check(len(denied) == 1 and denied[0]["outcome"] == "denied" and
              denied[0]["actor"] == "maire-a" and denied[0]["role"] == "tenant-admin",
              "a refused attempt is audited with actor, role, outcome and request id")
    res.check(any(e["action"] == "tenant.create" and e["outcome"] == "ok" for e in items),
              "changes are audited")
    r = rq("GET", "/v1/audit?limit=1000", token=tok)
    res.check(r.status == 200 and all(e["tenant_id"] in (A,) for e in r.json["items"]) and
              len(r.json["items"]) >= 1, "a commune admin sees only its subtree's entries")
    r = rq("GET", "/v1/audit?actor=admin&limit=1000")
    res.check(all(e["actor"] == "admin" for e in r.json["items"]), "filter by actor")

    code, out, err = cli(ctl, "audit", "verify")
    res.check(code == 0, f"verify ok on an intact trail ({out.strip()}{err.strip()})")
    r = rq("POST", "/v1/audit/verify", {})
    head_id, head_mac = r.json["head_id"], r.json["head_mac"]
    res.check(r.json["ok"] and head_id >= 8, "verify over HTTP")

    db = os.path.join(ctl.data_dir, "mutualis.db")
    con = sqlite3.connect(db)
    # 1. edit a field of entry 3
    con.execute("UPDATE audit SET actor = 'mallory' WHERE id = 3")
    con.commit()
    code, out, err = cli(ctl, "audit", "verify")
    res.check(code == 3 and "3" in (out + err), f"an edited entry is named ({(out + err).strip()})")
    r = rq("POST", "/v1/audit/verify", {})
    res.check(r.json["ok"] is False and r.json["first_bad_id"] == 3, "first_bad_id = 3")
    con.execute("UPDATE audit SET actor = 'admin' WHERE id = 3")
    con.commit()
    r = rq("POST", "/v1/audit/verify", {})
    res.check(r.json["ok"], "restoring the field makes it whole again")
    # 2. delete a middle entry
    row = con.execute("SELECT * FROM audit WHERE id = 5").fetchone()
    con.execute("DELETE FROM audit WHERE id = 5")
    con.commit()
    r = rq("POST", "/v1/audit/verify", {})
    res.check(r.json["ok"] is False and r.json["first_bad_id"] in (5, 6),
              f"a deleted entry is detected ({r.json['reason']})")
    cols = ",".join("?" * len(row))
    con.execute(f"INSERT INTO audit VALUES ({cols})", row)
    con.commit()
    # 3. truncate the tail, given the head the controller logged
    r = rq("POST", "/v1/audit/verify", {})
    head_id, head_mac = r.json["head_id"], r.json["head_mac"]
    con.execute("DELETE FROM audit WHERE id >= ?", (head_id - 2,))
    con.commit()
    con.close()
    r = rq("POST", "/v1/audit/verify", {"head_id": head_id, "head_mac": head_mac})
    res.check(r.json["ok"] is False and "truncat" in r.json["reason"],
              f"a truncated tail is detected against the logged head ({r.json['reason']})")
    code, out, err = cli(ctl, "audit", "verify", "--head", f"{head_id}:{head_mac}")
    res.check(code == 3, "the CLI exits 3 on a truncated trail")


if __name__ == "__main__":
    sys.exit(run(main))
