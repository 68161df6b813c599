"""The real mutualis-agent (interval 1 s, libvirt test:///default) against a loopback HTTPS
receiver that requires a client certificate and acknowledges like the controller
(agent_receiver.py). The receiver is stopped for longer than the agent's spool holds,
then started again: afterwards every (epoch, seq) up to the last one stored arrived exactly
once or is covered by a gap record. A restarted agent keeps its epoch and sequence; a fresh
spool starts a new epoch. A client without a certificate, or with one from another CA, is
refused by the receiver; an agent that does not trust the receiver's CA sends nothing.
--once prints one report. Every judgement is made from recorded data, never from timing.
"""
import json
import os
import shutil
import signal
import ssl
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Failure, run  # noqa: E402
import agent_receiver  # noqa: E402

RECEIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent_receiver.py")
AGENT = os.path.join(BIN, "mutualis-agent")
SPOOL_MAX = 5
WAIT = 120  # seconds: an upper bound for slow machines, not a measurement


def wait_for(what, cond, timeout=WAIT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise Failure(f"timed out waiting for {what}")


class Receiver:
    def __init__(self, d):
        self.dir = d
        self.port = 0
        self.proc = None

    def start(self):
        port_file = os.path.join(self.dir, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.log = open(os.path.join(self.dir, "receiver.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, RECEIVER, "--dir", self.dir, "--port",
                                      str(self.port), "--port-file", port_file],
                                     stdout=self.log, stderr=self.log)

        def ready():
            if self.proc.poll() is not None:
                raise Failure(f"receiver exited with {self.proc.returncode}")
            try:
                with open(port_file) as f:
                    return int(f.read().strip() or 0)
            except (OSError, ValueError):
                return 0
        self.port = wait_for("the receiver's port", ready)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # like a crashed controller: no goodbye
            self.proc.wait()
        if self.proc:
            self.log.close()
        self.proc = None

    def events(self, ev="report"):
        return [e for e in agent_receiver.read_events(self.dir) if e["ev"] == ev]

    def stored(self, epoch=None):
        return [e for e in self.events() if e["stored"] and (epoch is None or e["epoch"] == epoch)]


class Agent:
    def __init__(self, d, pki, port, spool, cert="client", ca="ca", extra=None):
        self.dir = d
        self.spool = spool
        self.log_path = os.path.join(d, f"agent-{os.path.basename(spool)}.log")
        cfg = {"controller_url": f"https://127.0.0.1:{port}", "node_name": "node-1",
               "cert": os.path.join(pki, cert + ".pem"), "key": os.path.join(pki, cert + ".key"),
               "ca": os.path.join(pki, ca + ".pem"), "libvirt_uri": "test:///default",
               "interval_s": 1, "spool_dir": spool, "spool_max_reports": SPOOL_MAX,
               "log_level": "debug"}
        cfg.update(extra or {})
        self.config = os.path.join(d, f"agent-{os.path.basename(spool)}.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f)
        self.proc = None

    def start(self):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([AGENT, "--config", self.config], stdout=self.log,
                                     stderr=self.log, env=env)
        return self

    def read_log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def state(self):
        """state.json of the spool: (epoch, last_seq), or (None, 0)."""
        try:
            with open(os.path.join(self.spool, "state.json")) as f:
                s = json.load(f)
            return s["epoch"], s["last_seq"]
        except (OSError, ValueError, KeyError):
            return None, 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("the agent did not stop on SIGTERM")
        self.log.close()
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self.log.close()


def coverage_problems(stored, upto):
    """Sequence numbers 1..upto neither stored exactly once nor inside a stored gap."""
    count = {}
    covered = set()
    for e in stored:
        count[e["seq"]] = count.get(e["seq"], 0) + 1
        if e["kind"] == "gap":
            covered.update(range(e["gap_from"], e["gap_to"] + 1))
    missing = [s for s in range(1, upto + 1) if count.get(s, 0) == 0 and s not in covered]
    twice = [s for s, n in count.items() if n > 1]
    return missing, twice


def main(res):
    tmp = tempfile.mkdtemp(prefix="mu-agent-it-")
    rdir = os.path.join(tmp, "receiver")
    os.makedirs(rdir)
    pki = agent_receiver.make_pki(os.path.join(rdir, "pki"))
    rcv = Receiver(rdir)
    agents = []
    try:
        rcv.start()
        a1 = Agent(tmp, pki, rcv.port, os.path.join(tmp, "spool1"))
        agents.append(a1.start())

        # 1. Reports arrive, over one kept-alive connection, with the certificate's name.
        first = wait_for("three stored reports", lambda: len(rcv.stored()) >= 3 and rcv.stored())
        epoch = first[0]["epoch"]
        res.check(len(epoch) == 32 and all(c in "0123456789abcdef" for c in epoch),
                  f"the agent's epoch is 32 hex digits ({epoch})")
        res.check([e["seq"] for e in first[:3]] == [1, 2, 3], "reports 1, 2, 3 arrive in order")
        res.check(len({e["peer"] for e in first[:3]}) == 1,
                  "the first three reports came over one connection (keep-alive)")
        res.check(all(e["cn"] == "node-1" and e["node"] == "node-1" for e in first),
                  "the agent presents its client certificate (CN node-1)")

        # A second agent on the same spool is refused (it would number reports twice).
        dup = subprocess.run([AGENT, "--config", a1.config], capture_output=True, text=True,
                             timeout=120)
        res.check(dup.returncode != 0 and "in use by another agent" in dup.stderr,
                  "a second agent on the same spool refuses to start")

        # 2. The receiver goes away for longer than the spool holds.
        rcv.stop()
        before = max(e["seq"] for e in rcv.stored(epoch))
        wait_for("the agent to spool past its bound",
                 lambda: a1.state()[1] >= before + SPOOL_MAX + 4)
        spooled = [n for n in os.listdir(a1.spool) if n.startswith("r-")]
        res.check(len(spooled) <= SPOOL_MAX,
                  f"the spool stays within its bound while the receiver is away ({len(spooled)} "
                  f"records, at most {SPOOL_MAX})")
        res.check("controller unreachable" in a1.read_log(), "the agent logs the outage")

        # 3. Back again: the agent catches up.
        rcv.start()
        target = a1.state()[1] + 2
        wait_for("the agent to catch up",
                 lambda: max([e["seq"] for e in rcv.stored(epoch)] or [0]) >= target)
        rc = a1.stop()
        log = a1.read_log()
        res.check(rc == 0 and "mutualis-agent stopping" in log,
                  f"the agent stops cleanly on SIGTERM (exit {rc})")
        stored = rcv.stored(epoch)
        upto = max(e["seq"] for e in stored)
        missing, twice = coverage_problems(stored, upto)
        res.check(not missing, f"every seq 1..{upto} arrived or is covered by a gap (missing: "
                  f"{missing[:10]})")
        res.check(not twice, f"no seq was stored twice ({twice[:10]})")
        gaps = [e for e in stored if e["kind"] == "gap"]
        res.check(len(gaps) >= 1 and all(g["gap_to"] == g["seq"] - 1 for g in gaps),
                  f"the dropped reports came as gap records: "
                  f"{[(g['gap_from'], g['gap_to'], g['seq']) for g in gaps]}")
        res.check("replaced by a gap record" in log, "the agent logs what it had to drop")
        res.check(all(e["status"] in (200, 409) for e in rcv.events()),
                  "every report the receiver saw was well-formed")

        # 4. A restarted agent keeps its epoch and carries on with its sequence.
        a1b = Agent(tmp, pki, rcv.port, a1.spool)
        agents.append(a1b.start())
        after = wait_for("a report from the restarted agent",
                         lambda: [e for e in rcv.stored(epoch) if e["seq"] > upto])
        res.check(after[0]["seq"] == upto + 1 or after[0]["kind"] == "gap",
                  f"the restarted agent carries on at seq {upto + 1} (got {after[0]['seq']})")
        res.check(a1b.stop() == 0, "the restarted agent stops cleanly")
        stored = rcv.stored(epoch)
        missing, twice = coverage_problems(stored, max(e["seq"] for e in stored))
        res.check(not missing and not twice, "the stream is still whole after the restart")

        # 5. A fresh spool is a new epoch, starting at 1.
        a2 = Agent(tmp, pki, rcv.port, os.path.join(tmp, "spool2"))
        agents.append(a2.start())
        new = wait_for("a report in a new epoch",
                       lambda: [e for e in rcv.stored() if e["epoch"] != epoch])
        res.check(new[0]["seq"] == 1 and new[0]["epoch"] == a2.state()[0],
                  "a fresh spool starts a new epoch at seq 1")
        res.check(a2.stop() == 0, "that agent stops cleanly")

        # 6. No client certificate: the receiver refuses before any HTTP.
        refused_before = len(rcv.events("refused"))
        ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
        outcome = "answered"
        try:
            with socket.create_connection(("127.0.0.1", rcv.port), timeout=30) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    body = json.dumps({"epoch": "0" * 32, "seq": 1, "kind": "report"}).encode()
                    tls.sendall(b"POST /v1/agent/reports HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Type: application/json\r\nContent-Length: "
                                + str(len(body)).encode() + b"\r\n\r\n" + body)
                    if not tls.recv(100):
                        outcome = "closed"
        except (ssl.SSLError, OSError) as e:
            outcome = f"refused ({e.__class__.__name__})"
        res.check(outcome != "answered", f"a client without a certificate gets nothing: {outcome}")
        wait_for("the receiver to record the refusal",
                 lambda: len(rcv.events("refused")) > refused_before)
        res.check(not [e for e in rcv.events() if e["epoch"] == "0" * 32],
                  "nothing from the client without a certificate reached the handler")

        # 7. A client certificate from another CA: refused, nothing stored, the agent spools.
        refused_before = len(rcv.events("refused"))
        a3 = Agent(tmp, pki, rcv.port, os.path.join(tmp, "spool3"), cert="other-client")
        agents.append(a3.start())
        wait_for("two refused handshakes", lambda: len(rcv.events("refused")) >= refused_before + 2)
        res.check(a3.stop() == 0, "the agent with a foreign certificate stops cleanly")
        e3 = a3.state()[0]
        res.check(e3 is not None and not [e for e in rcv.events() if e["epoch"] == e3],
                  "a certificate from another CA gets no report through")
        res.check(a3.state()[1] >= 1 and len(os.listdir(a3.spool)) >= 2,
                  "its reports wait in its spool")

        # 8. The agent trusts only its CA: a controller certificate from another is refused.
        a4 = Agent(tmp, pki, rcv.port, os.path.join(tmp, "spool4"), ca="other-ca")
        agents.append(a4.start())
        wait_for("the agent to refuse the receiver",
                 lambda: "controller unreachable" in a4.read_log())
        res.check(a4.stop() == 0, "the agent with another CA stops cleanly")
        e4 = a4.state()[0]
        res.check(e4 is not None and not [e for e in rcv.events() if e["epoch"] == e4],
                  "an agent whose CA did not sign the controller's certificate sends nothing")

        # 9. --once prints one report and touches no spool.
        nospool = os.path.join(tmp, "nospool")
        p = subprocess.run([AGENT, "--once", "--node", "node-1", "--libvirt-uri",
                            "test:///default", "--spool-dir", nospool], capture_output=True,
                           text=True, timeout=120)
        rep = json.loads(p.stdout) if p.returncode == 0 else {}
        res.check(rep.get("kind") == "report" and rep.get("node") == "node-1"
                  and any(d["uuid"] == "6695eb01-f6a4-8304-79aa-97f2502e193f"
                          for d in rep.get("domains", [])),
                  "--once prints a report with the test driver's domain")
        res.check(not os.path.exists(nospool), "--once writes no spool")
    except Failure:
        for a in agents:
            try:
                print(f"--- {a.log_path}\n{a.read_log()[-3000:]}", flush=True)
            except OSError:
                pass
        raise
    finally:
        for a in agents:
            a.kill()
        rcv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run(main))
