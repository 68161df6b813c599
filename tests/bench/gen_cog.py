#!/usr/bin/env python3
"""Writes synthetic national-scale COG files for the import benchmark.

The files have the shape of the data/epci.json and data/communes.json files of the
@etalab/decoupage-administratif package: about 35,000 current communes (commune-actuelle),
delegated and associated communes that share or reuse their codes, the municipal
arrondissements of Paris, Marseille and Lyon, and 1,255 EPCI (one MET69, métropoles,
communautés urbaines, d'agglomération and de communes), 89 of which span two départements.
Communes of the overseas collectivities (975, 977, 978, 986-988) and four island communes
belong to no EPCI. Every SIREN carries a valid Luhn key; names are accented UTF-8.

The output is deterministic for a given seed.

    tests/bench/gen_cog.py OUTDIR [--seed 1] [--indent 2] [--body PARENT_ID]

--body also writes OUTDIR/import.json, a body for POST /v1/tenants/import.
Python 3 standard library only.
"""

import argparse
import json
import os
import random
import sys

N_COMMUNES = 35000
N_EPCI = 1255
N_SPANNING = 89
N_NOUVELLES = 2000   # communes nouvelles, each with 2-4 delegated communes
N_ASSOCIEES = 480
FORMS = [("METRO", 21), ("CU", 14), ("CA", 229)]  # the rest CC, plus one MET69

REGIONS = {
    "84": "01 03 07 15 26 38 42 43 63 69 73 74",
    "27": "21 25 39 58 70 71 89 90",
    "53": "22 29 35 56",
    "24": "18 28 36 37 41 45",
    "94": "2A 2B",
    "44": "08 10 51 52 54 55 57 67 68 88",
    "32": "02 59 60 62 80",
    "11": "75 77 78 91 92 93 94 95",
    "28": "14 27 50 61 76",
    "75": "16 17 19 23 24 33 40 47 64 79 86 87",
    "76": "09 11 12 30 31 32 34 46 48 65 66 81 82",
    "52": "44 49 53 72 85",
    "93": "04 05 06 13 83 84",
    "01": "971",
    "02": "972",
    "03": "973",
    "04": "974",
    "06": "976",
}
DROM_COMMUNES = {"971": 32, "972": 34, "973": 22, "974": 24, "976": 17}
COM_COMMUNES = {"975": 2, "977": 1, "978": 1, "986": 3, "987": 48, "988": 33}
ISLANDS = [("22", "Île-de-Bréhat"), ("29", "Île-de-Sein"), ("29", "Ouessant"),
           ("85", "L'Île-d'Yeu")]
PLM = [("75", "056", "Paris", 20, "751", 101), ("13", "055", "Marseille", 16, "132", 201),
       ("69", "123", "Lyon", 9, "38", 381)]

PREFIXES = ["Saint-", "Sainte-", "Le ", "La ", "Les ", "L'", "", "", "", "Notre-Dame-de-",
            "Villeneuve-", "Mont-", "Pont-", "Val-de-"]
ROOTS = ["Étienne", "Mâcon", "Château", "Pré", "Bois", "Forêt", "Chênes", "Église", "Hôpital",
         "Noël", "Maël", "Côte", "Île", "Fontaine", "Moulin", "Rivière", "Bâtie", "Aubière",
         "Mûres", "Crêt", "Saône", "Rhône", "Orée", "Hêtres", "Épine", "Grâce", "Môle",
         "Ambérieu", "Bourg", "Brûlon", "Creuse", "Genêts", "Lœuilly", "Œuilly", "Vézelay",
         "Ferté", "Châtel", "Roche", "Brézé", "Ménil", "Marché", "Ajaccio", "Évry"]
SUFFIXES = ["", "", "", "-sur-Saône", "-en-Bresse", "-lès-Bains", "-d'Azergues",
            "-le-Château", "-de-l'Orée", "-sur-Mer", "-en-Vallée", "-la-Forêt", "-du-Mont",
            "-aux-Bois", "-lès-Mâcon"]
EPCI_WORDS = ["du Pays", "des Vallées", "de la Plaine", "des Monts", "du Val", "des Coteaux",
              "du Bocage", "des Lacs", "de la Côte", "des Hauts", "du Haut-Pays"]


