"""Certificate renewal, the expiry alert and revocation, with a real mutualisd and the real
mutualis-agent (libvirt test:///default, interval 1 s; the controller's report_interval_s is
1 s, so its certificate check runs every second):

  - POST /v1/agent/renew refusals: a request naming another node (403), a malformed CSR
    (400), an expired client certificate (401, refused before the handler);
  - the expiry alert: node-a's agent starts with a certificate that expires in 10 days and a
    renewal window of 5 days (no renewal yet): the controller fires one alert for it (audit
    "alert.fire" from actor "alerts", a warn log line) and the node shows
    certificate.expiring; node-b's 20-day certificate fires none (the threshold is 14 days);
  - renewal: the same agent restarted with the default window (30 days) renews at once: a new
    key made on the node (the request carries only its public half), a 90-day certificate
    recorded for the node and audited ("agent.renew"), installed in place of the old pair
    (0600), and the reports go on; the node's certificate serial changes, is no longer
    expiring, and the superseded certificate alerts no more;
  - removing the node revokes every certificate it had (the old and the renewed one): the
    agent's next report is refused (401).
"""
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentlib as A  # noqa: E402
from harness import BIN, Controller, Failure, run  # noqa: E402

AGENT = os.path.join(BIN, "mutualis-agent")
WAIT = 120  # seconds: an upper bound for slow machines, not a measurement


def wait_for(what, cond, timeout=WAIT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise Failure(f"timed out waiting for {what}")


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


def cert_serial(path):
    p = subprocess.run(["certtool", "--certificate-info", "--infile", path],
                       capture_output=True, text=True)
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("Serial Number (hex):"):
            return line.split(":", 1)[1].strip().lower()
    return None


def make_csr(directory, cn, tag):
    key = os.path.join(directory, f"{tag}.key")
    tmpl = os.path.join(directory, f"{tag}.csr.tmpl")
    with open(tmpl, "w") as f:
        f.write(f'cn = "{cn}"\ntls_www_client\nsigning_key\n')
    A._certtool("--generate-privkey", "--key-type", "ecdsa", "--outfile", key)
    return A._certtool("--generate-request", "--load-privkey", key, "--template", tmpl)


class Agent:
    def __init__(self, d, ctl, node, cert, key, renew_days):
        self.log_path = os.path.join(d, f"agent-{node}.log")
        self.args = [AGENT, "--controller-url", f"https://127.0.0.1:{ctl.port}", "--node", node,
                     "--cert", cert, "--key", key,
                     "--ca", os.path.join(ctl.data_dir, "pki", "ca.pem"),
                     "--libvirt-uri", "test:///default", "--interval", "1",
                     "--spool-dir", os.path.join(d, f"spool-{node}"), "--log-level", "debug",
                     "--renew-before-days", str(renew_days)]
        self.proc = None

    def start(self):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log, env=env)
        return self

    def read_log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("the agent did not stop on SIGTERM")
        self.log.close()
        self.proc = None
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self.log.close()


def main(res):
    d = tempfile.mkdtemp(prefix="mu-renew-")
    certs = os.path.join(d, "certs")
    os.mkdir(certs)
    cfg = os.path.join(d, "config.json")
    with open(cfg, "w") as f:
        json.dump({"report_interval_s": 1}, f)
    ctl = Controller(data_dir=os.path.join(d, "data"), extra_args=["--config", cfg])
    os.mkdir(ctl.data_dir)
    agents = []
    try:
        ctl.start()
        body(ctl, res, d, certs, agents)
    except Failure:
        for a in agents:
            try:
                print(f"--- {a.log_path}\n{a.read_log()[-4000:]}", flush=True)
            except OSError:
                pass
        print(f"--- controller\n{ctl.read_log()[-4000:]}", flush=True)
        raise
    finally:
        for a in agents:
            a.kill()
        ctl.stop()
        ctl.cleanup()
        shutil.rmtree(d, ignore_errors=True)


def alerts(ctl, node_id):
    items = ctl.request("GET", "/v1/audit?actor=alerts&limit=100").json["items"]
    return [e for e in items if e["action"] == "alert.fire" and e["target"] == f"node/{node_id}"]


