"""The HTTPS server's limits and manners, with a controller started from a config file
(conn_timeout_s 1, body_max_bytes 2048): a slow client (half a request line, or no TLS
handshake at all) is disconnected; a body above the cap gets 413 whether its length is
declared or chunked, and the server answers the next request; the import route keeps its own,
larger cap; a known path with the wrong method gets 405 with an Allow header; an unknown
path a 404 problem; 32 concurrent keep-alive clients × 50 requests are all answered 200;
SIGTERM in the middle of such a load stops the controller with exit 0.

No timing assertion except the slow-client timeout, judged generously (closed within 10 s
of a 1 s timeout)."""
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SRC, Controller, run  # noqa: E402

BODY_MAX = 2048


def main(res):
    ctl = Controller()
    cfg = os.path.join(ctl.data_dir, "mutualisd.json")
    with open(cfg, "w") as f:
        json.dump({"conn_timeout_s": 1, "body_max_bytes": BODY_MAX}, f)
    ctl.extra_args = ["--config", cfg]
    try:
        ctl.start()
        slow_clients(ctl, res)
        body_cap(ctl, res)
        methods_and_paths(ctl, res)
    finally:
        ctl.stop()
        ctl.cleanup()
    # The load runs with the default timeouts: with 1 s, a client thread that waits a moment
    # for the interpreter between two requests could see its idle connection closed.
    ctl = Controller()
    try:
        ctl.start()
        concurrency(ctl, res)
        sigterm_under_load(ctl, res)
    finally:
        ctl.stop()
        ctl.cleanup()


def closed_within(sock, limit):
    """Reads until the peer closes; the seconds it took, or None if still open at limit."""
    t0 = time.monotonic()
    sock.settimeout(0.5)
    while time.monotonic() - t0 < limit:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - t0
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        except (ConnectionResetError, ssl.SSLError, OSError):
            return time.monotonic() - t0
    return None


def slow_clients(ctl, res):
    # TLS done, then half a request line, then nothing.
    raw = socket.create_connection(("127.0.0.1", ctl.port), timeout=10)
    s = ctl.ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(b"GET /v1/hea")
    t0 = time.monotonic()
    time.sleep(3)
    took = closed_within(s, 7)
    s.close()
    res.check(took is not None, "a client that sends half a request line is disconnected "
              f"(closed {time.monotonic() - t0:.1f} s after its last byte)")
    # No TLS handshake at all.
    raw = socket.create_connection(("127.0.0.1", ctl.port), timeout=10)
    t0 = time.monotonic()
    time.sleep(3)
    took = closed_within(raw, 7)
    raw.close()
    res.check(took is not None, "a client that never starts TLS is disconnected "
              f"(closed {time.monotonic() - t0:.1f} s after connecting)")
    # An idle keep-alive connection is closed too, and a new one works.
    c = ctl.conn()
    r = ctl.request("GET", "/v1/health", token=None, conn=c)
    res.check(r.status == 200, "a request on a fresh connection")
    took = closed_within(c.sock, 10)
    c.close()
    res.check(took is not None, "an idle keep-alive connection is closed after the timeout")
    res.check(ctl.request("GET", "/v1/health", token=None).status == 200,
              "the server still answers after closing slow clients")


def body_cap(ctl, res):
    rq = ctl.request
    before = rq("GET", "/v1/tenants").json["items"]
    big = json.dumps({"name": "x" * (BODY_MAX + 10), "kind": "other"})
    c = ctl.conn()
    r = rq("POST", "/v1/tenants", raw=big, conn=c)
    c.close()
    res.check(r.status == 413 and r.headers.get("content-type", "").startswith(
        "application/problem+json") and str(BODY_MAX) in r.json["detail"],
        f"a declared body above body_max_bytes → 413 problem ({r})")
    res.check(rq("GET", "/v1/health", token=None).status == 200,
              "the server answers the next request")

    # The same without Content-Length (chunked): the body is read, dropped, and refused.
    def chunks():
        for _ in range(8):
            yield b" " * 1000
        yield big.encode()
    c = ctl.conn()
    c.request("POST", "/v1/tenants", body=chunks(), encode_chunked=True,
              headers={"Authorization": f"Bearer {ctl.token}",
                       "Content-Type": "application/json"})
    resp = c.getresponse()
    status, payload = resp.status, resp.read()
    c.close()
    res.check(status == 413 and b"larger than" in payload,
              f"a chunked body above the cap → 413 ({status} {payload[:200]!r})")
    r = rq("POST", "/v1/tenants", {"name": "Après 413", "kind": "other"})
    res.check(r.status == 201, "the server takes the next write")
    small = rq("POST", "/v1/tenants", raw=json.dumps({"name": "y" * 100, "kind": "other"}))
    res.check(small.status == 201, "a body under the cap is taken")
    after = rq("GET", "/v1/tenants").json["items"]
    res.check(len(after) == len(before) + 2, "the refused bodies created nothing")

    # The import route keeps its own, larger cap.
    with open(os.path.join(SRC, "tests", "data", "cog", "epci.json"), encoding="utf-8") as f:
        epci = json.load(f)
    with open(os.path.join(SRC, "tests", "data", "cog", "communes.json"), encoding="utf-8") as f:
        communes = json.load(f)
    body = {"parent_id": r.json["id"], "epci": epci, "communes": communes, "dry_run": True}
    res.check(len(json.dumps(body)) > BODY_MAX, "(the import body is above body_max_bytes)")
    r = rq("POST", "/v1/tenants/import", body)
    res.check(r.status == 200 and r.json["planned"] == 15,
              f"the import route is not held to body_max_bytes ({r.status})")


