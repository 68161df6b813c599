"""The official-data (COG) import end to end, through the API and through
`mutualis tenant import`, with the sample files of tests/data/cog/: the tree it builds
(EPCI under the parent, communes under their EPCI, communes in no EPCI under the parent,
only commune-actuelle entries), the counts and a reason per rejected entry, re-imports that
create nothing, a hand edit undone by exactly one update, the départements restriction
(an EPCI spanning two départements comes with all its members), all or nothing (a conflict
in the store or a malformed document changes nothing), dry runs, and one audit entry per
applied import."""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import SRC, Controller, cli, run  # noqa: E402

COG = os.path.join(SRC, "tests", "data", "cog")
EPCI_FILE = os.path.join(COG, "epci.json")
COMMUNES_FILE = os.path.join(COG, "communes.json")

# What the sample files hold (see the files): three EPCI, thirteen commune-actuelle entries
# of which one (01004) has a SIREN with a bad Luhn key, four delegated/associated communes and
# municipal arrondissements, and an EPCI member (01999) that is not a current commune.
EPCI = {  # SIREN -> (name, form, départment attribute or None when it spans several)
    "200046977": ("Métropole de Lyon", "MET69", "69"),
    "200042497": ("CC Bresse Revermont Mâconnais", "CC", None),
    "242010056": ("CA du Pays Ajaccien", "CA", "2A"),
}
COMMUNES = {  # INSEE -> (name, SIREN of its EPCI or None: directly under the parent)
    "01015": ("Arboys en Bugey", "200042497"),
    "01042": ("Bey", "200042497"),
    "71270": ("Mâcon", "200042497"),
    "2A004": ("Ajaccio", "242010056"),
    "2A006": ("Afa", "242010056"),
    "69029": ("Bron", "200046977"),
    "69123": ("Lyon", "200046977"),
    "69266": ("Villeurbanne", "200046977"),
    "2B033": ("Bastia", None),
    "85113": ("L'Île-d'Yeu", None),
    "97501": ("Miquelon-Langlade", None),
    "97502": ("Saint-Pierre", None),
}
NOT_COMMUNES = {"Arbignieu", "Saint-Bois", "Chavannes-sur-Reyssouze", "Lyon 1er Arrondissement"}
REJECTED = {"01999", "210100041"}  # the missing member; Ambérieu-en-Bugey's bad SIREN
PLANNED = len(EPCI) + len(COMMUNES)  # 15
SKIPPED = 4  # two delegated, one associated commune, one municipal arrondissement


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def tenants(ctl):
    """Every tenant, full objects, by id (follows pagination)."""
    out, after = {}, None
    while True:
        r = ctl.request("GET", "/v1/tenants?limit=1000" + (f"&after={after}" if after else ""))
        assert r.status == 200, r
        for t in r.json["items"]:
            out[t["id"]] = t
        after = r.json["next_after"]
        if after is None:
            return out


def import_audits(ctl, outcome="ok"):
    r = ctl.request("GET", "/v1/audit?limit=1000")
    return [e for e in r.json["items"]
            if e["action"] == "tenant.import" and (outcome is None or e["outcome"] == outcome)]


def main(res):
    for scenario in (first_import, failures_and_cli):
        ctl = Controller()
        try:
            ctl.start()
            scenario(ctl, res)
        finally:
            ctl.stop()
            ctl.cleanup()


def check_counts(res, r, what, created, updated, unchanged, rejected=len(REJECTED),
                 skipped=SKIPPED):
    j = r.json or {}
    got = {k: j.get(k) for k in ("created", "updated", "unchanged", "rejected", "skipped")}
    want = {"created": created, "updated": updated, "unchanged": unchanged,
            "rejected": rejected, "skipped": skipped}
    res.check(r.status == 200 and got == want and j.get("dry_run") is False,
              f"{what}: {want} (got {r.status} {got})")