def body(ctl, res, d, certs, agents):
    rq = ctl.request
    node_a = must(rq("POST", "/v1/nodes", {"name": "node-a", "uri": "test:///default"}), 201,
                  "node-a")["id"]
    node_b = must(rq("POST", "/v1/nodes", {"name": "node-b", "uri": "test:///default"}), 201,
                  "node-b")["id"]

    cert_a, key_a, serial_old = A.controller_cert(ctl, certs, "node-a", days=10)
    cert_b, key_b, serial_b = A.controller_cert(ctl, certs, "node-b", days=20)
    cert_x, key_x, _ = A.controller_cert(ctl, certs, "node-a", tag="node-a-expired",
                                         expired=True)

    # ---- refusals of POST /v1/agent/renew ------------------------------------------------
    def renew(cert, key, doc):
        c = A.connect(ctl, cert, key)
        try:
            c.request("POST", "/v1/agent/renew", body=json.dumps(doc).encode(),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return A.Answer(r.status, r.read().decode("utf-8", errors="replace"))
        finally:
            c.close()

    r = renew(cert_a, key_a, {"csr": make_csr(certs, "node-b", "csr-b")})
    res.check(r.status == 403 and "node-b" in r.json.get("detail", ""),
              f"a CSR naming another node → 403 ({r!r})")
    r = renew(cert_a, key_a, {"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                     "-----END CERTIFICATE REQUEST-----\n"})
    res.check(r.status == 400, f"a malformed CSR → 400 ({r.status})")
    r = renew(cert_a, key_a, {"csr": make_csr(certs, "node-a", "csr-a"), "extra": 1})
    res.check(r.status == 400, f"an unknown key → 400 ({r.status})")
    r = renew(cert_x, key_x, {"csr": make_csr(certs, "node-a", "csr-a2")})
    res.check(r.status == 401 and "expired" in r.json.get("detail", ""),
              f"an expired certificate → 401 before the handler ({r.status})")
    res.check(len(db_rows(ctl, "SELECT 1 FROM node_certs")) == 0,
              "the refused renewals issued nothing")
    denied = rq("GET", "/v1/audit?actor=node:node-a").json["items"]
    res.check(any(e["action"] == "agent.renew" and e["outcome"] == "denied" for e in denied),
              "the request naming another node is audited as denied")

    # ---- the expiry alert, before any renewal -------------------------------------------
    # node-b reports once with its 20-day certificate: recorded, but not within 14 days.
    c = A.connect(ctl, cert_b, key_b)
    r = A.post(c, A.report("node-b", A.new_epoch(), 1))
    c.close()
    res.check(r.status == 200, f"node-b reports with its 20-day certificate ({r.status})")

    agent = Agent(d, ctl, "node-a", cert_a, key_a, renew_days=5)
    agents.append(agent.start())
    fired = wait_for("the alert for node-a's 10-day certificate", lambda: alerts(ctl, node_a))
    res.check(len(fired) == 1 and fired[0]["detail"].startswith(
              (f"certificate {serial_old} expires in 9 days",
               f"certificate {serial_old} expires in 10 days")),
              f"one alert for the 10-day certificate ({fired[0]['detail']})")
    log = ctl.read_log()
    res.check(f"alert certificate-expiring node=node-a serial={serial_old}" in log
              and "days_left=" in log, "the alert is logged at warn with node, serial, days left")
    n = rq("GET", f"/v1/nodes/{node_a}").json
    res.check(n["certificate"]["serial"] == serial_old and n["certificate"]["expiring"] is True,
              f"node-a shows its certificate as expiring ({n['certificate']})")
    n = rq("GET", f"/v1/nodes/{node_b}").json
    res.check(n["certificate"]["serial"] == serial_b and n["certificate"]["expiring"] is False,
              f"node-b's 20-day certificate is not expiring ({n['certificate']})")
    time.sleep(2.5)  # a few more certificate passes
    res.check(len(alerts(ctl, node_a)) == 1 and not alerts(ctl, node_b),
              "the alert fired once; none for the 20-day certificate")
    res.check(cert_serial(cert_a) == serial_old and "certificate renewed" not in agent.read_log(),
              "outside its 5-day window the agent did not renew")
    res.check(agent.stop() == 0, "the agent stops cleanly")

    # ---- renewal --------------------------------------------------------------------------
    with open(key_a) as f:
        old_key = f.read()
    agent = Agent(d, ctl, "node-a", cert_a, key_a, renew_days=30)
    agents.append(agent.start())
    wait_for("the renewal", lambda: "certificate renewed" in agent.read_log())
    renewed_at = time.time()
    serial_new = cert_serial(cert_a)
    res.check(serial_new and serial_new != serial_old,
              f"the agent installed a new certificate ({serial_old} → {serial_new})")
    with open(key_a) as f:
        new_key = f.read()
    res.check(new_key != old_key and "PRIVATE KEY" in new_key, "with a new private key")
    res.check(all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in (cert_a, key_a)),
              "the new key and certificate are 0600")
    res.check(not os.path.exists(cert_a + ".new") and not os.path.exists(key_a + ".new"),
              "nothing of the swap is left over")
    rows = db_rows(ctl, "SELECT serial, node_id, not_after_ms, revoked_ms FROM node_certs "
                        "WHERE serial = ?", (serial_new,))
    days = (rows[0][2] / 1000 - time.time()) / 86400 if rows else 0
    res.check(rows and rows[0][1] == node_a and rows[0][3] == 0 and 89 < days <= 90.01,
              f"the controller recorded the new serial for node-a, valid 90 days ({days:.2f})")
    audit = rq("GET", "/v1/audit?actor=node:node-a").json["items"]
    res.check(any(e["action"] == "agent.renew" and e["outcome"] == "ok"
                  and serial_new in (e.get("detail") or "") for e in audit),
              "the renewal is audited (agent.renew, actor node:node-a)")
    n = rq("GET", f"/v1/nodes/{node_a}").json
    res.check(n["certificate"]["serial"] == serial_new and n["certificate"]["expiring"] is False,
              f"the node's certificate serial changed and is not expiring ({n['certificate']})")
    res.check(db_rows(ctl, "SELECT revoked_ms FROM node_certs WHERE serial = ?",
                      (serial_old,)) == [(0,)], "the old certificate stays valid until it expires")

    def acked():
        return max([r[0] for r in db_rows(ctl, "SELECT acked_seq FROM agent_epochs e JOIN "
                                               "nodes n ON n.id = e.node_id WHERE n.name = "
                                               "'node-a'")] or [0])
    seq_at_renewal = acked()
    wait_for("reports after the renewal", lambda: acked() >= seq_at_renewal + 3)
    last = db_rows(ctl, "SELECT received_ms FROM node_last WHERE node_id = ?", (node_a,))[0][0]
    res.check(last / 1000 > renewed_at, "reports go on after the renewal")
    alog = agent.read_log()
    res.check("refused" not in alog and "did not take a report" not in alog,
              "no report was refused around the switch")
    time.sleep(2.5)
    res.check(len(alerts(ctl, node_a)) == 1,
              "the superseded certificate fires no further alert")

    # ---- removing the node revokes its certificates ---------------------------------------
    must(rq("DELETE", f"/v1/nodes/{node_a}"), 204, "delete node-a")
    revoked = db_rows(ctl, "SELECT serial, revoked_ms > 0 FROM node_certs WHERE node_id = ?",
                      (node_a,))
    res.check({s for s, r in revoked if r} >= {serial_old, serial_new},
              f"both of node-a's certificates are revoked ({revoked})")
    wait_for("the agent's report to be refused",
             lambda: "status=401" in agent.read_log()[len(alog):])
    tail = agent.read_log()[len(alog):]
    res.check("revoked" in tail, "the agent's next report is refused: its certificate was revoked")
    res.check(agent.stop() == 0, "the agent stops cleanly")


if __name__ == "__main__":
    sys.exit(run(main))
