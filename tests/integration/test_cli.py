"""The `mutualis` CLI for real: the README's first-steps walk-through, read from README.md
itself and run command by command against a fresh mutualisd (tables by default, --json
parses as JSON), then its error behaviour: one clear line on stderr and a non-zero exit for
a 404 (1), a usage error (2), a bad id (2, and no request is made), an unreachable server
(1, with a hint), a revoked token (1, the detail says revoked); `audit verify` exits 0 on an
intact trail; `--password-stdin` sets a password."""
import json
import os
import re
import shlex
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
from harness import SRC, Controller, cli, run  # noqa: E402

COG = os.path.join(SRC, "tests", "data", "cog")
PASSWORD = "correct horse battery staple"


def readme_steps():
    """The `$M ...` lines of the README's first-steps block, as argument lists (comments
    dropped, the official files replaced by the sample ones)."""
    with open(os.path.join(SRC, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## First steps with the CLI", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    steps = []
    for line in block.splitlines():
        line = line.strip()
        if not line.startswith("$M "):
            continue
        args = shlex.split(line[3:], comments=True)
        args = [os.path.join(COG, a) if a in ("epci.json", "communes.json") else a for a in args]
        steps.append(args)
    return steps


def one_line(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return len(lines) == 1 and lines[0].startswith("mutualis")


def fields(out):
    """"key:   value" lines of an object printed as a table."""
    return {k.strip(): v.strip() for k, v in re.findall(r"^([a-z][a-z ]*):[ \t]+(.*)$", out, re.M)}


class Listener:
    """A TCP listener that counts the connections made to it (to prove none is made)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.count = 0
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"https://127.0.0.1:{self.sock.getsockname()[1]}"

    def loop(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.count += 1
                c.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def main(res):
    ctl = Controller()
    try:
        ctl.start()
        walkthrough(ctl, res)
        errors(ctl, res)
    finally:
        ctl.stop()
        ctl.cleanup()


def walkthrough(ctl, res):
    steps = readme_steps()
    names = [" ".join(a for a in s[:2] if not a.startswith("-")) for s in steps]
    expected = ["whoami", "tenant create", "tenant create", "tenant create", "tenant list",
                "tenant import", "user create", "token create", "audit list", "audit verify"]
    res.check(names == expected, f"the README walk-through has the expected steps ({names})")
    secret = None
    for args in steps:
        stdin = PASSWORD + "\n" if "--password-stdin" in args else None
        rc, out, err = cli(ctl, *args, input_text=stdin)
        what = "mutualis " + " ".join(shlex.quote(a) for a in args)
        res.check(rc == 0, f"{what} → exit 0 ({rc} {err!r})")
        cmd = " ".join(args[:2])
        f = fields(out)
        if cmd == "whoami":
            ok = f.get("user") == "admin" and f.get("role") == "operator"
        elif cmd == "tenant create":
            name = args[args.index("--name") + 1]
            ok = f.get("name") == name and f.get("id") and f.get("status") == "active"
        elif cmd == "tenant list":
            lines = out.splitlines()
            ok = lines[0].split()[:3] == ["ID", "PARENT", "KIND"] and "Saint-Étienne" in out \
                and len(lines) == 2
        elif cmd == "tenant import":
            ok = f.get("created") == "4" and f.get("rejected") == "2" and "REASON" in out
        elif cmd == "user create":
            ok = f.get("name") == "secretaire" and f.get("role") == "tenant-admin" and \
                f.get("tenant") == "3"
        elif cmd == "token create":
            secret = f.get("secret", "")
            ok = secret.startswith("mut_") and "shown again" in err
        elif cmd == "audit list":
            ok = out.splitlines()[0].split()[:2] == ["ID", "TIME"] and "user.create" in out
        else:  # audit verify
            ok = "ok" in out and "head:" in out
        res.check(bool(ok), f"{what} prints what it did as a table ({out[:400]!r})")

    # the --json forms parse as JSON and agree with the tables
    for args, check in [
            (["whoami"], lambda j: j["role"] == "operator" and j["tenant_id"] is None),
            (["tenant", "list", "--q", "saint etienne"],
             lambda j: [t["insee"] for t in j["items"]] == ["42218"]),
            (["tenant", "show", "3"], lambda j: j["name"] == "Saint-Étienne" and j["parent_id"] == 2),
            (["tenant", "list", "--subtree", "1"], lambda j: len(j["items"]) == 7),
            (["user", "show", "2"], lambda j: j["name"] == "secretaire" and j["has_password"]),
            (["token", "list"], lambda j: len(j["items"]) == 2 and
             all("secret" not in t for t in j["items"])),
            (["audit", "list", "--tenant", "3"],
             lambda j: {e["action"] for e in j["items"]} == {"user.create", "token.create"}),
            (["audit", "verify"], lambda j: j["ok"] is True and j["first_bad_id"] is None),
            (["health"], lambda j: j["status"] == "ok")]:
        rc, out, err = cli(ctl, *args, "--json")
        try:
            j = json.loads(out)
            ok = rc == 0 and check(j)
        except (ValueError, KeyError, TypeError):
            ok = False
        res.check(ok, f"mutualis {' '.join(args)} --json parses and is right ({rc} {out[:200]!r})")

    # --password-stdin set the password (no login endpoint yet: has_password)
    res.check(secret is not None, "the token secret was shown")
    rc, out, err = cli(ctl, "whoami", "--json", token=secret)
    j = json.loads(out) if rc == 0 else {}
    res.check(j.get("user") == "secretaire" and j.get("tenant_id") == 3,
              "the new token works for the new user")
    rc, out, err = cli(ctl, "user", "create", "--name", "sans-mdp", "--role", "observer",
                       "--json")
    res.check(rc == 0 and json.loads(out)["has_password"] is False,
              "without --password-stdin the user has no password")
    rc, out, err = cli(ctl, "user", "create", "--name", "court", "--role", "observer",
                       "--password-stdin", input_text="short\n")
    res.check(rc != 0 and one_line(err), f"a too short password is refused in one line ({err!r})")
    rc, out, err = cli(ctl, "user", "create", "--name", "vide", "--role", "observer",
                       "--password-stdin", input_text="")
    res.check(rc == 2 and one_line(err), f"no password on stdin → usage error ({rc} {err!r})")


def errors(ctl, res):
    # 404
    rc, out, err = cli(ctl, "tenant", "show", "999999")
    res.check(rc == 1 and one_line(err) and "999999" in err and "404" in err and out == "",
              f"404 → exit 1, one line ({rc} {err!r})")
    # usage errors
    for args in (["tenant", "create", "--kind", "syndicat"],  # --name missing
                 ["tenant", "list", "--bogus"],
                 ["tenant", "create", "--name", "X", "--kind", "mairie"],
                 ["tenant", "frobnicate"],
                 ["tenant", "show"]):
        rc, out, err = cli(ctl, *args)
        res.check(rc == 2 and one_line(err) and "--help" in err,
                  f"mutualis {' '.join(args)} → exit 2, one line ({rc} {err!r})")
    # a bad id: refused before any request
    lst = Listener()
    try:
        for args in (["tenant", "show", "12x"], ["tenant", "delete", "0"],
                     ["tenant", "list", "--parent", "12x"], ["user", "show", "-3"]):
            rc, out, err = cli(ctl, *args, env_extra={"MUTUALIS_URL": lst.url})
            res.check(rc == 2 and one_line(err), f"mutualis {' '.join(args)} → exit 2 ({err!r})")
        rc, out, err = cli(ctl, "whoami", env_extra={"MUTUALIS_URL": lst.url})
        res.check(rc == 1, "(the listener does see a real request)")
    finally:
        lst.close()
    res.check(lst.count == 1, f"no connection was made for the bad ids ({lst.count - 1})")
    # unreachable: a port bound but not listening refuses connections
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    try:
        url = f"https://127.0.0.1:{s.getsockname()[1]}"
        rc, out, err = cli(ctl, "whoami", env_extra={"MUTUALIS_URL": url})
    finally:
        s.close()
    res.check(rc == 1 and one_line(err) and "cannot reach" in err and "MUTUALIS_URL" in err,
              f"unreachable server → exit 1 with a hint ({rc} {err!r})")
    rc, out, err = cli(ctl, "whoami", env_extra={"MUTUALIS_CA": os.devnull})
    res.check(rc == 1 and one_line(err) and "MUTUALIS_CA" in err,
              f"wrong CA → exit 1 with a hint ({rc} {err!r})")
    # revoked token
    rc, out, err = cli(ctl, "token", "create", "--name", "tmp", "--json")
    tok = json.loads(out)
    rc, out, err = cli(ctl, "token", "revoke", str(tok["id"]))
    res.check(rc == 0, f"token revoke ({rc} {err!r})")
    rc, out, err = cli(ctl, "whoami", token=tok["secret"])
    res.check(rc == 1 and one_line(err) and "revoked" in err and "401" in err,
              f"revoked token → exit 1, the detail says revoked ({rc} {err!r})")
    rc, out, err = cli(ctl, "whoami", token="mut_" + "A" * 43)
    res.check(rc == 1 and one_line(err), f"unknown token → exit 1 ({err!r})")
    # audit verify on the intact trail, after all of the above
    rc, out, err = cli(ctl, "audit", "verify")
    res.check(rc == 0 and "ok" in out, f"audit verify → exit 0 on an intact trail ({rc} {out!r})")


if __name__ == "__main__":
    sys.exit(run(main))
