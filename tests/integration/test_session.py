"""Portal sessions and the portal's static files, over HTTPS against a real mutualisd.

Login (cookie attributes, answer, audit), wrong and unknown credentials (401, same detail),
bad login bodies (400), the CSRF rule (a cookie-authenticated change without the token, or
with a wrong one, is refused with 403 and changes nothing; GET needs no token; a bearer token
needs none), a cookie of a disabled or deleted user, logout (the cookie stops working; a
logout without the token is refused), the rate limit on failed logins (429 + Retry-After,
even for the right password meanwhile), and the static portal (types, CSP and other
headers, ETag and 304, unknown files 404). Idle and absolute expiry are checked with an
injected clock in tests/unit/auth/test_session.c.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Controller, Failure, run  # noqa: E402

PW = "correct horse battery staple"


def main(res):
    ctl = Controller().start()
    try:
        body(ctl, res)
    finally:
        ctl.stop()
        ctl.cleanup()


def must(r, status, what):
    if r.status != status:
        raise Failure(f"setup {what}: expected {status}, got {r!r}")
    return r.json


def is_problem(r):
    return r.headers.get("content-type", "").startswith("application/problem+json") and \
        bool(r.json and r.json.get("detail"))


def cookie_of(r):
    sc = r.headers.get("set-cookie", "")
    return sc.split(";")[0] if sc.startswith("mu_session=") else None


def body(ctl, res):
    rq = ctl.request
    tenant = must(rq("POST", "/v1/tenants", {"name": "Commune de Test", "kind": "commune",
                                             "insee": "01001"}), 201, "tenant")["id"]
    other = must(rq("POST", "/v1/tenants", {"name": "Commune Voisine", "kind": "commune",
                                            "insee": "01002"}), 201, "other tenant")["id"]
    alice = must(rq("POST", "/v1/users", {"name": "alice", "role": "operator", "password": PW}),
                 201, "alice")["id"]
    carol = must(rq("POST", "/v1/users", {"name": "carol", "role": "tenant-admin",
                                          "tenant_id": tenant, "password": PW}), 201, "carol")["id"]

    def login(name, pw=PW):
        return rq("POST", "/v1/session", {"username": name, "password": pw}, token=None)

    def as_cookie(method, path, cookie, body=None, csrf=None):
        h = {"Cookie": cookie}
        if csrf is not None:
            h["X-CSRF-Token"] = csrf
        return rq(method, path, body, token=None, headers=h)

    def count_tenants():
        return len(must(rq("GET", "/v1/tenants?limit=1000"), 200, "tenants")["items"])

    # ---- login -----------------------------------------------------------------------
    r = login("alice")
    res.check(r.status == 200, f"login answers 200 (got {r.status})")
    sc = r.headers.get("set-cookie", "")
    attrs = [a.strip() for a in sc.split(";")]
    value = attrs[0].split("=", 1)[1] if "=" in attrs[0] else ""
    res.check(attrs[0].startswith("mu_session=") and len(value) == 64 and
              all(c in "0123456789abcdef" for c in value), "cookie mu_session=<256 bits in hex>")
    for a in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        res.check(a in attrs, f"cookie attribute {a}")
    res.check(any(a.startswith("Max-Age=") and 0 < int(a[8:]) <= 12 * 3600 for a in attrs),
              "cookie Max-Age within 12 h")
    j = r.json or {}
    res.check(j.get("user") == "alice" and j.get("role") == "operator" and
              j.get("tenant_id") is None and len(j.get("csrf_token") or "") == 64,
              "login answer: user, role, tenant_id, csrf_token")
    res.check(r.headers.get("cache-control") == "no-store", "login answer is not cached")
    ck, csrf = cookie_of(r), j.get("csrf_token")

    r = as_cookie("GET", "/v1/session", ck)
    res.check(r.status == 200 and r.json.get("csrf_token") == csrf and r.json.get("user") == "alice",
              "GET /v1/session with the cookie: who am I and the same CSRF token")
    r = as_cookie("GET", "/v1/whoami", ck)
    res.check(r.status == 200 and r.json.get("user") == "alice" and r.json.get("token_id") == 0,
              "a cookie authenticates API reads without a CSRF token (token_id 0)")
    r = rq("GET", "/v1/session")
    res.check(r.status == 200 and r.json.get("csrf_token") is None,
              "GET /v1/session with a bearer token: no session, csrf_token null")

    # ---- wrong credentials and bad bodies --------------------------------------------
    r1 = login("alice", "wrong password here")
    r2 = login("nobody", PW)
    res.check(r1.status == 401 and is_problem(r1), f"wrong password → 401 problem ({r1.status})")
    res.check(r2.status == 401 and r1.json.get("detail") == r2.json.get("detail"),
              "unknown user → 401 with the same detail as a wrong password")
    res.check(not r1.headers.get("set-cookie"), "no cookie on a failed login")
    for b, what in ((None, "no body"), ({"username": "alice"}, "no password"),
                    ({"username": "alice", "password": PW, "remember": True}, "unknown field"),
                    ({"username": "Alice Smith", "password": PW}, "user name outside the allow-list"),
                    ({"username": "alice", "password": 12}, "password not a string"),
                    ({"username": "alice", "password": "x" * 300}, "password too long")):
        r = rq("POST", "/v1/session", b, token=None)
        res.check(r.status == 400 and is_problem(r) and not r.headers.get("set-cookie"),
                  f"login with {what} → 400 problem ({r.status})")
    r = rq("POST", "/v1/session", raw='{"username":"alice","password":"a","username":"b"}',
           token=None)
    res.check(r.status == 400, "login with a duplicate key → 400")

    # ---- CSRF --------------------------------------------------------------------------
    before = count_tenants()
    r = as_cookie("POST", "/v1/tenants", ck, {"name": "Sans jeton", "kind": "other"})
    res.check(r.status == 403 and is_problem(r) and "CSRF" in r.json["detail"],
              f"cookie POST without X-CSRF-Token → 403 'missing or wrong CSRF token' ({r.status})")
    r = as_cookie("POST", "/v1/tenants", ck, {"name": "Mauvais jeton", "kind": "other"},
                  csrf="0" * 64)
    res.check(r.status == 403, "cookie POST with a wrong X-CSRF-Token → 403")
    r = as_cookie("POST", "/v1/tenants", ck, {"name": "Jeton vide", "kind": "other"}, csrf="")
    res.check(r.status == 403, "cookie POST with an empty X-CSRF-Token → 403")
    r = as_cookie("DELETE", f"/v1/tenants/{tenant}", ck)
    res.check(r.status == 403, "cookie DELETE without X-CSRF-Token → 403")
    res.check(count_tenants() == before and
              rq("GET", f"/v1/tenants/{tenant}").status == 200, "nothing changed after the refusals")
    audit = must(rq("GET", "/v1/audit?limit=1000"), 200, "audit")["items"]
    res.check(any(e["outcome"] == "denied" and "CSRF" in (e.get("detail") or "") for e in audit),
              "CSRF refusals are audited")
    r = as_cookie("POST", "/v1/tenants", ck, {"name": "Avec jeton", "kind": "other"}, csrf=csrf)
    res.check(r.status == 201, f"cookie POST with the CSRF token → 201 ({r.status})")
    res.check(count_tenants() == before + 1, "... and it changed something")
    r = rq("POST", "/v1/tenants", {"name": "Par jeton", "kind": "other"},
           headers={"Cookie": ck})
    res.check(r.status == 201, "a bearer token needs no CSRF token, even with a cookie")

    # RBAC and scope apply to cookies as to tokens.
    rc = login("carol")
    ck_c, csrf_c = cookie_of(rc), rc.json["csrf_token"]
    res.check(rc.json.get("tenant_id") == tenant and rc.json.get("tenant_name") == "Commune de Test",
              "tenant-admin's session names its tenant")
    r = as_cookie("POST", "/v1/tenants", ck_c, {"name": "X", "kind": "other"}, csrf=csrf_c)
    res.check(r.status == 403 and "may not" in r.json.get("detail", ""),
              "cookie with the CSRF token still obeys RBAC (tenant-admin cannot create tenants)")
    r = as_cookie("GET", f"/v1/tenants/{other}", ck_c)
    res.check(r.status == 404, "cookie of a tenant-admin: another tenant answers 404")
    r = as_cookie("POST", "/v1/session", ck_c, {"username": "carol", "password": PW})
    res.check(r.status == 200, "login is public: a cookie without CSRF token may log in again")
    r = as_cookie("GET", "/v1/session", ck_c, csrf=csrf)
    res.check(r.status == 200 and r.json["csrf_token"] == csrf_c,
              "each session has its own CSRF token")
    r = as_cookie("POST", "/v1/tenants", ck_c, {"name": "X", "kind": "other"}, csrf=csrf)
    res.check(r.status == 403 and "CSRF" in r.json["detail"],
              "another session's CSRF token is refused")

    # ---- the user goes: disabled, then deleted -------------------------------------------
    bob = must(rq("POST", "/v1/users", {"name": "bob", "role": "observer", "password": PW}),
               201, "bob")["id"]
    rb = login("bob")
    ck_b = cookie_of(rb)
    res.check(as_cookie("GET", "/v1/session", ck_b).status == 200, "bob's session works")
    must(rq("PATCH", f"/v1/users/{bob}", {"disabled": True}), 200, "disable bob")
    r = as_cookie("GET", "/v1/session", ck_b)
    res.check(r.status == 401 and "disabled" in r.json.get("detail", ""),
              "a disabled user's session is refused (401)")
    r = login("bob")
    res.check(r.status == 401 and "disabled" in r.json.get("detail", ""),
              "a disabled user cannot log in (401 naming it)")
    must(rq("PATCH", f"/v1/users/{bob}", {"disabled": False}), 200, "enable bob")
    res.check(as_cookie("GET", "/v1/session", ck_b).status == 200, "enabled again: the session works")
    must(rq("DELETE", f"/v1/users/{bob}"), 204, "delete bob")
    res.check(as_cookie("GET", "/v1/session", ck_b).status == 401,
              "a deleted user's session is refused (401)")

    # ---- logout ------------------------------------------------------------------------
    r = as_cookie("DELETE", "/v1/session", ck)
    res.check(r.status == 403, "logout without the CSRF token → 403")
    res.check(as_cookie("GET", "/v1/session", ck).status == 200, "... and the session still works")
    r = as_cookie("DELETE", "/v1/session", ck, csrf=csrf)
    res.check(r.status == 204, f"logout → 204 ({r.status})")
    sc = r.headers.get("set-cookie", "")
    res.check(sc.startswith("mu_session=;") and "Max-Age=0" in sc, "logout clears the cookie")
    r = as_cookie("GET", "/v1/session", ck)
    res.check(r.status == 401 and is_problem(r), "after logout the cookie is refused (401)")
    r = as_cookie("POST", "/v1/tenants", ck, {"name": "Après", "kind": "other"}, csrf=csrf)
    res.check(r.status == 401, "after logout a change with cookie and token is refused (401)")
    res.check(rq("DELETE", "/v1/session").status == 204, "DELETE /v1/session with a token: 204, no-op")

    audit = must(rq("GET", "/v1/audit?limit=1000"), 200, "audit")["items"]
    logins = [e for e in audit if e["action"] == "session.create" and e["actor"] == "alice"]
    logouts = [e for e in audit if e["action"] == "session.delete" and e["actor"] == "alice"
               and e["outcome"] == "ok"]
    res.check(len(logins) == 1 and logins[0]["target"].startswith("session/"), "login audited")
    res.check(len(logouts) == 1 and logouts[0]["target"] == logins[0]["target"], "logout audited")
    res.check(not any(PW in str(e) or ck.split("=")[1] in str(e) for e in audit),
              "neither password nor cookie in the audit trail")

    # ---- static portal -----------------------------------------------------------------
    r = rq("GET", "/", token=None)
    res.check(r.status == 200 and r.headers.get("content-type") == "text/html; charset=utf-8" and
              "<html lang=\"fr\">" in r.body, "GET / serves the portal's HTML in French")
    csp = r.headers.get("content-security-policy", "")
    res.check("default-src 'self'" in csp and "frame-ancestors 'none'" in csp and
              "script-src 'self'" in csp and "unsafe-inline" not in csp, f"strict CSP ({csp})")
    res.check(r.headers.get("x-content-type-options") == "nosniff", "nosniff")
    res.check(r.headers.get("referrer-policy") == "no-referrer", "Referrer-Policy no-referrer")
    res.check(r.headers.get("cache-control") == "no-cache", "portal files revalidate (no-cache)")
    etag = r.headers.get("etag", "")
    res.check(len(etag) == 18 and etag.startswith('"'), f"strong ETag ({etag})")
    r2 = rq("GET", "/", token=None, headers={"If-None-Match": etag})
    res.check(r2.status == 304 and r2.body == "" and r2.headers.get("etag") == etag,
              "If-None-Match with the ETag → 304, empty")
    r2 = rq("GET", "/", token=None, headers={"If-None-Match": '"0000000000000000"'})
    res.check(r2.status == 200, "another ETag → 200")
    res.check("<script" not in r.body.replace('<script type="module" src="/portal/app.js"></script>', ""),
              "no inline script in the HTML")
    for name, ctype in (("app.js", "text/javascript; charset=utf-8"),
                        ("app.css", "text/css; charset=utf-8"),
                        ("i18n.js", "text/javascript; charset=utf-8"),
                        ("icon.svg", "image/svg+xml")):
        r = rq("GET", f"/portal/{name}", token=None)
        res.check(r.status == 200 and r.headers.get("content-type") == ctype and r.body,
                  f"/portal/{name} served as {ctype}")
    for path in ("/portal/nope.js", "/portal/.hidden", "/portal/web_assets.h",
                 "/portal/embed.cmake", "/portal/%2e%2e%2fmain.c", "/portal/a/b.js",
                 "/portal/APP.JS"):
        r = rq("GET", path, token=None)
        res.check(r.status == 404 and is_problem(r), f"{path} → 404 problem ({r.status})")
    r = rq("POST", "/", {}, token=None)
    res.check(r.status in (404, 405), "POST / is refused")

    # ---- rate limit (last: it blocks this source for a minute) -----------------------------
    # This source failed 3 times above (wrong password, unknown user, disabled user):
    # 7 more reach the 10 a minute.
    statuses = [login("alice", f"wrong password {i}").status for i in range(7)]
    res.check(statuses == [401] * 7, f"failures up to the tenth → 401 each ({statuses})")
    r = login("alice")
    res.check(r.status == 429 and is_problem(r) and r.headers.get("retry-after", "").isdigit()
              and 0 < int(r.headers["retry-after"]) <= 60 and not r.headers.get("set-cookie"),
              f"the 11th attempt, right password or not → 429 with Retry-After ({r.status})")
    r = login("carol")
    res.check(r.status == 429, "the source is limited for other users too")
    r = rq("GET", "/v1/whoami")
    res.check(r.status == 200, "token requests are not affected by the login limit")
    _ = (alice, carol)


if __name__ == "__main__":
    sys.exit(run(main))