def luhn_key(prefix8):
    total = 0
    for i, ch in enumerate(reversed(prefix8)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return prefix8 + str((10 - total % 10) % 10)


def metro_depts():
    out = ["%02d" % n for n in range(1, 96) if n != 20]
    out.insert(19, "2A")
    out.insert(20, "2B")
    return out


def region_of(dept):
    for reg, depts in REGIONS.items():
        if dept in depts.split():
            return reg
    return dept  # overseas collectivities are their own région


class Gen:
    def __init__(self, seed):
        self.rnd = random.Random(seed)
        self.sirens = set()
        self.names = set()

    def name(self):
        r = self.rnd
        for _ in range(20):
            prefix, root = r.choice(PREFIXES), r.choice(ROOTS)
            if prefix == "L'" and root[0] not in "AEIOUÉÈÊÎÔŒÂaeiou":
                prefix = "Le "
            n = prefix + root + r.choice(SUFFIXES)
            if n not in self.names:
                break
            n = "%s-%s" % (n, r.choice(ROOTS))
            if n not in self.names:
                break
        self.names.add(n)
        return n

    def siren(self, prefix8):
        s = luhn_key(prefix8)
        serial = 0
        while s in self.sirens:  # Corsica's 2A and 2B share the "20" digits
            serial += 1
            s = luhn_key("2190%04d" % serial)
        self.sirens.add(s)
        return s

    def population(self):
        return int(min(2_000_000, self.rnd.lognormvariate(6.1, 1.25)))

    def postcode(self, dept, code):
        if dept in ("2A", "2B"):
            return "20%03d" % self.rnd.randrange(0, 300)
        base = dept if len(dept) == 3 else dept + "0"
        return (base + "%02d" % self.rnd.randrange(0, 100))[:5]


def build(seed):
    g = Gen(seed)
    r = g.rnd
    metro = metro_depts()
    n_overseas = sum(DROM_COMMUNES.values()) + sum(COM_COMMUNES.values())
    n_metro = N_COMMUNES - n_overseas
    weights = [r.uniform(0.25, 2.4) for _ in metro]
    counts = [max(1, int(n_metro * w / sum(weights))) for w in weights]
    counts[metro.index("75")] = 1
    i = 0
    while sum(counts) < n_metro:
        if metro[i % len(metro)] != "75" and counts[i % len(metro)] < 900:
            counts[i % len(metro)] += 1
        i += 7
    while sum(counts) > n_metro:
        if counts[i % len(metro)] > 2:
            counts[i % len(metro)] -= 1
        i += 5

    communes = []          # commune-actuelle entries
    used = {}              # dept -> set of 3-digit codes taken
    by_dept = {}           # dept -> list of commune-actuelle entries

    def new_commune(dept, code, nom, zone):
        c = {"code": code, "nom": nom}
        if zone != "com":
            c["typeLiaison"] = r.randrange(0, 9)
        c["zone"] = zone
        if zone != "com":
            c["arrondissement"] = (dept + str(r.randrange(1, 5)))[:3]
        c["departement"] = dept
        c["region"] = region_of(dept)
        c["type"] = "commune-actuelle"
        if zone != "com":
            c["rangChefLieu"] = 0
            # Communes' SIRENs read 21 + département + commune number + Luhn key.
            if len(dept) == 2:
                d2 = "20" if dept in ("2A", "2B") else dept
                c["siren"] = g.siren("21" + d2 + "0" + code[2:])
            else:
                c["siren"] = g.siren("21" + dept + code[3:] + "0")
        c["codesPostaux"] = [g.postcode(dept, code)]
        c["population"] = g.population()
        communes.append(c)
        by_dept.setdefault(dept, []).append(c)
        return c

    plm_codes = {p[0]: p for p in PLM}
    for dept, n in zip(metro, counts):
        fixed = []
        if dept in plm_codes:
            fixed.append(plm_codes[dept][1])
        # Arrondissement codes (75101-75120, 13201-13216, 69381-69389) are not communes'.
        taken = set(fixed)
        for pd, _, _, pn, _, pfirst in PLM:
            if pd == dept:
                taken |= {"%03d" % (pfirst + k) for k in range(pn)}
        pool = [x for x in range(1, 1000) if "%03d" % x not in taken]
        chosen = sorted(r.sample(pool, n - len(fixed)) + [int(x) for x in fixed])
        used[dept] = set("%03d" % x for x in chosen)
        for x in chosen:
            code = dept + "%03d" % x
            nom = g.name()
            if dept in plm_codes and "%03d" % x == plm_codes[dept][1]:
                nom = plm_codes[dept][2]
            c = new_commune(dept, code, nom, "metro")
            if nom in ("Paris", "Marseille", "Lyon"):
                c["population"] = {"Paris": 2133111, "Marseille": 873076,
                                   "Lyon": 522250}[nom]
    for dept, n in DROM_COMMUNES.items():
        chosen = sorted(r.sample(range(1, 100), n))
        used[dept] = set("%02d" % x for x in chosen)
        for x in chosen:
            new_commune(dept, dept + "%02d" % x, g.name(), "drom")
    for dept, n in COM_COMMUNES.items():
        for x in range(1, n + 1):
            new_commune(dept, dept + "%02d" % x, g.name(), "com")

    # Islands: no EPCI.
    islands = set()
    for dept, nom in ISLANDS:
        c = r.choice(by_dept[dept])
        while c["code"] in islands:
            c = r.choice(by_dept[dept])
        c["nom"] = nom
        islands.add(c["code"])

    # EPCI per département (metro and DROM), in proportion to their communes.
    grouped = [d for d in metro + list(DROM_COMMUNES)]
    members_total = sum(len([c for c in by_dept[d] if c["code"] not in islands])
                        for d in grouped)
    alloc = {}
    for d in grouped:
        n = len([c for c in by_dept[d] if c["code"] not in islands])
        alloc[d] = max(1, min(n, round(n * N_EPCI / members_total)))
    order = sorted(grouped, key=lambda d: -len(by_dept[d]))
    k = 0
    while sum(alloc.values()) != N_EPCI:
        d = order[k % len(order)]
        n = len(by_dept[d])
        if sum(alloc.values()) < N_EPCI and alloc[d] < n // 2:
            alloc[d] += 1
        elif sum(alloc.values()) > N_EPCI and alloc[d] > 1:
            alloc[d] -= 1
        k += 1

    groups = []  # list of (dept, [communes])
    for d in grouped:
        cs = [c for c in by_dept[d] if c["code"] not in islands]
        r.shuffle(cs)
        n = alloc[d]
        cuts = sorted(r.sample(range(1, len(cs)), n - 1)) if n > 1 else []
        bounds = [0] + cuts + [len(cs)]
        for a, b in zip(bounds, bounds[1:]):
            groups.append((d, sorted(cs[a:b], key=lambda c: c["code"])))

    # 89 EPCI take a commune or a few from a neighbouring département's EPCI.
    spanning = 0
    idx = list(range(len(groups)))
    r.shuffle(idx)
    for gi in idx:
        if spanning == N_SPANNING:
            break
        d, members = groups[gi]
        if d not in metro:
            continue
        pos = metro.index(d)
        neigh = metro[(pos + 1) % len(metro)]
        donors = [j for j, (dd, mm) in enumerate(groups) if dd == neigh and len(mm) > 3]
        if not donors:
            continue
        dj = r.choice(donors)
        take = r.randrange(1, min(4, len(groups[dj][1]) - 2))
        moved = groups[dj][1][:take]
        groups[dj] = (groups[dj][0], groups[dj][1][take:])
        groups[gi] = (d, members + moved)
        spanning += 1

    forms = []
    for form, n in FORMS:
        forms += [form] * n
    forms += ["CC"] * (N_EPCI - 1 - len(forms))
    r.shuffle(forms)
    lyon_group = next(i for i, (d, mm) in enumerate(groups)
                      if any(c["nom"] == "Lyon" for c in mm))
    epcis = []
    serial = 0
    for i, (d, members) in enumerate(groups):
        if i == lyon_group:
            form = "MET69"
            nom = "Métropole de Lyon"
        else:
            form = forms.pop()
            label = {"CC": "CC", "CA": "CA", "CU": "CU", "METRO": "Métropole"}[form]
            nom = "%s %s %s" % (label, r.choice(EPCI_WORDS), g.name())
        serial += 1
        code = g.siren("2000%04d" % serial if r.random() < 0.8
                       else "24%s%04d" % ("20" if d in ("2A", "2B") else d[:2], serial))
        mem = []
        ptot = pmun = 0
        for c in members:
            pm = c["population"]
            pt = pm + pm // 60
            ptot += pt
            pmun += pm
            mem.append({"code": c["code"], "siren": c["siren"], "nom": c["nom"],
                        "populationTotale": pt, "populationMunicipale": pm})
        epcis.append({"code": code, "nom": nom, "type": form,
                      "modeFinancement": "FA" if form == "CC" and r.random() < 0.1 else "FPU",
                      "populationTotale": ptot, "populationMunicipale": pmun,
                      "membres": mem})

    # Parts of current communes: delegated (the first shares the new commune's code),
    # associated, and the municipal arrondissements of Paris, Marseille and Lyon.
    parts = []
    metro_communes = [c for c in communes if c["zone"] == "metro" and
                      c["nom"] not in ("Paris", "Marseille", "Lyon")]
    nouvelles = 0
    for c in r.sample(metro_communes, N_NOUVELLES + N_ASSOCIEES):
        d = c["departement"]
        free = [x for x in range(1, 1000) if "%03d" % x not in used[d]]
        if nouvelles < N_NOUVELLES and len(free) > 3:
            nouvelles += 1
            olds = [c["code"]]
            for x in r.sample(free, r.randrange(1, 4)):
                used[d].add("%03d" % x)
                olds.append(d + "%03d" % x)
            c["anciensCodes"] = olds[1:]
            for oc in olds:
                parts.append({"code": oc, "nom": g.name(), "typeLiaison": r.randrange(0, 9),
                              "zone": "metro", "arrondissement": c["arrondissement"],
                              "departement": d, "region": c["region"],
                              "type": "commune-deleguee", "rangChefLieu": 0,
                              "chefLieu": c["code"]})
        elif free:
            x = r.choice(free)
            used[d].add("%03d" % x)
            parts.append({"code": d + "%03d" % x, "nom": g.name(), "typeLiaison": 0,
                          "zone": "metro", "arrondissement": c["arrondissement"],
                          "departement": d, "region": c["region"],
                          "type": "commune-associee", "chefLieu": c["code"]})
    for dept, ccc, nom, n, arr, first in PLM:
        for k in range(n):
            num = first + k
            code = (dept + "%03d" % num) if dept != "69" else "69%03d" % num
            parts.append({"code": code, "nom": "%s %d%s Arrondissement"
                          % (nom, k + 1, "er" if k == 0 else "e"),
                          "typeLiaison": 0, "zone": "metro", "arrondissement": dept + "1",
                          "departement": dept, "region": region_of(dept),
                          "type": "arrondissement-municipal", "commune": dept + ccc,
                          "codesPostaux": [dept + "0%02d" % (k + 1)],
                          "population": g.population() * 30})
    all_communes = sorted(communes + parts,
                          key=lambda c: (c["code"], c["type"] != "commune-actuelle"))
    return epcis, all_communes


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--indent", type=int, default=2, help="0 for compact JSON")
    ap.add_argument("--body", type=int, metavar="PARENT_ID",
                    help="also write import.json, an import body under this parent")
    args = ap.parse_args(argv)
    epcis, communes = build(args.seed)
    os.makedirs(args.outdir, exist_ok=True)
    indent = args.indent or None
    seps = (",", ": ") if indent else (",", ":")
    for name, data in (("epci.json", epcis), ("communes.json", communes)):
        with open(os.path.join(args.outdir, name), "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=indent, separators=seps)
            f.write("\n")
    if args.body is not None:
        with open(os.path.join(args.outdir, "import.json"), "w", encoding="utf-8") as f:
            json.dump({"parent_id": args.body, "dry_run": False, "epci": epcis,
                       "communes": communes}, f, ensure_ascii=False, separators=(",", ":"))
    actuelles = sum(1 for c in communes if c["type"] == "commune-actuelle")
    spanning = sum(1 for e in epcis
                   if len({m["code"][:3] if m["code"][:2] in ("97", "98") else m["code"][:2]
                           for m in e["membres"]}) > 1)
    print("%s: %d EPCI (%d spanning départements), %d communes entries (%d current)"
          % (args.outdir, len(epcis), spanning, len(communes), actuelles), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