def methods_and_paths(ctl, res):
    rq = ctl.request
    for method, path, allowed in [("DELETE", "/v1/health", {"GET"}),
                                  ("PUT", "/v1/tenants", {"GET", "POST"}),
                                  ("POST", "/v1/whoami", {"GET"})]:
        r = rq(method, path)
        allow = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
        res.check(r.status == 405 and allowed <= allow and method not in allow and
                  r.headers.get("content-type", "").startswith("application/problem+json")
                  and r.json["detail"],
                  f"{method} {path} → 405 with Allow: {r.headers.get('allow')}")
    for path in ("/v1/nothing-here", "/v2/tenants", "/portal/nothing", "/v1/tenants/1/nothing"):
        r = rq("GET", path)
        res.check(r.status == 404 and r.headers.get("content-type", "").startswith(
            "application/problem+json") and r.json["status"] == 404 and r.json["detail"]
            and r.json["request_id"] == r.headers.get("x-request-id"),
            f"GET {path} → 404 problem ({r.json and r.json.get('detail')!r})")


def worker(ctl, path, n, results, idx, stop=None):
    """n requests over one keep-alive connection; results[idx] counts the 200s as they come
    and stops at the first other answer or error."""
    c = None
    try:
        c = ctl.conn()
        c.timeout = 30
        for _ in range(n):
            if stop is not None and stop.is_set():
                break
            r = ctl.request("GET", path, conn=c)
            if r.status != 200:
                break
            results[idx] += 1
    except Exception:  # a server that stops under load closes connections: fine here
        if stop is None:
            raise
    finally:
        if c:
            c.close()


def concurrency(ctl, res):
    T = ctl.request("POST", "/v1/tenants", {"name": "Charge", "kind": "other"}).json["id"]
    threads, n = 32, 50
    results = [0] * threads
    ts = [threading.Thread(target=worker, args=(ctl, f"/v1/tenants/{T}", n, results, i))
          for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    res.check(not any(t.is_alive() for t in ts) and results == [n] * threads,
              f"{threads} keep-alive clients × {n} requests all answered 200 "
              f"({sum(results)} of {threads * n})")
    res.check(ctl.request("GET", "/v1/health", token=None).status == 200,
              "the server is fine after the load")


def sigterm_under_load(ctl, res):
    stop = threading.Event()
    threads = 16
    results = [0] * threads
    ts = [threading.Thread(target=worker, args=(ctl, "/v1/tenants?limit=10", 100000, results, i,
                                                stop))
          for i in range(threads)]
    for t in ts:
        t.start()
    deadline = time.monotonic() + 60
    while sum(results) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    ctl.send_signal(signal.SIGTERM)
    try:
        rc = ctl.proc.wait(timeout=30)
    except Exception:
        rc = None
    stop.set()
    for t in ts:
        t.join(60)
    res.check(rc == 0, f"SIGTERM during load → exit 0 (exit {rc})")
    res.check(not any(t.is_alive() for t in ts), "every client was released")
    res.check(sum(results) >= 200, f"the load was running ({sum(results)} requests answered)")
    log = ctl.read_log()
    res.check("stopping signal=TERM" in log, "the controller logged its stop")
    for bad in ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer"):
        res.check(bad not in log, f"no '{bad}' in the log")


if __name__ == "__main__":
    sys.exit(run(main))
