"""The real agent against the real controller, through an outage: mutualisd is stopped
for a while as the agent runs (its spool is small, so it must drop telemetry), then
restarted. Afterwards every sequence number of the epoch is accounted for exactly once:
the controller's contiguous acknowledged sequence reaches the agent's last one (reports
are accepted only in order, so none is stored twice), and the dropped range is stored as
explicit gap records, never silence. A reinstalled agent (fresh spool, new epoch) is
accepted. Judged from the store and the agent's spool state, not from timing."""
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import agentlib as A  # noqa: E402
from harness import BIN, Controller, Failure, run  # noqa: E402

SPOOL_MAX = 4


def wait_for(what, cond, timeout=90):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise Failure(f"timed out waiting for {what}")


def spool_state(spool):
    try:
        with open(os.path.join(spool, "state.json")) as f:
            s = json.load(f)
        return s["epoch"], s["last_seq"]
    except (OSError, ValueError, KeyError):
        return None, 0


def store(ctl, sql, args=()):
    con = sqlite3.connect(f"file:{os.path.join(ctl.data_dir, 'mutualis.db')}?mode=ro", uri=True)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def start_agent(d, ctl, cert, key, spool, port):
    cfg = os.path.join(d, f"agent-{os.path.basename(spool)}.json")
    with open(cfg, "w") as f:
        json.dump({"controller_url": f"https://127.0.0.1:{port}", "node_name": "node-1",
                   "cert": cert, "key": key, "ca": os.path.join(ctl.data_dir, "pki", "ca.pem"),
                   "libvirt_uri": "test:///default", "interval_s": 1, "spool_dir": spool,
                   "spool_max_reports": SPOOL_MAX}, f)
    log = open(os.path.join(d, f"agent-{os.path.basename(spool)}.log"), "ab")
    return subprocess.Popen([os.path.join(BIN, "mutualis-agent"), "--config", cfg], stdout=log,
                            stderr=log), log


def main(res):
    d = tempfile.mkdtemp(prefix="mu-outage-")
    data = os.path.join(d, "data")
    os.mkdir(data)
    cfg = os.path.join(d, "config.json")
    with open(cfg, "w") as f:
        json.dump({"report_interval_s": 1}, f)
    ctl = Controller(data_dir=data, extra_args=["--config", cfg])
    agents = []
    try:
        ctl.start()
        port = ctl.port
        r = ctl.request("POST", "/v1/nodes", {"name": "node-1", "uri": "test:///default",
                                              "pool": "default-pool"})
        res.check(r.status == 201, "register node-1")
        node = r.json["id"]
        cert, key, _ = A.controller_cert(ctl, d, "node-1")
        spool = os.path.join(d, "spool-a")
        agents.append(start_agent(d, ctl, cert, key, spool, port))
        epoch = wait_for("the first acknowledged report", lambda: store(
            ctl, "SELECT epoch FROM agent_epochs WHERE node_id = ? AND acked_seq >= 2", (node,)))
        epoch = epoch[0][0]
        res.check(len(epoch) == 32, f"reports acknowledged (epoch {epoch[:8]}…)")

        # outage: the controller is away for longer than the spool holds
        ctl.stop()
        ep, before = spool_state(spool)
        time.sleep(SPOOL_MAX + 6)
        ep2, during = spool_state(spool)
        res.check(ep2 == epoch and during >= before + SPOOL_MAX + 2,
                  f"the agent kept numbering during the outage ({before} → {during})")
        # back on the same port (the agent knows it); the last --listen wins
        ctl.extra_args = ["--config", cfg, "--listen", f"127.0.0.1:{port}"]
        ctl.start()
        _, last = spool_state(spool)
        acked = wait_for("the spool to drain", lambda: (lambda rows: rows and rows[0][0] >= last
                                                        and rows[0][0])(store(
            ctl, "SELECT acked_seq FROM agent_epochs WHERE node_id = ? AND epoch = ?",
            (node, epoch))))
        res.check(acked >= last, f"after the outage the controller acknowledged up to {acked} "
                                 f"(agent numbered {last} by then)")
        gaps = store(ctl, "SELECT seq, gap_from, gap_to FROM report_gaps WHERE node_id = ? AND "
                          "epoch = ? ORDER BY gap_from", (node, epoch))
        res.check(len(gaps) >= 1, f"the dropped telemetry is an explicit gap record ({gaps})")
        covered = set()
        for seq, lo, hi in gaps:
            overlap = covered & set(range(lo, hi + 1))
            res.check(lo <= hi < seq and not overlap,
                      f"gap {lo}–{hi} (record {seq}) is within the epoch and covers nothing twice")
            covered |= set(range(lo, hi + 1))
        res.check(max(covered) < acked,
                  "every sequence up to the acknowledged one is a report or inside a gap")

        # a reinstalled agent: fresh spool, new epoch, accepted
        proc, log = agents[0]
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
        agents.clear()
        spool_b = os.path.join(d, "spool-b")
        agents.append(start_agent(d, ctl, cert, key, spool_b, port))
        rows = wait_for("the new epoch", lambda: store(
            ctl, "SELECT epoch, acked_seq FROM agent_epochs WHERE node_id = ? AND epoch != ? "
                 "AND acked_seq >= 1", (node, epoch)))
        res.check(rows[0][0] != epoch, "a reinstalled agent starts a new epoch and is accepted")
        r = ctl.request("GET", f"/v1/nodes/{node}")
        res.check(r.json["health"] == "up", "the node is up again")
    finally:
        for proc, log in agents:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
        ctl.stop()
        ctl.cleanup()
        subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    sys.exit(run(main))
