"""Agent reports over mutual TLS (POST /v1/agent/reports) against a real mutualisd:

  - TLS refusals from the headers, before any parsing: no client certificate, a certificate
    from another CA, an expired one, one for TLS servers, a revoked one (deleting its node
    revokes it, on a connection already open too), a bearer token instead of a certificate;
    and a valid certificate of node A reporting about node B (403);
  - reports: acknowledged after their batch was synced (WAL syncs counted by the test VFS),
    a replay acknowledged again, out of order refused with the sequence to send, a new
    epoch accepted, a gap record stored; malformed and oversized reports refused; refused
    reports change nothing;
  - observed VM state fed back from a report, and the tenant's actual use in its quota view;
  - health judged from recorded times (GET /v1/nodes/{id}: health_since, last_report_at):
    down between 3 and 4 intervals after the last report, up at the first report after,
    and "unknown" right after a controller restart until 3 intervals pass.
"""
import json
import os
import sqlite3
import sys
import tempfile
import time
from datetime import datetime

sys.path.insert(0, os.path.dirname(__file__))
import agentlib as A  # noqa: E402
from harness import Controller, Failure, run  # noqa: E402

INTERVAL_S = 1


def ms(ts):
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() * 1000 if ts else None


def wal_syncs(path):
    try:
        with open(path) as f:
            return sum(1 for line in f if line.rstrip().endswith("-wal"))
    except FileNotFoundError:
        return 0


def must(r, status, what):
    if r.status != status:
        raise Failure(f"setup {what}: expected {status}, got {r!r}")
    return r.json


def db_rows(ctl, sql, args=()):
    con = sqlite3.connect(f"file:{os.path.join(ctl.data_dir, 'mutualis.db')}?mode=ro", uri=True)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def main(res):
    d = tempfile.mkdtemp(prefix="mu-agent-")
    certs = os.path.join(d, "certs")
    os.mkdir(certs)
    cfg = os.path.join(d, "config.json")
    with open(cfg, "w") as f:
        json.dump({"report_interval_s": INTERVAL_S}, f)
    log = os.path.join(d, "syncs.log")
    ctl = Controller(data_dir=os.path.join(d, "data"), extra_args=["--config", cfg],
                     env={"MU_TEST_SYNC_LOG": log})
    os.mkdir(ctl.data_dir)
    try:
        ctl.start()
        body(ctl, res, certs, log)
    finally:
        ctl.stop()
        ctl.cleanup()
        import shutil
        shutil.rmtree(d, ignore_errors=True)