def first_import(ctl, res):
    rq = ctl.request
    epci, communes = load(EPCI_FILE), load(COMMUNES_FILE)
    S = rq("POST", "/v1/tenants", {"name": "Syndicat Mixte Numérique", "kind": "syndicat"}).json["id"]
    body = {"parent_id": S, "epci": epci, "communes": communes}

    # a dry run first: nothing changes
    before = tenants(ctl)
    r = rq("POST", "/v1/tenants/import", dict(body, dry_run=True))
    res.check(r.status == 200 and r.json["dry_run"] is True and r.json.get("planned") == PLANNED
              and r.json["rejected"] == len(REJECTED) and "created" not in r.json,
              f"dry run reports {PLANNED} planned entries and the rejects ({r.json})")
    res.check(tenants(ctl) == before, "dry run changes nothing")
    res.check(import_audits(ctl, None) == [], "a dry run is not audited as an import")

    # the first import
    r = rq("POST", "/v1/tenants/import", body)
    check_counts(res, r, "first import", created=PLANNED, updated=0, unchanged=0)
    rejects = {x["key"]: x["reason"] for x in r.json["rejects"]}
    res.check(set(rejects) == REJECTED and len(r.json["rejects"]) == len(REJECTED),
              f"one reject per rejected entry ({sorted(rejects)})")
    res.check("01999" in rejects["01999"] and "not a current commune" in rejects["01999"],
              f"reason for the missing member: {rejects['01999']!r}")
    res.check("Ambérieu-en-Bugey" in rejects["210100041"] and "SIREN" in rejects["210100041"],
              f"reason for the bad SIREN: {rejects['210100041']!r}")

    all_t = tenants(ctl)
    res.check(len(all_t) == 1 + PLANNED, f"{PLANNED} tenants created under the syndicat")
    by_siren = {t["siren"]: t for t in all_t.values() if t["siren"]}
    by_insee = {t["insee"]: t for t in all_t.values() if t["kind"] == "commune"}
    ok = True
    for siren, (name, form, dept) in EPCI.items():
        t = by_siren.get(siren)
        ok = ok and t is not None and t["kind"] == "epci" and t["name"] == name and \
            t["epci_form"] == form and t["parent_id"] == S and t["departement"] == dept
    res.check(ok and sum(t["kind"] == "epci" for t in all_t.values()) == len(EPCI),
              "the three EPCI are children of the parent, with their form and département "
              "(none for the one spanning 01 and 71)")
    res.check(set(by_insee) == set(COMMUNES),
              f"exactly the current communes are created ({sorted(by_insee)})")
    wrong = [code for code, (name, epci_siren) in COMMUNES.items()
             if by_insee[code]["name"] != name or by_insee[code]["parent_id"] !=
             (by_siren[epci_siren]["id"] if epci_siren else S)]
    res.check(wrong == [], f"communes under their EPCI, the others under the parent ({wrong})")
    res.check(by_insee["69123"]["population"] == 522250 and by_insee["97501"]["departement"] ==
              "975" and by_insee["97501"]["siren"] is None, "fields copied (population, "
              "overseas département, no SIREN)")
    res.check(not NOT_COMMUNES & {t["name"] for t in all_t.values()},
              "delegated and associated communes and arrondissements are not created")
    res.check(by_insee["01015"]["name"] == "Arboys en Bugey",
              "the delegated commune sharing code 01015 did not overwrite the current one")

    # re-import: nothing created, all unchanged
    r = rq("POST", "/v1/tenants/import", body)
    check_counts(res, r, "re-import", created=0, updated=0, unchanged=PLANNED)
    res.check(tenants(ctl) == all_t, "re-import leaves every tenant as it was")

    # a hand edit is undone by exactly one update
    lyon = by_insee["69123"]["id"]
    r = rq("PATCH", f"/v1/tenants/{lyon}", {"name": "Lyon (saisie manuelle)"})
    res.check(r.status == 200, "hand edit of one commune's name")
    r = rq("POST", "/v1/tenants/import", body)
    check_counts(res, r, "re-import after a hand edit", created=0, updated=1,
                 unchanged=PLANNED - 1)
    res.check(rq("GET", f"/v1/tenants/{lyon}").json["name"] == "Lyon",
              "the official name is back, same id")

    # the same through the CLI, tables then JSON
    rc, out, err = cli(ctl, "tenant", "import", "--parent", str(S), "--epci", EPCI_FILE,
                       "--communes", COMMUNES_FILE)
    fields = dict(re.findall(r"^(\w+):\s+(\S+)$", out, re.M))
    res.check(rc == 0 and fields.get("unchanged") == "15" and fields.get("created") == "0"
              and "210100041" in out and "not a current commune" in out,
              f"mutualis tenant import prints the counts and the rejects ({rc} {out!r} {err!r})")
    rc, out, err = cli(ctl, "tenant", "import", "--parent", str(S), "--epci", EPCI_FILE,
                       "--communes", COMMUNES_FILE, "--json")
    j = json.loads(out) if rc == 0 else {}
    res.check(rc == 0 and j.get("created") == 0 and j.get("unchanged") == PLANNED and
              len(j.get("rejects", [])) == len(REJECTED),
              "mutualis tenant import --json gives the answer as JSON")

    n = len(import_audits(ctl))
    res.check(n == 5, f"one tenant.import audit entry per applied import ({n} for 5)")
    entries = import_audits(ctl)
    res.check(all(e["target"] == f"tenant/{S}" for e in entries) and
              "created 15" in (entries[0]["detail"] or "") and
              "updated 1" in (entries[2]["detail"] or ""),
              "the audit entries name the parent and the counts")


