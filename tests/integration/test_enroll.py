"""Enrolment over SSH for real: two nodes (Unix users behind a loopback sshd, see nodes.py)
enrolled through the API and the CLI. Checks, independently of the controller's answers:
every step in the audit trail; the agent running as the node's user, detached and
supervised, with its binary verified by checksum; the node's private key on the node only
(mode 0600) and nowhere in the controller's data directory; certificate, CA and
configuration uploaded with mode 0600; the host key pinned on first use and a changed host
key refused (the sshd restarted with another key) until the new fingerprint is given;
re-enrolment idempotent (one agent, binary kept); a wrong key or password failing at step
"auth" without touching the node; secrets absent from the log and the audit trail. When the
controller serves agent reports, also that reports arrive and the nodes show health "up".
"""
import hashlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, Controller, Failure, cli, run  # noqa: E402
from nodes import Nodes, sh  # noqa: E402

STEPS = ["connect", "hostkey", "auth", "probe", "stop", "install", "keys", "sign", "upload",
         "start", "report", "uri"]


def fingerprint(pubfile):
    out = subprocess.run(["ssh-keygen", "-lf", pubfile, "-E", "sha256"], capture_output=True,
                         text=True, check=True).stdout
    return out.split()[1]


def pids(user, pattern):
    p = subprocess.run(["pgrep", "-u", user, "-f", pattern], capture_output=True, text=True)
    return [int(x) for x in p.stdout.split()]


def wait_for(pred, timeout=30, step=0.25):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def restart_sshd(nodes, new_key):
    """Restarts the nodes' sshd, with a new host key if new_key (the old one kept aside)."""
    d = nodes.dir
    pid = int(open(os.path.join(d, "sshd.pid")).read())
    os.kill(pid, signal.SIGTERM)
    if not wait_for(lambda: not alive(pid), 10, 0.1):
        raise Failure("sshd did not stop")
    key = os.path.join(d, "hostkey")
    if new_key:
        os.rename(key, key + ".orig")
        os.rename(key + ".pub", key + ".pub.orig")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "other-host",
                        "-f", key], check=True)
    else:
        os.replace(key + ".orig", key)
        os.replace(key + ".pub.orig", key + ".pub")
    subprocess.run(["/usr/sbin/sshd", "-f", os.path.join(d, "sshd_config"), "-E",
                    os.path.join(d, "sshd.log")], check=True)

    def up():
        try:
            return alive(int(open(os.path.join(d, "sshd.pid")).read()))
        except (OSError, ValueError):
            return False
    if not wait_for(up, 10, 0.1):
        raise Failure("sshd did not restart")
    time.sleep(0.3)


def audit(ctl, target):
    r = ctl.request("GET", "/v1/audit?limit=1000")
    return [e for e in r.json["items"] if e["action"] == "node.enroll" and e["target"] == target]


def main(res):
    agent = os.path.join(BIN, "mutualis-agent")
    if not os.access(agent, os.X_OK):
        raise Failure(f"no agent binary at {agent}: build mutualis-agent first")
    nodes = Nodes(2).up()
    ctl = Controller()
    try:
        ctl.start()
        scenario(ctl, nodes, res, agent)
    finally:
        ctl.stop()
        ctl.cleanup()
        nodes.down()


