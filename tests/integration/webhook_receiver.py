"""A webhook receiver for tests: an HTTPS server on 127.0.0.1 with its own certificate,
signed by a CA made for the test (give ca.pem to mutualisd as webhook_ca_file).

Each receiver records every request (path, headers, body, receive time, whether the
signature verified with the secret it was given) and answers with the status its script
says: script is a list of statuses used one per attempt of the same event (by
X-Mutualis-Event), the last one repeated; a 3xx
answer carries a Location header (to `redirect_to`)."""
import hashlib
import hmac
import http.server
import json
import os
import ssl
import subprocess
import threading
import time


def make_pki(directory):
    """A CA and a server certificate for 127.0.0.1 and localhost signed by it; returns
    (ca, cert, key)."""
    ca_key = os.path.join(directory, "ca.key")
    ca = os.path.join(directory, "ca.pem")
    key = os.path.join(directory, "server.key")
    csr = os.path.join(directory, "server.csr")
    cert = os.path.join(directory, "server.pem")
    ext = os.path.join(directory, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")

    def ossl(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True)

    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=Mutualis webhook test CA")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    ossl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


def verify_signature(secret, header, body, now=None, tolerance_s=300):
    """What a receiver does: t=<unix s>,v1=<hex HMAC-SHA256(secret, "t.body")>, t recent."""
    if not secret or not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - t) > tolerance_s:
        return False
    want = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, parts.get("v1", ""))


class Receiver:
    def __init__(self, cert, key, script=(200,), redirect_to=None):
        self.script = list(script)
        self.redirect_to = redirect_to
        self.secret = None
        self.requests = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as most receivers do
            disable_nagle_algorithm = True  # the status line and the body go out at once

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with receiver.lock:
                    event = self.headers.get("X-Mutualis-Event")
                    i = sum(1 for x in receiver.requests
                            if x["headers"].get("x-mutualis-event") == event)
                    status = receiver.script[min(i, len(receiver.script) - 1)]
                    try:
                        doc = json.loads(body)
                    except ValueError:
                        doc = None
                    receiver.requests.append({
                        "path": self.path,
                        "at": time.time(),
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                        "json": doc,
                        "status": status,
                        "signature_ok": verify_signature(
                            receiver.secret, self.headers.get("X-Mutualis-Signature"), body),
                    })
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", receiver.redirect_to or "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook", host="127.0.0.1"):
        return f"https://{host}:{self.port}{path}"

    def set_script(self, script):
        with self.lock:
            self.script = list(script)

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def wait(self, cond, timeout=30):
        """Waits until cond(requests) is true; returns the requests (or None on timeout)."""
        end = time.time() + timeout
        while time.time() < end:
            reqs = self.snapshot()
            if cond(reqs):
                return reqs
            time.sleep(0.05)
        return None

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