def failures_and_cli(ctl, res):
    rq = ctl.request
    epci, communes = load(EPCI_FILE), load(COMMUNES_FILE)
    S = rq("POST", "/v1/tenants", {"name": "Syndicat", "kind": "syndicat"}).json["id"]
    # An unrelated tenant that holds Bastia's INSEE code (created by hand, no SIREN).
    X = rq("POST", "/v1/tenants", {"name": "Bastia (saisie manuelle)", "kind": "commune",
                                   "insee": "2B033"}).json["id"]
    # The data centre's own body registered with the SIREN that the file gives to an EPCI.
    R = rq("POST", "/v1/tenants", {"name": "Syndicat homonyme", "kind": "syndicat",
                                   "siren": "200046977"}).json["id"]
    before = tenants(ctl)

    # a conflict in the store after several entries were written: all rolled back
    r = rq("POST", "/v1/tenants/import", {"parent_id": S, "epci": epci, "communes": communes})
    detail = (r.json or {}).get("detail", "")
    res.check(r.status == 409 and ("2B033" in detail or "200046977" in detail) and
              "already" in detail,
              f"a code already taken → 409 naming it ({r.status} {detail!r})")
    res.check(r.headers.get("content-type", "").startswith("application/problem+json"),
              "the refusal is a problem document")
    res.check(tenants(ctl) == before, "the failed import changed nothing (tenant list)")

    # a SIREN already held by another tenant (here the parent itself)
    r = rq("POST", "/v1/tenants/import", {"parent_id": R, "departements": ["69"],
                                          "epci": epci, "communes": communes})
    detail = (r.json or {}).get("detail", "")
    res.check(r.status == 409 and "Métropole de Lyon" in detail,
              f"a SIREN already taken → 409 with a detail ({r.status} {detail!r})")
    res.check(tenants(ctl) == before, "the failed import changed nothing (tenant list)")

    # malformed documents
    for what, doc, field in [
            ("communes not an array", {"parent_id": S, "epci": epci, "communes": {"0": 1}},
             "communes"),
            ("no communes", {"parent_id": S, "epci": epci}, "communes"),
            ("unknown parent", {"parent_id": 999999, "epci": epci, "communes": communes}, None),
            ("bad département", {"parent_id": S, "departements": ["XX"], "communes": communes},
             "departements"),
            ("unknown top-level key", {"parent_id": S, "communes": communes, "comunes": []},
             None)]:
        r = rq("POST", "/v1/tenants/import", doc)
        j = r.json or {}
        res.check(r.status in (400, 404) and j.get("detail") and
                  (field is None or field in j["detail"] or j.get("field") == field),
                  f"{what} → {r.status} {j.get('detail')!r}")
    r = rq("POST", "/v1/tenants/import", raw='{"parent_id": %d, "communes": [' % S)
    res.check(r.status == 400 and r.json and r.json["detail"], "truncated JSON → 400")
    res.check(tenants(ctl) == before, "malformed documents changed nothing")
    res.check(import_audits(ctl) == [], "no tenant.import entry for a failed import")
    res.check(len(import_audits(ctl, "ok")) == 0 and
              any(e["outcome"] != "ok" for e in import_audits(ctl, None)),
              "the refused imports are audited as refused")

    # the CLI: a file that is not an array is refused before anything is sent
    bad = os.path.join(ctl.data_dir, "communes-object.json")
    with open(bad, "w") as f:
        f.write('{"communes": []}')
    rc, out, err = cli(ctl, "tenant", "import", "--parent", str(S), "--communes", bad)
    res.check(rc != 0 and "expected a JSON array" in err and len(err.strip().splitlines()) == 1,
              f"CLI refuses a file that is not an array in one line ({rc} {err!r})")
    rc, out, err = cli(ctl, "tenant", "import", "--parent", str(S), "--epci", EPCI_FILE,
                       "--communes", COMMUNES_FILE)
    res.check(rc == 1 and ("2B033" in err or "200046977" in err) and len(err.strip().splitlines()) == 1,
              f"CLI import hitting a conflict: exit 1, one line ({rc} {err!r})")
    res.check(tenants(ctl) == before, "still nothing changed")

    # the départements restriction through the CLI: the EPCI spanning 01 and 71 comes with
    # its members of 01 when only 71 is asked for
    rc, out, err = cli(ctl, "tenant", "import", "--parent", str(S), "--departement", "71",
                       "--epci", EPCI_FILE, "--communes", COMMUNES_FILE, "--dry-run", "--json")
    j = json.loads(out) if rc == 0 else {}
    res.check(rc == 0 and j.get("dry_run") is True and j.get("planned") == 4,
              f"CLI --dry-run plans 4 entries ({rc} {out!r} {err!r})")
    res.check(tenants(ctl) == before, "CLI --dry-run changes nothing")
    rc, out, err = cli(ctl, "tenant", "import", "--parent", str(S), "--departement", "71",
                       "--epci", EPCI_FILE, "--communes", COMMUNES_FILE, "--json")
    j = json.loads(out) if rc == 0 else {}
    res.check(rc == 0 and j.get("created") == 4 and j.get("updated") == 0 and
              j.get("rejected") == 2, f"--departement 71 creates 4 tenants ({rc} {j} {err!r})")
    after = tenants(ctl)
    new = {i: t for i, t in after.items() if i not in before}
    cc = [t for t in new.values() if t["siren"] == "200042497"]
    res.check(len(cc) == 1 and cc[0]["parent_id"] == S and cc[0]["departement"] is None,
              "the EPCI spanning two départements is under the parent")
    members = sorted((t["insee"], t["departement"]) for t in new.values()
                     if cc and t["parent_id"] == cc[0]["id"])
    res.check(members == [("01015", "01"), ("01042", "01"), ("71270", "71")],
              f"with all its current members, those of 01 included ({members})")
    res.check(len(new) == 4, "and nothing of other départements")
    res.check(all(after[i] == t for i, t in before.items()), "existing tenants untouched")
    n = len(import_audits(ctl))
    res.check(n == 1, f"one tenant.import audit entry for the one applied import ({n})")

    # once the conflicting tenants are gone, the whole import goes through
    res.check(rq("DELETE", f"/v1/tenants/{X}").status == 204 and
              rq("DELETE", f"/v1/tenants/{R}").status == 204, "remove the conflicting tenants")
    r = rq("POST", "/v1/tenants/import", {"parent_id": S, "epci": epci, "communes": communes})
    check_counts(res, r, "full import after the restricted one", created=PLANNED - 4,
                 updated=0, unchanged=4)
    res.check(len(import_audits(ctl)) == 2, "two applied imports, two audit entries")


if __name__ == "__main__":
    sys.exit(run(main))
