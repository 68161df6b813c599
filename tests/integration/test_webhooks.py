"""Event feed and webhooks, end to end: a real mutualisd, real HTTPS receivers on
127.0.0.1 with their own CA (webhook_ca_file), events appended to the store by a helper
(mu_test_event_append, as a feature appends them).

 - URL rules at PUT, with nothing stored on refusal: http://, userinfo, garbage, oversized,
   loopback (also IPv4-mapped IPv6 and a hex host) without the allow-list, a node's address.
 - Delivery: signature (HMAC-SHA256 over "t.body" with the secret shown once), event id in
   the header and the body; a 500 then a 200 (the retry carries the same event id, after
   the configured backoff, judged from the receiver's timestamps); a 302 is a failed attempt
   and is never followed, then given up after webhook_give_up_ms and recorded as failed.
 - Scope: a commune's webhook hears its subtree only, filtered by type prefix.
 - Restart mid-retry: the queue lives in the store; a stopped controller resumes the
   delivery (same event id), and events appended while it was down are delivered.
 - The feed: GET /v1/events scoped by role, type prefix, pagination; the CLI.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, Controller, Failure, cli, run  # noqa: E402
from webhook_receiver import Receiver, make_pki  # noqa: E402

RETRY_BASE_MS = 300
GIVE_UP_MS = 4000


def appender():
    p = os.path.join(BIN, "mu_test_event_append")
    if not os.path.exists(p):
        found = glob.glob(os.path.join(BIN, "**", "mu_test_event_append"), recursive=True)
        if not found:
            raise Failure("mu_test_event_append is not built")
        p = found[0]
    return p


def append_event(ctl, tenant, type_, subject, data=None):
    args = [appender(), ctl.data_dir, str(tenant), type_, subject]
    if data is not None:
        args.append(json.dumps(data))
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise Failure(f"appending an event failed: {p.stderr}")
    return int(p.stdout.strip())


def must(r, statuses, what):
    if r.status not in (statuses if isinstance(statuses, tuple) else (statuses,)):
        raise Failure(f"setup {what}: got {r!r}")
    return r.json


def main(res):
    tmp = tempfile.mkdtemp(prefix="mu-wh-")
    ca, cert, key = make_pki(tmp)
    receivers = []
    ctls = []
    try:
        refusals(res, ctls)
        deliveries(res, tmp, ca, cert, key, receivers, ctls)
    finally:
        for r in receivers:
            r.close()
        for c in ctls:
            try:
                c.stop()
            finally:
                c.cleanup()


def tenant(rq, name, kind, parent=None, **kw):
    b = {"name": name, "kind": kind}
    if parent:
        b["parent_id"] = parent
    b.update(kw)
    return must(rq("POST", "/v1/tenants", b), 201, "tenant")["id"]


def refusals(res, ctls):
    """Without an allow-list: every refused URL answers 400 with a detail and stores nothing."""
    ctl = Controller().start()
    ctls.append(ctl)
    rq = ctl.request
    S = tenant(rq, "Syndicat", "syndicat")
    C = tenant(rq, "Commune", "commune", S, insee="01001")
    # A node at a public address: its address is refused as a webhook target.
    must(rq("POST", "/v1/nodes", {"name": "node-far", "uri": "qemu+tls://198.51.100.7/system"}),
         201, "node")
    audit_before = len(rq("GET", "/v1/audit?limit=1000").json["items"])

    def refused(url, words, what):
        r = rq("PUT", f"/v1/tenants/{C}/webhook", {"url": url})
        detail = (r.json or {}).get("detail", "")
        ok = r.status == 400 and r.headers.get("content-type", "").startswith(
            "application/problem+json") and all(w in detail for w in words)
        if not ok:
            print(f"     got {r!r}")
        res.check(ok, f"PUT {what} -> 400 ({detail[:90]})")

    refused("http://203.0.113.10/hook", ["https"], "http:// URL")
    refused("https://user:pw@203.0.113.10/hook", ["user name"], "URL with userinfo")
    refused("https://exa mple.org/", ["spaces"], "URL with a space")
    refused("https://" + "a" * 2100 + ".org/", ["too long"], "oversized URL")
    refused("https://203.0.113.10:0/", ["port"], "port 0")
    refused("https://203.0.113.10:65536/", ["port"], "port 65536")
    refused("ftp://203.0.113.10/", ["https://"], "ftp URL")
    refused("https:///nohost", ["no host"], "URL without host")
    refused("https://203.0.113.10/a#frag", ["fragment"], "URL with a fragment")
    refused("https://127.0.0.1/hook", ["loopback", "webhook_allow"], "loopback without allow-list")
    refused("https://localhost/hook", ["loopback"], "localhost without allow-list")
    refused("https://[::1]/hook", ["loopback"], "IPv6 loopback")
    refused("https://[::ffff:127.0.0.1]/hook", ["loopback"], "IPv4-mapped loopback")
    refused("https://0x7f000001/hook", ["invalid host"], "hex IPv4 host")
    refused("https://127.1/hook", ["invalid host"], "short IPv4 host")
    refused("https://10.1.2.3/hook", ["private"], "RFC 1918 address")
    refused("https://169.254.169.254/latest", ["link-local"], "cloud metadata address")
    refused("https://100.64.0.1/", ["carrier-grade"], "CGNAT address")
    refused("https://[fd00::1]/", ["private"], "IPv6 ULA")
    refused("https://[fe80::1]/", ["link-local"], "IPv6 link-local")
    refused("https://224.0.0.1/", ["multicast"], "multicast")
    refused("https://255.255.255.255/", ["broadcast"], "broadcast")
    refused("https://0.0.0.0/", ["unspecified"], "unspecified")
    refused("https://198.51.100.7/hook", ["node-far"], "a node's address")
    refused("https://[::ffff:198.51.100.7]/hook", ["node-far"], "a node's address, IPv4-mapped")

    r = rq("PUT", f"/v1/tenants/{C}/webhook", {"url": "https://203.0.113.10/h", "types": ["BAD"]})
    res.check(r.status == 400 and "types" in r.json.get("detail", ""), "bad type prefix -> 400")
    r = rq("PUT", f"/v1/tenants/{C}/webhook", {"url": "https://203.0.113.10/h", "secret": "x"})
    res.check(r.status == 400, "unknown field (a chosen secret) -> 400")
    r = rq("GET", f"/v1/tenants/{C}/webhook")
    res.check(r.status == 404, "nothing stored after the refusals (GET 404)")
    items = rq("GET", "/v1/audit?limit=1000").json["items"]
    oks = [e for e in items[audit_before:] if e["action"] == "webhook.update" and
           e["outcome"] == "ok"]
    res.check(not oks, "no webhook change in the audit trail after the refusals")
    r = rq("PUT", f"/v1/tenants/{C}/webhook", {"url": "https://203.0.113.10/hook"})
    res.check(r.status == 201 and len(r.json.get("secret", "")) == 64,
              "a public address is accepted (201, secret of 64 hex)")
    r = rq("PUT", "/v1/tenants/999999/webhook", {"url": "https://203.0.113.10/hook"})
    res.check(r.status == 404, "unknown tenant -> 404")
    ctl.stop()


def wait_webhook(rq, tenant_id, cond, timeout=15):
    """GETs the tenant's webhook until cond(answer) holds (or the timeout); the last answer."""
    end = time.time() + timeout
    while True:
        g = rq("GET", f"/v1/tenants/{tenant_id}/webhook").json
        if cond(g) or time.time() > end:
            return g
        time.sleep(0.1)


