"""Helpers for tests and benchmarks that play node agents: client certificates made with
certtool (gnutls-bin) and signed by the controller's CA (<data_dir>/pki/ca.key), reports in
the wire format of include/mutualis/report.h, and mutual-TLS connections to the controller.
Standard library only (plus the certtool command).
"""
import http.client
import json
import os
import secrets
import ssl
import subprocess
import time


def _certtool(*args):
    p = subprocess.run(["certtool"] + list(args), capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"certtool {' '.join(args)}: {p.stderr.strip()[-500:]}")
    return p.stdout


def make_ca(directory, name="Other CA"):
    """A self-signed CA of our own (not the controller's). Returns (cert, key) paths."""
    key = os.path.join(directory, "other-ca.key")
    crt = os.path.join(directory, "other-ca.pem")
    tmpl = os.path.join(directory, "other-ca.tmpl")
    with open(tmpl, "w") as f:
        f.write(f'cn = "{name}"\nca\ncert_signing_key\nexpiration_days = 365\n')
    _certtool("--generate-privkey", "--key-type", "ecdsa", "--outfile", key)
    _certtool("--generate-self-signed", "--load-privkey", key, "--template", tmpl,
              "--outfile", crt)
    return crt, key


def make_client_cert(directory, cn, ca_cert, ca_key, tag=None, days=30, expired=False,
                     server_usage=False):
    """A client certificate for node cn signed by (ca_cert, ca_key). Returns (cert, key,
    serial hex). expired: valid in 2020 only. server_usage: a TLS *server* certificate
    (wrong purpose)."""
    tag = tag or cn
    key = os.path.join(directory, f"{tag}.key")
    crt = os.path.join(directory, f"{tag}.pem")
    tmpl = os.path.join(directory, f"{tag}.tmpl")
    lines = [f'cn = "{cn}"', "signing_key"]
    lines.append("tls_www_server" if server_usage else "tls_www_client")
    if expired:
        lines += ['activation_date = "2020-01-01 00:00:00"',
                  'expiration_date = "2020-02-01 00:00:00"']
    else:
        lines.append(f"expiration_days = {days}")
    with open(tmpl, "w") as f:
        f.write("\n".join(lines) + "\n")
    _certtool("--generate-privkey", "--key-type", "ecdsa", "--outfile", key)
    _certtool("--generate-certificate", "--load-privkey", key, "--load-ca-certificate", ca_cert,
              "--load-ca-privkey", ca_key, "--template", tmpl, "--outfile", crt)
    info = _certtool("--certificate-info", "--infile", crt)
    serial = ""
    for line in info.splitlines():
        line = line.strip()
        if line.startswith("Serial Number (hex):"):
            serial = line.split(":", 1)[1].strip().lower()
    return crt, key, serial


def controller_cert(ctl, directory, cn, **kw):
    """A client certificate for node cn signed by ctl's own CA."""
    pki = os.path.join(ctl.data_dir, "pki")
    return make_client_cert(directory, cn, os.path.join(pki, "ca.pem"),
                            os.path.join(pki, "ca.key"), **kw)


def tls_context(ctl, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=os.path.join(ctl.data_dir, "pki", "ca.pem"))
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def connect(ctl, cert=None, key=None, timeout=60):
    return http.client.HTTPSConnection("127.0.0.1", ctl.port, context=tls_context(ctl, cert, key),
                                       timeout=timeout)


def new_epoch():
    return secrets.token_hex(16)


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{int(ms) % 1000:03d}Z"


def domain(uuid, vm_id=None, state="running", cpu_time_ns=1_000_000_000, rss_kib=65536,
           disk_alloc=1 << 30, disk_cap=10 << 30, rx=1000, tx=2000):
    d = {"uuid": uuid, "state": state, "cpu_time_ns": cpu_time_ns, "vcpus": 1,
         "mem_balloon_kib": 131072, "mem_rss_kib": rss_kib, "disk_allocation_bytes": disk_alloc,
         "disk_capacity_bytes": disk_cap, "net_rx_bytes": rx, "net_tx_bytes": tx}
    if vm_id:
        d["vm_id"] = vm_id
    return d


def report(node, epoch, seq, domains=(), time_ms=None):
    return {"version": 1, "node": node, "epoch": epoch, "seq": seq,
            "time": iso(time_ms if time_ms is not None else time.time() * 1000),
            "kind": "report",
            "host": {"cpus": 8, "cpu_percent": 12.5, "load1": 0.4, "load5": 0.3, "load15": 0.2,
                     "mem_total_mib": 32768, "mem_available_mib": 16384, "uptime_s": 3600},
            "pools": [{"name": "default", "capacity_gib": 500, "allocation_gib": 120,
                       "available_gib": 380}],
            "domains": list(domains)}


def gap(node, epoch, seq, gap_from, gap_to, time_ms=None):
    return {"version": 1, "node": node, "epoch": epoch, "seq": seq,
            "time": iso(time_ms if time_ms is not None else time.time() * 1000),
            "kind": "gap", "gap_from": gap_from, "gap_to": gap_to}


class Answer:
    def __init__(self, status, body):
        self.status = status
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


def post(conn, doc=None, raw=None, headers=None):
    """POSTs one report on conn (kept alive); returns an Answer."""
    data = raw if raw is not None else json.dumps(doc).encode()
    h = {"Content-Type": "application/json"}
    if headers:
        h.update(headers)
    conn.request("POST", "/v1/agent/reports", body=data, headers=h)
    r = conn.getresponse()
    return Answer(r.status, r.read().decode("utf-8", errors="replace"))