def body(ctl, res, certs, log):
    rq = ctl.request

    def mk_node(name):
        return must(rq("POST", "/v1/nodes", {"name": name, "uri": "test:///default",
                                             "pool": "default-pool"}), 201, "node")["id"]

    node_a = mk_node("node-a")
    node_b = mk_node("node-b")
    node_c = mk_node("node-c")

    # A VM on node-a (libvirt's test driver), for observed state and actual use.
    tenant = must(rq("POST", "/v1/tenants", {"name": "Commune", "kind": "other"}), 201,
                  "tenant")["id"]
    must(rq("PUT", f"/v1/tenants/{tenant}/quota", {"vcpus": "unlimited", "ram_mib": "unlimited",
                                                  "disk_gib": "unlimited", "vms": "unlimited"}),
         200, "quota")
    must(rq("POST", "/v1/flavors", {"name": "tiny", "vcpus": 1, "ram_mib": 64, "disk_gib": 1}),
         201, "flavor")
    import hashlib
    img = b"\0" * 4096
    iid = must(rq("POST", "/v1/images", {"name": "img", "format": "raw",
                                         "sha256": hashlib.sha256(img).hexdigest()}),
               201, "image")["id"]
    must(rq("PUT", f"/v1/images/{iid}/data", raw=img,
            headers={"Content-Type": "application/octet-stream"}), 200, "upload")
    # Keep the VM on node-a: the others go into maintenance for the placement.
    for n in (node_b, node_c):
        must(rq("POST", f"/v1/nodes/{n}/maintenance"), 200, "maintenance")
    vm = must(rq("POST", "/v1/vms", {"tenant_id": tenant, "name": "web", "flavor": "tiny",
                                     "image_id": iid}), 202, "vm")
    vm_id, vm_uuid = vm["vm"]["id"], vm["vm"]["uuid"]
    end = time.time() + 60
    while time.time() < end:
        op = rq("GET", f"/v1/operations/{vm['operation']['id']}").json
        if op["state"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    res.check(op["state"] == "succeeded", "a VM runs on node-a")
    for n in (node_b, node_c):
        must(rq("POST", f"/v1/nodes/{n}/activate"), 200, "activate")

    cert_a, key_a, serial_a = A.controller_cert(ctl, certs, "node-a")
    cert_c, key_c, serial_c = A.controller_cert(ctl, certs, "node-c")
    other_ca = A.make_ca(certs)
    cert_x, key_x, _ = A.make_client_cert(certs, "node-a", *other_ca, tag="node-a-other-ca")
    cert_old, key_old, _ = A.controller_cert(ctl, certs, "node-a", tag="node-a-expired",
                                             expired=True)
    cert_srv, key_srv, _ = A.controller_cert(ctl, certs, "node-a", tag="node-a-server",
                                             server_usage=True)
    epoch = A.new_epoch()

    # ---- TLS refusals: from the headers, before the body is parsed ----------------------
    def refused(cert, key, what, status=401, word=None, doc=None, raw=None, headers=None):
        c = A.connect(ctl, cert, key)
        try:
            r = A.post(c, doc, raw=raw, headers=headers)
        finally:
            c.close()
        ok = r.status == status and r.json and r.json.get("status") == status
        if word:
            ok = ok and word in r.json.get("detail", "")
        if not ok:
            print(f"     got {r!r}")
        res.check(ok, f"{what} → {status}")
        return r

    junk = b"{this is not json"
    refused(None, None, "no client certificate (malformed body never parsed)", word="client certificate",
            raw=junk)
    refused(cert_x, key_x, "a certificate from another CA", word="not signed by this controller",
            raw=junk)
    refused(cert_old, key_old, "an expired certificate", word="expired", raw=junk)
    refused(cert_srv, key_srv, "a TLS server certificate", word="not a TLS client", raw=junk)
    refused(None, None, "a bearer token instead of a certificate", word="client certificate",
            doc=A.report("node-a", epoch, 1), headers={"Authorization": f"Bearer {ctl.token}"})
    # Declared far too big, without a certificate: 401 from the headers, not 413; the server
    # does not read the body, so a client still sending it may see the connection close first.
    c = A.connect(ctl)
    try:
        r = A.post(c, raw=b"x" * (5 << 20))
        status = r.status
    except (OSError, ConnectionError):
        status = None
    finally:
        c.close()
    time.sleep(0.2)
    lines = [ln for ln in ctl.read_log().splitlines() if "path=/v1/agent/reports" in ln]
    res.check(status in (401, None) and lines and "status=401" in lines[-1],
              f"an oversized body without a certificate → 401 ({status})")
    r = refused(cert_a, key_a, "node-a's certificate reporting about node-b", status=403,
                word="cannot report for node node-b", doc=A.report("node-b", epoch, 1))
    res.check(not db_rows(ctl, "SELECT 1 FROM agent_epochs"), "the refused reports stored nothing")
    audit = rq("GET", "/v1/audit?actor=node:node-a").json
    res.check(any(e["outcome"] == "denied" and "node-b" in (e.get("detail") or "")
                  for e in audit["items"]), "the impersonation attempt is audited")

    # ---- reports on one keep-alive connection -------------------------------------------
    conn = A.connect(ctl, cert_a, key_a)
    dom = A.domain(vm_uuid, vm_id, state="shutoff", rss_kib=50 * 1024, disk_alloc=3 << 30)
    before = wal_syncs(log)
    r = A.post(conn, A.report("node-a", epoch, 1, [dom]))
    after = wal_syncs(log)
    res.check(r.status == 200 and r.json == {"epoch": epoch, "acked_seq": 1},
              f"report 1 acknowledged ({r!r})")
    res.check(after > before, f"report 1's batch was synced before the answer ({after - before})")
    r = A.post(conn, A.report("node-a", epoch, 2, [dom]))
    res.check(r.status == 200 and r.json["acked_seq"] == 2, "report 2 acknowledged")
    r = A.post(conn, A.report("node-a", epoch, 2, [dom]))
    res.check(r.status == 200 and r.json["acked_seq"] == 2 and r.json.get("replay") is True,
              "a replayed report is acknowledged again")
    stored = db_rows(ctl, "SELECT seq, received_ms FROM node_last")
    r = A.post(conn, A.report("node-a", epoch, 5, [dom]))
    res.check(r.status == 409 and r.json.get("expected_seq") == 3 and r.json.get("acked_seq") == 2
              and "expected sequence 3" in r.json.get("detail", ""),
              f"an out-of-order report is refused with the sequence to send ({r.status})")
    r = A.post(conn, raw=b'{"version": 1, "node": "node-a"')
    res.check(r.status == 400 and r.json.get("detail"), f"a malformed report → 400 ({r.status})")
    r = A.post(conn, raw=json.dumps(dict(A.report("node-a", epoch, 3), extra=1)).encode())
    res.check(r.status == 400 and "extra" in r.json.get("detail", ""),
              "a report with an unknown key → 400")
    big = A.report("node-a", epoch, 3)
    big["pools"] = [{"name": "p" * 40, "capacity_gib": 1, "allocation_gib": 1,
                     "available_gib": 1}] * 1
    raw = json.dumps(big).encode()
    raw = raw[:-1] + b" " * (4 << 20) + b"}"
    r = A.post(conn, raw=raw)
    res.check(r.status == 413, f"a report over 4 MiB → 413 ({r.status})")
    conn.close()
    conn = A.connect(ctl, cert_a, key_a)
    res.check(db_rows(ctl, "SELECT seq, received_ms FROM node_last") == stored and
              db_rows(ctl, "SELECT acked_seq FROM agent_epochs") == [(2,)],
              "refused, malformed and oversized reports changed nothing")

    # Observed state and actual use from report 1-2.
    v = rq("GET", f"/v1/vms/{vm_id}").json
    res.check(v["observed"]["state"] == "shutoff",
              f"the reported domain state is the VM's observed state ({v['observed']['state']})")
    q = rq("GET", f"/v1/tenants/{tenant}/quota").json
    act = q["levels"][-1].get("actual", {})
    res.check(act.get("ram_mib") == 50 and act.get("disk_gib") == 3.0 and
              act.get("vms_reporting") == 1, f"the quota view shows actual use ({act})")

    # A gap record (3..4 dropped by the agent) takes seq 5; a new epoch is accepted.
    r = A.post(conn, A.gap("node-a", epoch, 5, 3, 4))
    res.check(r.status == 200 and r.json["acked_seq"] == 5, f"a gap record is accepted ({r!r})")
    gaps = db_rows(ctl, "SELECT epoch, seq, gap_from, gap_to FROM report_gaps")
    res.check(gaps == [(epoch, 5, 3, 4)], f"the gap is stored as a row ({gaps})")
    epoch2 = A.new_epoch()
    r = A.post(conn, A.report("node-a", epoch2, 1, [dom]))
    res.check(r.status == 200 and r.json == {"epoch": epoch2, "acked_seq": 1},
              "a new epoch (reinstalled agent) is accepted")

    # ---- revocation: deleting node-c revokes its certificate -----------------------------
    conn_c = A.connect(ctl, cert_c, key_c)
    r = A.post(conn_c, A.report("node-c", A.new_epoch(), 1))
    res.check(r.status == 200, "node-c reports")
    must(rq("DELETE", f"/v1/nodes/{node_c}"), 204, "delete node-c")
    r = A.post(conn_c, A.report("node-c", A.new_epoch(), 1))
    res.check(r.status == 401 and "revoked" in (r.json or {}).get("detail", ""),
              f"a revoked certificate is refused on a connection already open ({r.status})")
    conn_c.close()
    refused(cert_c, key_c, "a revoked certificate (new connection)", word="revoked",
            doc=A.report("node-c", A.new_epoch(), 1))
    res.check(db_rows(ctl, "SELECT revoked_ms > 0 FROM node_certs WHERE serial = ?",
                      (serial_c,)) == [(1,)], "node-c's serial is recorded as revoked")

    # ---- health from recorded times ---------------------------------------------------------
    r = A.post(conn, A.report("node-a", epoch2, 2, [dom]))
    res.check(r.status == 200, "node-a reports")
    n = rq("GET", f"/v1/nodes/{node_a}").json
    res.check(n["health"] == "up", f"node-a is up ({n['health']})")
    last = ms(n["last_report_at"])
    end = time.time() + 10 * INTERVAL_S
    while time.time() < end and n["health"] != "down":
        time.sleep(0.1)
        n = rq("GET", f"/v1/nodes/{node_a}").json
    down_after = (ms(n["health_since"]) - last) / 1000.0 if n["health"] == "down" else None
    res.check(down_after is not None and 3 * INTERVAL_S <= down_after < 4 * INTERVAL_S,
              f"down {down_after} s after the last report (3 to 4 intervals)")
    v = rq("GET", f"/v1/vms/{vm_id}").json
    res.check(v["observed"]["state"] == "unknown", "the down node's VM is observed unknown")
    sent = time.time() * 1000
    r = A.post(conn, A.report("node-a", epoch2, 3, [dom]))
    n = rq("GET", f"/v1/nodes/{node_a}").json
    res.check(r.status == 200 and n["health"] == "up" and
              n["health_since"] == n["last_report_at"] and ms(n["health_since"]) >= sent - 1,
              f"up at the first report after ({n['health_since']} / {n['last_report_at']})")
    trail = rq("GET", "/v1/audit?actor=health").json["items"]
    res.check(any("-> down" in (e.get("detail") or "") for e in trail) and
              any("down -> up" in (e.get("detail") or "") for e in trail),
              "health transitions are audited (actor health)")
    res.check(n["state"] == "active", "health never touches the operator's state")
    conn.close()

    # ---- a restart: unknown until 3 intervals pass --------------------------------------------
    ctl.stop()
    t0 = time.time() * 1000
    ctl.start()
    n = rq("GET", f"/v1/nodes/{node_a}").json
    res.check(n["health"] == "unknown" and ms(n["health_since"]) >= t0 - 1,
              f"after a restart node-a is unknown ({n['health']})")
    end = time.time() + 10 * INTERVAL_S
    while time.time() < end and n["health"] == "unknown":
        time.sleep(0.1)
        n = rq("GET", f"/v1/nodes/{node_a}").json
    after_start = (ms(n["health_since"]) - t0) / 1000.0
    res.check(n["health"] == "down" and 3 * INTERVAL_S <= after_start < 4 * INTERVAL_S + 1,
              f"then down {after_start:.2f} s after the start")
    conn = A.connect(ctl, cert_a, key_a)
    r = A.post(conn, A.report("node-a", epoch2, 4))
    n = rq("GET", f"/v1/nodes/{node_a}").json
    res.check(r.status == 200 and r.json["acked_seq"] == 4 and n["health"] == "up",
              "the epoch continues across the restart and the node is up again")
    conn.close()
    # node-b never reported: not agent-managed, its health stays the probe's.
    n = rq("GET", f"/v1/nodes/{node_b}").json
    res.check(n["health"] == "up" and n["last_report_at"] is None,
              "a node without an agent keeps the probe's health")
    res.check(serial_a == db_rows(ctl, "SELECT serial FROM node_certs WHERE node_id = ?",
                                  (node_a,))[0][0], "node-a's certificate serial is recorded")


if __name__ == "__main__":
    sys.exit(run(main))
