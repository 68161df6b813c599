"""Durability: every acknowledged change was synced to disk before the answer.
mutualisd runs with a test VFS (MU_TEST_SYNC_LOG) that logs each xSync before it returns;
after each 2xx of a mutating request the log must show a new sync of the WAL. A kill -9
test could not tell synchronous=FULL from OFF in WAL mode (env-notes), counting syncs can.
Also: reads never add a write (token last-use stays in memory until the periodic flush)."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Controller, run  # noqa: E402


def wal_syncs(path):
    try:
        with open(path) as f:
            return sum(1 for line in f if line.startswith("sync ") and line.rstrip().endswith("-wal"))
    except FileNotFoundError:
        return 0


def main(res):
    import tempfile
    d = tempfile.mkdtemp(prefix="mu-dur-")
    log = os.path.join(d, "syncs.log")
    ctl = Controller(data_dir=d, env={"MU_TEST_SYNC_LOG": log})
    ctl.owns_dir = True
    try:
        ctl.start()
        rq = ctl.request
        steps = [
            ("create tenant", "POST", "/v1/tenants", {"name": "Syndicat", "kind": "syndicat"}),
            ("create child", "POST", "/v1/tenants", {"name": "CC", "kind": "epci",
                                                     "epci_form": "CC", "parent_id": 1}),
            ("patch tenant", "PATCH", "/v1/tenants/2", {"population": 1000}),
            ("move tenant", "POST", "/v1/tenants/2/move", {"parent_id": None}),
            ("create user", "POST", "/v1/users", {"name": "obs", "role": "observer"}),
            ("create token", "POST", "/v1/tokens", {"name": "ci"}),
            ("revoke token", "DELETE", "/v1/tokens/2", None),
            ("import", "POST", "/v1/tenants/import", {"parent_id": 1, "epci": [], "communes": [
                {"code": "01001", "nom": "L'Abergement-Clémenciat", "type": "commune-actuelle",
                 "departement": "01", "region": "84", "siren": "210100012"}]}),
            ("delete tenant", "DELETE", "/v1/tenants/2", None),
        ]
        for what, method, path, body in steps:
            before = wal_syncs(log)
            r = rq(method, path, body)
            after = wal_syncs(log)
            res.check(200 <= r.status < 300, f"{what} acknowledged ({r.status})")
            res.check(after > before, f"{what}: WAL synced before the answer ({after - before} syncs)")
        before = os.path.getsize(log)
        for _ in range(20):
            rq("GET", "/v1/tenants/1")
            rq("GET", "/v1/tenants?q=cc")
        res.check(os.path.getsize(log) == before, "40 reads caused no sync (no write on read)")
        # the last-use times are flushed at shutdown
        ctl.stop()
        import sqlite3
        con = sqlite3.connect(os.path.join(d, "mutualis.db"))
        used = con.execute("SELECT count(*) FROM tokens WHERE last_used_ms > 0").fetchone()[0]
        con.close()
        res.check(used >= 1, "token last-use flushed at shutdown")
    finally:
        ctl.stop()
        ctl.cleanup()


if __name__ == "__main__":
    sys.exit(run(main))
