"""Bad input: malformed JSON, the cJSON traps (\\u0000, invalid UTF-8, duplicate keys,
non-integers and out-of-range numbers, 1e400), wrong types, unknown fields, oversized
bodies, bad SIREN/INSEE, cycles, SQL and path metacharacters. Each answer is a 4xx
problem+json with a detail a person can act on, and the database is unchanged (only the
audit trail records the refused attempt)."""
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Controller, run  # noqa: E402


def snapshot(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'audit%' "
            "AND name NOT LIKE 'sqlite_%'")]
        out = {}
        for t in tables:
            out[t] = sorted(map(repr, con.execute(f'SELECT * FROM "{t}"')))
        return out
    finally:
        con.close()


def main(res):
    ctl = Controller()
    try:
        ctl.start()
        cases(ctl, res)
    finally:
        ctl.stop()
        ctl.cleanup()


def cases(ctl, res):
    rq = ctl.request
    S = rq("POST", "/v1/tenants", {"name": "Syndicat", "kind": "syndicat"}).json["id"]
    E = rq("POST", "/v1/tenants", {"name": "CC Test", "kind": "epci", "epci_form": "CC",
                                   "parent_id": S, "siren": "200046977"}).json["id"]
    C = rq("POST", "/v1/tenants", {"name": "Commune", "kind": "commune", "insee": "01001",
                                   "parent_id": E}).json["id"]
    db = os.path.join(ctl.data_dir, "mutualis.db")

    T = "/v1/tenants"
    big = '{"name": "' + "x" * (2 << 20) + '", "kind": "other"}'
    table = [
        # (what, method, path, raw body, expected status, field or None)
        ("malformed JSON", "POST", T, '{"name": "x", "kind": ', 400, None),
        ("not an object", "POST", T, '["name"]', 400, None),
        ("trailing garbage", "POST", T, '{"name": "x", "kind": "other"} x', 400, None),
        ("\\u0000 in a string", "POST", T, '{"name": "ab\\u0000cd", "kind": "other"}', 400, None),
        ("invalid UTF-8", "POST", T, b'{"name": "\xc3\x28", "kind": "other"}', 400, None),
        ("lone surrogate", "POST", T, '{"name": "\\ud800", "kind": "other"}', 400, None),
        ("duplicate key", "POST", T, '{"name": "a", "name": "b", "kind": "other"}', 400, None),
        ("1e400", "POST", T, '{"name": "x", "kind": "other", "population": 1e400}', 400, None),
        ("non-integer population", "POST", T,
         '{"name": "x", "kind": "other", "population": 1.5}', 400, "population"),
        ("population beyond 2^32", "POST", T,
         '{"name": "x", "kind": "other", "population": 4294967297}', 400, "population"),
        ("negative population", "POST", T,
         '{"name": "x", "kind": "other", "population": -1}', 400, "population"),
        ("wrong type for name", "POST", T, '{"name": 12, "kind": "other"}', 400, "name"),
        ("unknown field", "POST", T, '{"name": "x", "kind": "other", "sirne": "1"}', 400,
         "sirne"),
        ("missing kind", "POST", T, '{"name": "x"}', 400, "kind"),
        ("unknown kind", "POST", T, '{"name": "x", "kind": "mairie"}', 400, "kind"),
        ("bad SIREN (Luhn)", "POST", T, '{"name": "x", "kind": "other", "siren": "123456789"}',
         400, "siren"),
        ("SIREN with letters", "POST", T, '{"name": "x", "kind": "other", "siren": "12345678A"}',
         400, "siren"),
        ("bad INSEE", "POST", T, '{"name": "x", "kind": "commune", "insee": "20001"}', 400,
         "insee"),
        ("INSEE on a non-commune", "POST", T, '{"name": "x", "kind": "other", "insee": "01001"}',
         400, "insee"),
        ("commune without INSEE", "POST", T, '{"name": "x", "kind": "commune"}', 400, "insee"),
        ("epci without form", "POST", T, '{"name": "x", "kind": "epci"}', 400, "epci_form"),
        ("control character in name", "POST", T, '{"name": "a\\u0007b", "kind": "other"}', 400,
         "name"),
        ("empty name", "POST", T, '{"name": "", "kind": "other"}', 400, "name"),
        ("duplicate SIREN", "POST", T, '{"name": "x", "kind": "other", "siren": "200046977"}',
         409, None),
        ("unknown parent", "POST", T, '{"name": "x", "kind": "other", "parent_id": 987654}', 400,
         "parent_id"),
        ("oversized body", "POST", T, big, 413, None),
        ("cycle: move under own child", "POST", f"/v1/tenants/{S}/move",
         f'{{"parent_id": {C}}}', 409, None),
        ("cycle: move under itself", "POST", f"/v1/tenants/{E}/move", f'{{"parent_id": {E}}}',
         409, None),
        ("SQL metacharacters in id", "GET", "/v1/tenants/1%20OR%201=1", None, 404, None),
        ("path metacharacters in id", "GET", "/v1/tenants/..%2F..%2Fetc", None, 404, None),
        ("bad limit", "GET", "/v1/tenants?limit=100000", None, 400, "limit"),
        ("bad after", "GET", "/v1/tenants?after=-3", None, 400, "after"),
        ("bad kind filter", "GET", "/v1/tenants?kind=%27;DROP%20TABLE", None, 400, "kind"),
        ("user name with path characters", "POST", "/v1/users",
         '{"name": "../../etc/passwd", "role": "observer"}', 400, "name"),
        ("user name with SQL", "POST", "/v1/users",
         '{"name": "x\'; DROP TABLE users; --", "role": "observer"}', 400, "name"),
        ("short password", "POST", "/v1/users",
         '{"name": "bob", "role": "observer", "password": "short"}', 400, "password"),
        ("tenant role without tenant", "POST", "/v1/users",
         '{"name": "bob", "role": "tenant-admin"}', 400, "tenant_id"),
        ("token expiry in the past", "POST", "/v1/tokens",
         '{"name": "t", "expires_at": "2001-01-01T00:00:00Z"}', 400, "expires_at"),
        ("token expiry not a date", "POST", "/v1/tokens",
         '{"name": "t", "expires_at": "tomorrow"}', 400, "expires_at"),
        ("import: not arrays", "POST", "/v1/tenants/import",
         f'{{"parent_id": {S}, "epci": {{}}, "communes": 3}}', 400, None),
    ]
    for what, method, path, raw, status, field in table:
        before = snapshot(db)
        r = rq(method, path, raw=raw) if raw is not None else rq(method, path)
        after = snapshot(db)
        ok = r.status == status and r.headers.get("content-type", "").startswith(
            "application/problem+json") and r.json and len(r.json.get("detail", "")) > 10
        if field:
            ok = ok and r.json.get("field") == field
        if not ok:
            print(f"     got {r!r}")
        res.check(ok, f"{what} → {status}" + (f" naming {field}" if field else ""))
        res.check(before == after, f"{what}: database unchanged")
        if r.json and r.json.get("detail"):
            print(f"     detail: {r.json['detail']}")

    # A content type other than JSON is refused.
    r = rq("POST", T, raw='{"name":"x","kind":"other"}', headers={"Content-Type": "text/plain"})
    res.check(r.status == 415, "text/plain body → 415")
    # Refused attempts by an authenticated caller are in the audit trail.
    r = rq("GET", "/v1/audit?limit=1000")
    outcomes = {e["outcome"] for e in r.json["items"]}
    res.check("invalid" in outcomes and "conflict" in outcomes,
              f"refusals are audited (outcomes {sorted(outcomes)})")


if __name__ == "__main__":
    sys.exit(run(main))
