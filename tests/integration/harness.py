"""Test harness for integration tests: starts a real mutualisd on loopback HTTPS with a
fresh data directory, talks to it with a real TLS client, and stops it.

Every test file is a plain script (stdlib only) run by CTest; it prints one line per check
and a final "N passed, 0 failed" line, and exits non-zero on the first failure.
"""
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("MU_BINARY_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SRC = os.environ.get("MU_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


class Failure(Exception):
    pass


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
            print(f"ok   {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {what}", flush=True)
            raise Failure(what, True)

    def done(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 0 if self.failed == 0 else 1


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


class Controller:
    """A mutualisd process with its own data directory."""

    def __init__(self, data_dir=None, extra_args=(), env=None, policies=None):
        self.owns_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="mu-it-")
        self.extra_args = list(extra_args)
        self.env = dict(os.environ)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        if env:
            self.env.update(env)
        self.policies = policies or os.path.join(SRC, "policies")
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.data_dir, "mutualisd.log")

    def start(self, timeout=30):
        port_file = os.path.join(self.data_dir, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        args = [os.path.join(BIN, "mutualisd"), "--data-dir", self.data_dir,
                "--listen", "127.0.0.1:0", "--policies", self.policies,
                "--port-file", port_file] + self.extra_args
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Failure(f"mutualisd exited with {self.proc.returncode}: {self.read_log()[-2000:]}")
            if os.path.exists(port_file):
                with open(port_file) as f:
                    txt = f.read().strip()
                if txt:
                    self.port = int(txt)
                    break
            time.sleep(0.05)
        else:
            raise Failure("mutualisd did not start in time")
        self.ctx = ssl.create_default_context(cafile=os.path.join(self.data_dir, "pki", "ca.pem"))
        with open(os.path.join(self.data_dir, "bootstrap-token")) as f:
            self.token = f.read().strip()
        return self

    def read_log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    def conn(self):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=60)

    def request(self, method, path, body=None, token="__default__", headers=None, raw=None, conn=None):
        h = {}
        if token == "__default__":
            token = self.token
        if token:
            h["Authorization"] = f"Bearer {token}"
        data = None
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode()
            h["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if headers:
            h.update(headers)
        c = conn or self.conn()
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            payload = r.read().decode("utf-8", errors="replace")
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, payload)
        finally:
            if conn is None:
                c.close()

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failure("mutualisd did not stop on SIGTERM")
        rc = self.proc.returncode if self.proc else 0
        if self.proc:
            self.log.close()
        self.proc = None
        return rc

    def cleanup(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        if self.owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def cli(ctl, *args, token=None, input_text=None, env_extra=None):
    """Runs the mutualis CLI against ctl; returns (exit code, stdout, stderr)."""
    env = dict(os.environ)
    env["MUTUALIS_URL"] = ctl.url
    env["MUTUALIS_TOKEN"] = token or ctl.token
    env["MUTUALIS_CA"] = os.path.join(ctl.data_dir, "pki", "ca.pem")
    if env_extra:
        env.update(env_extra)
    p = subprocess.run([os.path.join(BIN, "mutualis")] + list(args), capture_output=True,
                       text=True, env=env, input=input_text, timeout=300)
    return p.returncode, p.stdout, p.stderr


def run(main):
    """Runs main(results) and prints the summary; exit code for sys.exit."""
    res = Results()
    try:
        main(res)
    except Failure as e:
        if len(e.args) < 2:  # raised by setup code, not by a check: a failure too
            print(f"FAIL {e.args[0] if e.args else 'setup'}", flush=True)
            res.failed += 1
    except Exception as e:  # an unexpected error is a failure too
        import traceback
        traceback.print_exc()
        res.failed += 1
    return res.done()
