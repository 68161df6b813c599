#!/usr/bin/env python3
"""A stand-in for the controller's POST /v1/agent/reports, for the agent's own tests.

Loopback HTTPS that requires a client certificate signed by its CA (ssl.CERT_REQUIRED),
keep-alive (HTTP/1.1), and the controller's acknowledgement rules:

  seq <= acked                      a replay: 200 with the current ack, nothing stored
  a report with seq == acked + 1    stored, acked = seq
  a gap with gap_to == seq - 1 and gap_from <= acked + 1 <= seq
                                    stored, acked = seq
  otherwise                         409, with the current ack

The acked sequence per epoch survives a restart (DIR/acked.json, written before the
answer, as the controller commits before it acknowledges). Every event is one JSON line
in DIR/events.jsonl:

  {"ev": "report", "epoch", "seq", "kind", "gap_from", "gap_to", "node", "cn", "peer",
   "stored": bool, "status": int}
  {"ev": "refused", "peer", "reason"}         a TLS handshake that failed

Usage:
  agent_receiver.py --dir DIR [--port N] [--port-file FILE]   serve (makes DIR/pki first)
  agent_receiver.py --make-pki DIR                             certificates only

The PKI (certtool): ca.pem/ca.key, server.pem/server.key (127.0.0.1, localhost),
client.pem/client.key (CN node-1), and a second CA other-ca.pem with other-client.pem/.key
(CN node-1) for the refusal tests.
"""
import argparse
import http.server
import json
import os
import socketserver
import ssl
import subprocess
import sys
import threading


def _certtool(args, template=None, cwd=None):
    cmd = ["certtool"] + args
    if template is not None:
        tpl = os.path.join(cwd, "tmpl.cfg")
        with open(tpl, "w") as f:
            f.write(template)
        cmd += ["--template", tpl]
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """Creates the certificates in d (if d/ca.pem is not there yet)."""
    if os.path.exists(os.path.join(d, "other-client.pem")):
        return d
    os.makedirs(d, exist_ok=True)

    def key(name):
        _certtool(["--generate-privkey", "--key-type=ecdsa", "--outfile", name + ".key"],
                  cwd=d)

    def self_signed(name, cn):
        key(name)
        _certtool(["--generate-self-signed", "--load-privkey", name + ".key",
                   "--outfile", name + ".pem"],
                  template=f'cn = "{cn}"\nca\ncert_signing_key\nexpiration_days = 30\n', cwd=d)

    def signed(name, ca, template):
        key(name)
        _certtool(["--generate-certificate", "--load-privkey", name + ".key",
                   "--load-ca-certificate", ca + ".pem", "--load-ca-privkey", ca + ".key",
                   "--outfile", name + ".pem"], template=template, cwd=d)

    self_signed("ca", "Mutualis test CA")
    signed("server", "ca", 'cn = "127.0.0.1"\nip_address = "127.0.0.1"\ndns_name = "localhost"\n'
           "tls_www_server\nsigning_key\nencryption_key\nexpiration_days = 30\n")
    signed("client", "ca", 'cn = "node-1"\ntls_www_client\nsigning_key\nexpiration_days = 30\n')
    self_signed("other-ca", "Another CA")
    signed("other-client", "other-ca",
           'cn = "node-1"\ntls_www_client\nsigning_key\nexpiration_days = 30\n')
    for name in os.listdir(d):
        if name.endswith(".key"):
            os.chmod(os.path.join(d, name), 0o600)
    return d


class Store:
    def __init__(self, d):
        self.dir = d
        self.lock = threading.Lock()
        self.acked_path = os.path.join(d, "acked.json")
        try:
            with open(self.acked_path) as f:
                self.acked = json.load(f)
        except (OSError, ValueError):
            self.acked = {}
        self.events = open(os.path.join(d, "events.jsonl"), "a")

    def event(self, ev):
        with self.lock:
            self.events.write(json.dumps(ev) + "\n")
            self.events.flush()

    def save(self):
        tmp = self.acked_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.acked, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.acked_path)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        store = self.server.store
        n = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(n)
        if self.path != "/v1/agent/reports":
            return self.answer(404, {"detail": "no such path"})
        if self.headers.get("Content-Type") != "application/json":
            return self.answer(415, {"detail": "application/json expected"})
        cert = self.connection.getpeercert() or {}
        cn = None
        for rdn in cert.get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    cn = v
        try:
            r = json.loads(data)
            epoch, seq, kind = r["epoch"], int(r["seq"]), r["kind"]
        except (ValueError, KeyError, TypeError):
            return self.answer(400, {"detail": "not a report"})
        ev = {"ev": "report", "epoch": epoch, "seq": seq, "kind": kind,
              "gap_from": r.get("gap_from"), "gap_to": r.get("gap_to"), "node": r.get("node"),
              "cn": cn, "peer": "%s:%d" % self.client_address[:2], "stored": False}
        with store.lock:
            acked = store.acked.get(epoch, 0)
            if seq <= acked:
                status = 200
            elif (kind == "report" and seq == acked + 1) or (
                    kind == "gap" and r.get("gap_to") == seq - 1
                    and isinstance(r.get("gap_from"), int) and r["gap_from"] <= acked + 1):
                store.acked[epoch] = seq
                store.save()
                ev["stored"] = True
                status = 200
            else:
                status = 409
            acked = store.acked.get(epoch, 0)
        ev["status"] = status
        store.event(ev)
        body = {"epoch": epoch, "acked_seq": acked}
        if status != 200:
            body["detail"] = f"expected seq {acked + 1}"
        self.answer(status, body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, ctx, store):
        super().__init__(addr, Handler)
        self.ctx = ctx
        self.store = store

    def finish_request(self, request, client_address):
        # The handshake happens in the connection's own thread, so that a client that
        # stalls cannot hold the others up.
        request.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.store.event({"ev": "refused", "peer": "%s:%d" % client_address[:2],
                              "reason": str(e)})
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            try:
                tls.close()
            except OSError:
                pass


def serve(d, port, port_file):
    pki = make_pki(os.path.join(d, "pki"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.path.join(pki, "server.pem"), os.path.join(pki, "server.key"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(os.path.join(pki, "ca.pem"))
    srv = Server(("127.0.0.1", port), ctx, Store(d))
    if port_file:
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(srv.server_address[1]))
        os.replace(tmp, port_file)
    srv.serve_forever()


def read_events(d):
    """The events recorded so far in d/events.jsonl."""
    out = []
    try:
        with open(os.path.join(d, "events.jsonl")) as f:
            for line in f:
                if line.endswith("\n"):
                    out.append(json.loads(line))
    except OSError:
        pass
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--make-pki")
    a = p.parse_args()
    if a.make_pki:
        make_pki(a.make_pki)
        return 0
    if not a.dir:
        p.error("--dir is required")
    serve(a.dir, a.port, a.port_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