def scenario(ctl, nodes, res, agent):
    rq = ctl.request
    doc = rq("GET", "/v1/openapi.json", token=None).json
    reports = "/v1/agent/reports" in doc["paths"]
    print(f"     report endpoint {'present' if reports else 'absent'}: first reports are "
          f"{'checked' if reports else 'not verified'}")
    key_text = open(os.path.join(nodes.dir, "client_key")).read()
    fp = fingerprint(os.path.join(nodes.dir, "hostkey.pub"))
    agent_sha = hashlib.sha256(open(agent, "rb").read()).hexdigest()
    ids = []
    for i, uri in enumerate(nodes.uris):
        r = rq("POST", "/v1/nodes", {"name": f"node-{i + 1}", "uri": uri, "pool": "default"})
        res.check(r.status == 201 and r.json["enrolment"] == "none",
                  f"register node-{i + 1} ({r.status})")
        ids.append(r.json["id"])
    base = {"host": "127.0.0.1", "port": nodes.port, "interval_s": 1}

    # ---- node-1 over the API, host key pinned on first use ---------------------------------
    t0 = time.time()
    r = rq("POST", f"/v1/nodes/{ids[0]}/enroll",
           dict(base, user=nodes.users[0], private_key=key_text))
    res.check(r.status == 200, f"enrol node-1 over the API in {time.time() - t0:.1f} s "
                               f"({r.status} {r.body[:400] if r.status != 200 else ''})")
    a = r.json
    res.check([s["step"] for s in a["steps"]] == STEPS, "every step, in order")
    want_report = "ok" if reports else "skipped"
    res.check(all(s["outcome"] == "ok" for s in a["steps"] if s["step"] != "report") and
              a["steps"][10]["outcome"] == want_report,
              f"every step ok (report {a['steps'][10]['outcome']}: {a['steps'][10]['detail']})")
    res.check(a["host_key_sha256"] == fp and a["host_key"] == "pinned",
              f"the host key is shown and pinned on first use ({a['host_key_sha256']})")
    res.check(a["agent"]["sha256"] == agent_sha and a["agent"]["uploaded"] and
              a["agent"]["supervisor"] == "setsid", "the controller's own agent was uploaded")
    res.check(a["probe"]["cpus"] >= 1 and a["probe"]["libvirt"] and a["probe"]["uid"] > 0,
              f"probe: {a['steps'][3]['detail']}")
    res.check(a["libvirt_uri"] == nodes.uris[0] and not a["libvirt_uri_changed"] and
              a["libvirt_uri_ssh"] == f"qemu+ssh://{nodes.users[0]}@127.0.0.1:{nodes.port}/session",
              "the registered libvirt URI is kept, the SSH one recorded")
    res.check(a["certificate"]["serial"] and a["certificate"]["not_after"],
              "a certificate was issued")
    r = rq("GET", f"/v1/nodes/{ids[0]}")
    res.check(r.json["enrolment"] == "enrolled", "node-1 is enrolled")

    # ---- node-2 with the CLI, with the fingerprint given -------------------------------------
    code, out, err = cli(ctl, "node", "enroll", str(ids[1]), "--host", "127.0.0.1", "--port",
                         str(nodes.port), "--user", nodes.users[1], "--key",
                         os.path.join(nodes.dir, "client_key"), "--host-key", fp, "--interval",
                         "1")
    res.check(code == 0 and "hostkey" in out and "uri" in out and fp in out,
              f"enrol node-2 with the CLI (exit {code}) {err.strip()[:300]}")
    r = rq("GET", f"/v1/nodes/{ids[1]}")
    res.check(r.json["enrolment"] == "enrolled", "node-2 is enrolled")
    steps2 = [e["detail"] for e in audit(ctl, f"node/{ids[1]}")]
    res.check(any(d.startswith("step hostkey ok: " + fp + " matches the fingerprint given")
                  for d in steps2), "node-2's key matched the fingerprint given")

    # ---- the audit trail ---------------------------------------------------------------------
    entries = audit(ctl, f"node/{ids[0]}")
    details = [e["detail"] for e in entries]
    for s in STEPS:
        found = [d for d in details if d.startswith(f"step {s} ")]
        res.check(bool(found), f"audit: {(found or ['step ' + s + ' missing'])[0][:110]}")
    res.check(details[-1].startswith("enrolment of node-1 done") and
              all(e["outcome"] == "ok" and e["actor"] for e in entries),
              "audit: the enrolment's outcome, with its actor")

    # ---- on the nodes ------------------------------------------------------------------------
    for i, user in enumerate(nodes.users):
        home = nodes.home(i)
        mu = os.path.join(home, ".mutualis")
        ap = pids(user, "mutualis-agent --config")
        sp = pids(user, "supervise.sh")
        res.check(len(ap) == 1 and len(sp) == 1,
                  f"node-{i + 1}: one agent (pid {ap}) and its supervisor (pid {sp}) run as {user}")
        res.check(bool(sp) and os.getsid(sp[0]) == sp[0] and
                  bool(ap) and os.getsid(ap[0]) == sp[0],
                  f"node-{i + 1}: the supervisor leads its own session (detached from SSH)")
        st = os.stat(os.path.join(mu, "agent.key"))
        res.check(st.st_mode & 0o777 == 0o600 and st.st_uid == int(
            subprocess.run(["id", "-u", user], capture_output=True, text=True).stdout),
            f"node-{i + 1}: the private key is on the node, owned by {user}, mode 0600")
        for f in ("agent.pem", "ca.pem", "agent.json"):
            m = os.stat(os.path.join(mu, f)).st_mode & 0o777
            res.check(m == 0o600, f"node-{i + 1}: {f} uploaded with mode 0600 ({oct(m)})")
        binp = os.path.join(mu, "bin", "mutualis-agent")
        res.check(os.stat(binp).st_mode & 0o777 == 0o755 and
                  hashlib.sha256(open(binp, "rb").read()).hexdigest() == agent_sha,
                  f"node-{i + 1}: the agent binary matches the controller's, mode 0755")
        cert = ssl._ssl._test_decode_cert(os.path.join(mu, "agent.pem"))
        cn = [v for rdn in cert["subject"] for k, v in rdn if k == "commonName"]
        res.check(cn == [f"node-{i + 1}"], f"node-{i + 1}: its certificate names it ({cn})")
        cfg = json.load(open(os.path.join(mu, "agent.json")))
        res.check(cfg["node_name"] == f"node-{i + 1}" and
                  cfg["key"] == os.path.join(mu, "agent.key") and
                  cfg["controller_url"] == ctl.url and cfg["interval_s"] == 1 and
                  cfg["libvirt_uri"] == "qemu:///session", f"node-{i + 1}: agent configuration")
        body = "".join(open(os.path.join(mu, "agent.key")).read().split("-----")[2].split())
        leaked = []
        for root, _, files in os.walk(ctl.data_dir):
            for f in files:
                try:
                    data = open(os.path.join(root, f), "rb").read()
                except OSError:
                    continue
                if body[:40].encode() in data or body[-40:].encode() in data:
                    leaked.append(f)
        res.check(not leaked, f"node-{i + 1}: its private key is nowhere in the controller's "
                              f"data directory {leaked}")

    if reports:
        for i, nid in enumerate(ids):
            res.check(wait_for(lambda: rq("GET", f"/v1/nodes/{nid}").json["health"] == "up", 30),
                      f"node-{i + 1}: reports arrive, health up")

    # ---- re-enrolment is idempotent -------------------------------------------------------------
    old = pids(nodes.users[0], "mutualis-agent --config")
    r = rq("POST", f"/v1/nodes/{ids[0]}/enroll",
           dict(base, user=nodes.users[0], private_key=key_text))
    res.check(r.status == 200 and r.json["host_key"] == "known" and
              not r.json["agent"]["uploaded"], f"re-enrol node-1: key known, binary kept "
                                               f"({r.status})")
    stop = next(s for s in r.json["steps"] if s["step"] == "stop")
    res.check("stopped the previous agent" in stop["detail"], f"stop: {stop['detail']}")
    new = pids(nodes.users[0], "mutualis-agent --config")
    res.check(len(new) == 1 and new != old and len(pids(nodes.users[0], "supervise.sh")) == 1,
              f"one agent again (pid {old} -> {new})")

    # ---- a wrong key or password fails at step auth, the node untouched ------------------------
    tmp = tempfile.mkdtemp(prefix="mu-enroll-")
    wrong = os.path.join(tmp, "wrong")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", wrong], check=True)
    wrong_key = open(wrong).read()
    shutil.rmtree(tmp)
    before = pids(nodes.users[1], "mutualis-agent --config")
    r = rq("POST", f"/v1/nodes/{ids[1]}/enroll",
           dict(base, user=nodes.users[1], private_key=wrong_key))
    res.check(r.status == 502 and r.json.get("step") == "auth" and
              r.json["detail"].startswith("enrolment of node-2 failed at step auth: ") and
              [s["step"] for s in r.json["steps"]] == ["connect", "hostkey", "auth"],
              f"a wrong key fails at step auth ({r.status}: {r.json.get('detail')})")
    password = "Corr3ct-Horse-battery-staple"
    code, out, err = cli(ctl, "node", "enroll", str(ids[1]), "--host", "127.0.0.1", "--port",
                         str(nodes.port), "--user", nodes.users[1], "--password-stdin",
                         input_text=password + "\n")
    res.check(code == 1 and "failed at step auth" in err,
              f"a wrong password fails at step auth (CLI exit {code}: {err.strip()[:200]})")
    res.check(pids(nodes.users[1], "mutualis-agent --config") == before and
              rq("GET", f"/v1/nodes/{ids[1]}").json["enrolment"] == "enrolled",
              "after a failed auth the node's agent and enrolment are as they were")
    failed = [e for e in audit(ctl, f"node/{ids[1]}") if e["outcome"] == "failed"]
    res.check(len(failed) == 2 and all(e["detail"].startswith("step auth failed: ")
                                       for e in failed), "the failed steps are audited")

    # ---- a changed host key is refused -----------------------------------------------------------
    restart_sshd(nodes, new_key=True)
    try:
        fp2 = fingerprint(os.path.join(nodes.dir, "hostkey.pub"))
        r = rq("POST", f"/v1/nodes/{ids[0]}/enroll",
               dict(base, user=nodes.users[0], private_key=key_text))
        want = (f"enrolment of node-1 failed at step hostkey: the host key of node-1 changed "
                f"from {fp} to {fp2}: if this is expected, give the new fingerprint explicitly")
        res.check(r.status == 409 and r.json["detail"] == want and
                  r.json["host_key_sha256"] == fp2 and
                  [s["step"] for s in r.json["steps"]] == ["connect", "hostkey"],
                  f"a changed host key is refused before any credential is sent ({r.status}: "
                  f"{r.json.get('detail')})")
        r = rq("POST", f"/v1/nodes/{ids[0]}/enroll",
               dict(base, user=nodes.users[0], private_key=key_text, host_key_sha256=fp))
        res.check(r.status == 409 and "not the " + fp + " given" in r.json["detail"],
                  "the old fingerprint given explicitly does not match either")
        r = rq("POST", f"/v1/nodes/{ids[0]}/enroll",
               dict(base, user=nodes.users[0], private_key=key_text, host_key_sha256=fp2))
        res.check(r.status == 200 and r.json["host_key"] == "given",
                  f"with the new fingerprint given explicitly, it is accepted and pinned "
                  f"({r.status})")
    finally:
        restart_sshd(nodes, new_key=False)

    # ---- the operator may have the node's libvirt URI set --------------------------------------
    uri = sh(f"mu_sshd_uri {nodes.dir} {nodes.users[1]} libssh").strip()
    read_before = rq("GET", f"/v1/nodes/{ids[1]}").json["capacity"]["read_at"]
    r = rq("POST", f"/v1/nodes/{ids[1]}/enroll",
           dict(base, user=nodes.users[1], private_key=key_text, libvirt_uri=uri))
    res.check(r.status == 200 and r.json["libvirt_uri"] == uri and r.json["libvirt_uri_changed"],
              f"re-enrol node-2 setting its libvirt URI to qemu+libssh ({r.status})")
    n = rq("GET", f"/v1/nodes/{ids[1]}").json
    res.check(n["uri"] == uri and n["capacity"]["read_at"] != read_before and
              not n["last_error"],
              "the node is reached at its new URI (capacity read again)")
    res.check(any(e["detail"].startswith("step uri ok: libvirt URI set to qemu+libssh://")
                  for e in audit(ctl, f"node/{ids[1]}")), "audit: the URI change")

    # ---- secrets stay out of the log and the audit trail -----------------------------------------
    log = ctl.read_log()
    key_body = key_text.split("-----")[2].strip().splitlines()[1]
    trail = json.dumps(rq("GET", "/v1/audit?limit=1000").json)
    res.check(key_body not in log and password not in log and key_body not in trail and
              password not in trail, "no private key or password in the log or the audit trail")


if __name__ == "__main__":
    sys.exit(run(main))