def deliveries(res, tmp, ca, cert, key, receivers, ctls):
    conf = os.path.join(tmp, "mutualisd.json")
    with open(conf, "w") as f:
        json.dump({"webhook_allow": ["127.0.0.1/32", "::1/128"], "webhook_ca_file": ca,
                   "webhook_retry_base_ms": RETRY_BASE_MS, "webhook_give_up_ms": GIVE_UP_MS}, f)
    ctl = Controller(extra_args=["--config", conf]).start()
    ctls.append(ctl)
    rq = ctl.request
    S = tenant(rq, "Syndicat", "syndicat")
    E = tenant(rq, "CC de la Dombes", "epci", S, epci_form="CC")
    C1 = tenant(rq, "Commune Un", "commune", E, insee="01001")
    C2 = tenant(rq, "Commune Deux", "commune", E, insee="01002")
    C3 = tenant(rq, "Commune Trois", "commune", E, insee="01003")
    uid = must(rq("POST", "/v1/users", {"name": "maire-un", "role": "tenant-admin",
                                        "tenant_id": C1}), 201, "user")["id"]
    tok1 = must(rq("POST", "/v1/tokens", {"name": "t", "user_id": uid}), 201, "token")["secret"]

    flaky = Receiver(cert, key, script=(500, 200))
    final = Receiver(cert, key, script=(200,))
    redirect = Receiver(cert, key, script=(302,), redirect_to=final.url("/moved"))
    down = Receiver(cert, key, script=(503,))
    receivers += [flaky, final, redirect, down]

    # --- a commune admin sets its webhook: secret shown once, never again
    r = rq("PUT", f"/v1/tenants/{C1}/webhook", {"url": flaky.url(), "types": ["request."]},
           token=tok1)
    res.check(r.status == 201 and len(r.json.get("secret", "")) == 64 and
              all(ch in "0123456789abcdef" for ch in r.json["secret"]),
              "tenant-admin PUT with the allow-list -> 201 and a 64-hex secret")
    flaky.secret = r.json["secret"]
    g = rq("GET", f"/v1/tenants/{C1}/webhook", token=tok1)
    res.check(g.status == 200 and "secret" not in g.json and g.json["url"] == flaky.url() and
              g.json["types"] == ["request."], "GET shows the settings but not the secret")
    r = rq("PUT", f"/v1/tenants/{C2}/webhook", {"url": flaky.url()}, token=tok1)
    res.check(r.status == 404, "another commune's webhook -> 404 for a commune admin")
    r = rq("PUT", f"/v1/tenants/{C1}/webhook", {"url": "http://127.0.0.1/"}, token=tok1)
    g2 = rq("GET", f"/v1/tenants/{C1}/webhook", token=tok1)
    res.check(r.status == 400 and g2.json["url"] == flaky.url(),
              "a refused PUT leaves the previous settings in place")

    # --- 500 then 200: the retry carries the same event id, after the backoff
    before = append_event(ctl, C1, "request.created", "request/0")  # noqa: F841 (queued)
    other = append_event(ctl, C2, "request.approved", "request/2")  # C2: not C1's subtree
    vm = append_event(ctl, C1, "vm.ready", "vm/9")  # filtered out by "request."
    ev = append_event(ctl, C1, "request.approved", "request/1", {"request_id": 1, "note": "é"})
    reqs = flaky.wait(lambda rs: any(x["json"] and x["json"]["id"] == ev and x["status"] == 200
                                     for x in rs))
    res.check(reqs is not None, f"event {ev} delivered after a 500")
    reqs = reqs or flaky.snapshot()
    mine = [x for x in reqs if x["json"] and x["json"]["id"] == ev]
    res.check(len(mine) == 2 and [x["status"] for x in mine] == [500, 200],
              "exactly two attempts for the event: 500 then 200")
    res.check(all(x["headers"].get("x-mutualis-event") == str(ev) for x in mine),
              "both attempts carry X-Mutualis-Event with the same event id")
    res.check(all(x["signature_ok"] for x in reqs), "every signature verifies with the secret")
    res.check(all(x["headers"].get("content-type") == "application/json" for x in mine),
              "Content-Type: application/json")
    body = mine[-1]["json"]
    res.check(body["type"] == "request.approved" and body["tenant_id"] == C1 and
              body["subject"] == "request/1" and body["data"] == {"request_id": 1, "note": "é"}
              and isinstance(body["at_ms"], int), "the body carries the event")
    gap = mine[1]["at"] - mine[0]["at"]
    res.check(gap >= RETRY_BASE_MS / 1000 * 0.9, f"the retry came after the backoff ({gap:.2f} s)")
    ids = [x["json"]["id"] for x in reqs if x["json"]]
    res.check(other not in ids and vm not in ids,
              "a sibling's event and a filtered type were not delivered")
    tampered = mine[-1]["headers"]["x-mutualis-signature"]
    from webhook_receiver import verify_signature
    res.check(not verify_signature(flaky.secret, tampered, mine[-1]["body"] + b" "),
              "the signature does not verify for a changed body")
    # The receiver has answered; the controller records the outcome right after.
    g = wait_webhook(rq, C1, lambda w: w["status"]["pending"] == 0)
    st = g["status"]
    res.check(st["last_outcome"] == "delivered" and st["consecutive_failures"] == 0 and
              st["delivered"] >= 2 and st["last_http_status"] == 200,
              f"status after delivery: {st}")
    outcomes = [(a["event_id"], a["outcome"], a["http_status"]) for a in g["recent_attempts"]]
    res.check((ev, "retry", 500) in outcomes and (ev, "delivered", 200) in outcomes,
              "attempts recorded: retry (500), delivered (200)")

    # --- rotation: a new secret, shown once; deliveries are signed with it
    r = rq("PUT", f"/v1/tenants/{C1}/webhook", {"url": flaky.url(), "types": ["request."],
                                                "rotate_secret": True})
    res.check(r.status == 200 and len(r.json.get("secret", "")) == 64 and
              r.json["secret"] != flaky.secret, "rotate_secret answers a new secret once")
    flaky.secret = r.json["secret"]
    r = rq("PUT", f"/v1/tenants/{C1}/webhook", {"url": flaky.url(), "types": ["request."]})
    res.check(r.status == 200 and "secret" not in r.json, "a PUT without rotation shows none")
    ev2 = append_event(ctl, C1, "request.ready", "request/1")
    reqs = flaky.wait(lambda rs: any(x["json"] and x["json"]["id"] == ev2 for x in rs))
    res.check(reqs is not None and all(x["signature_ok"] for x in reqs
                                       if x["json"] and x["json"]["id"] == ev2),
              "after rotation, deliveries are signed with the new secret")

    # --- a host name: resolved, checked (every address), pinned; TLS checks the name
    named = Receiver(cert, key, script=(200,))
    receivers.append(named)
    r = rq("PUT", f"/v1/tenants/{C1}/webhook", {"url": named.url("/named", host="localhost"),
                                                "types": ["request."]})
    res.check(r.status == 200 and "secret" not in r.json, "a host name is accepted (allow-listed)")
    named.secret = flaky.secret
    ev_named = append_event(ctl, C1, "request.closed", "request/1")
    reqs = named.wait(lambda rs: any(x["json"] and x["json"]["id"] == ev_named for x in rs))
    res.check(reqs is not None and all(x["signature_ok"] and x["path"] == "/named"
                                       for x in reqs),
              "delivered to https://localhost:PORT/named (resolved once, pinned)")

    # --- a 302 is a failed attempt, never followed; given up after the deadline, recorded
    r = rq("PUT", f"/v1/tenants/{C2}/webhook", {"url": redirect.url()})
    redirect.secret = r.json["secret"]
    ev3 = append_event(ctl, C2, "request.approved", "request/3")
    g = wait_webhook(rq, C2, lambda w: w["status"]["failed"] >= 1, GIVE_UP_MS / 1000 + 15)
    st = g["status"]
    res.check(st["failed"] == 1 and st["last_outcome"] == "failed" and
              st["last_http_status"] == 302 and "redirect" in (st["last_error"] or ""),
              f"302: attempts failed and the delivery is given up and recorded ({st})")
    got = [x for x in redirect.snapshot() if x["json"] and x["json"]["id"] == ev3]
    res.check(len(got) >= 2, f"the redirecting receiver was retried ({len(got)} attempts)")
    res.check(not any(x["path"] == "/moved" for x in final.snapshot()),
              "the redirect was never followed")
    times = [x["at"] for x in got]
    res.check(times[-1] - times[0] <= GIVE_UP_MS / 1000 + 2,
              "no attempt long after the give-up deadline")
    res.check(st["pending"] == 0, "nothing left pending after giving up")

    # --- restart mid-retry: the store holds the queue
    r = rq("PUT", f"/v1/tenants/{C3}/webhook", {"url": down.url()})
    down.secret = r.json["secret"]
    ev4 = append_event(ctl, C3, "alert.firing", "alert/x")
    res.check(down.wait(lambda rs: any(x["json"] and x["json"]["id"] == ev4 for x in rs))
              is not None, "first attempt answered 503")
    st = wait_webhook(rq, C3, lambda w: w["status"]["last_outcome"] == "retry")["status"]
    res.check(st["pending"] == 1 and st["last_outcome"] == "retry" and
              st["last_http_status"] == 503, "the delivery is pending a retry")
    res.check(ctl.stop() == 0, "controller stopped cleanly (SIGTERM) mid-retry")
    n_before = len(down.snapshot())
    down.set_script([200])
    ev5 = append_event(ctl, C3, "alert.resolved", "alert/x")  # while the controller is down
    ctl.start()
    reqs = down.wait(lambda rs: {ev4, ev5} <= {x["json"]["id"] for x in rs
                                              if x["json"] and x["status"] == 200})
    res.check(reqs is not None, f"after the restart, event {ev4} (mid-retry) and {ev5} (appended "
                                "while down) are delivered")
    reqs = reqs or down.snapshot()
    after = [x for x in reqs[n_before:] if x["json"]]
    res.check(any(x["json"]["id"] == ev4 and x["headers"]["x-mutualis-event"] == str(ev4)
                  for x in after), "the resumed delivery carries the same event id")
    res.check(all(x["signature_ok"] for x in reqs), "signatures verify across the restart")
    delivered4 = [x for x in reqs if x["json"] and x["json"]["id"] == ev4 and x["status"] == 200]
    res.check(len(delivered4) == 1, "the event is delivered once")

    # --- the feed
    r = rq("GET", "/v1/events?limit=1000")
    all_ids = [e["id"] for e in r.json["items"]]
    res.check(r.status == 200 and {ev, other, vm, ev3, ev4, ev5} <= set(all_ids) and
              all_ids == sorted(all_ids), "operator reads every event, in id order")
    r = rq("GET", "/v1/events?limit=1000", token=tok1)
    tids = {e["tenant_id"] for e in r.json["items"]}
    res.check(r.status == 200 and tids == {C1}, "a commune admin reads only its own events")
    r = rq("GET", f"/v1/events?tenant={C2}", token=tok1)
    res.check(r.status == 404, "a commune admin asking for a sibling's events -> 404")
    r = rq("GET", f"/v1/events?tenant={E}&type=request.approved")
    res.check([e["id"] for e in r.json["items"]] == [other, ev, ev3],
              "type prefix and subtree filter")
    r = rq("GET", "/v1/events?type=Request")
    res.check(r.status == 400 and "type" in r.json["detail"], "bad type prefix -> 400")
    r = rq("GET", "/v1/events?limit=2")
    res.check(len(r.json["items"]) == 2 and r.json["next"] == r.json["items"][-1]["id"] and
              r.json["next_after"] == r.json["next"], "pagination: next is the last id")
    r2 = rq("GET", f"/v1/events?limit=2&after={r.json['next']}")
    res.check(r2.json["items"][0]["id"] > r.json["next"], "after= continues the feed")

    # --- audit and the CLI
    items = rq("GET", "/v1/audit?limit=1000").json["items"]
    wh = [e for e in items if e["action"] == "webhook.update" and e["outcome"] == "ok"]
    res.check(len(wh) >= 5 and all(e["target"].endswith("/webhook") for e in wh) and
              not any(flaky.secret in (e["detail"] or "") for e in wh),
              "webhook changes are audited, without the secret")
    code, out, err = cli(ctl, "event", "list", "--json", "--limit", "1000")
    res.check(code == 0 and ev in [e["id"] for e in json.loads(out)["items"]],
              "mutualis event list --json")
    code, out, err = cli(ctl, "event", "list", "--after", str(ev4), "--type", "alert.")
    res.check(code == 0 and "alert.resolved" in out and "alert.firing" not in out,
              "mutualis event list --after --type (table)")
    code, out, err = cli(ctl, "webhook", "show", "--tenant", str(C1))
    res.check(code == 0 and named.url("/named", host="localhost") in out and "delivered" in out
              and flaky.secret not in out and "request." in out,
              "mutualis webhook show")
    code, out, err = cli(ctl, "webhook", "set", "--tenant", str(C1), "--url", final.url(),
                         "--type", "vm.", "--rotate-secret")
    res.check(code == 0 and "secret:" in out and "not be shown again" in err,
              "mutualis webhook set --rotate-secret prints the secret once")
    code, out, err = cli(ctl, "webhook", "set", "--tenant", str(C1), "--url", "http://x.org/")
    res.check(code == 1 and "https" in err and out == "", "mutualis webhook set refuses http://")
    code, out, err = cli(ctl, "webhook", "delete", "--tenant", str(C1))
    res.check(code == 0 and rq("GET", f"/v1/tenants/{C1}/webhook").status == 404,
              "mutualis webhook delete")
    code, out, err = cli(ctl, "webhook", "show", "--tenant", str(C1))
    res.check(code == 1 and "no webhook" in err, "show after delete: a clear error")
    res.check(ctl.stop() == 0, "controller stops cleanly")


if __name__ == "__main__":
    sys.exit(run(main))
