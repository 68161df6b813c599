"""Catalogue requests end to end on nodes of libvirt's test driver (no daemon): a commune
files a request, cancels one, an operator rejects and approves; approval admits the VM
(admission, placement, the create operation) with the tenant's default private network;
the prober reports "ready" once something answers on the item's port at the VM's recorded
address (a real listener on that 127.77.0.x address), or "failed" at the deadline. Also:
approving twice or a cancelled request (409, nothing changed), a quota refusal at approval
(the request shows failed with the level named), another commune (404, sees nothing), an
EPCI's admin approving its member's request only where the item allows it, a bad input
table with field-level errors (counts of requests, events, VMs and audit-visible changes
compared before and after), auto-approval below a size, the events and audit trail of each
step, and the CLI's catalog and request commands."""
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Controller, Failure, SRC, cli, run  # noqa: E402


def must(r, status, what):
    if r.status != status:
        raise Failure(f"setup {what}: expected {status}, got {r!r}")
    return r.json


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


PORT_READY = free_port()
PORT_DEAD = free_port()
DEADLINE_S = 8

TEXT = lambda fr, en: {"fr": fr, "en": en}  # noqa: E731


def catalog():
    site_params = [
        {"name": "domain", "type": "domain", "required": True, "label": TEXT("Domaine", "Domain"),
         "help": TEXT("ex. mairie.fr", "e.g. mairie.fr")},
        {"name": "admin_email", "type": "email", "required": True,
         "label": TEXT("Courriel", "E-mail")},
        {"name": "title", "type": "string", "max_length": 20, "label": TEXT("Titre", "Title")},
        {"name": "size", "type": "integer", "min": 1, "max": 10,
         "label": TEXT("Taille", "Size")},
        {"name": "theme", "type": "enum", "choices": ["clair", "sombre"],
         "label": TEXT("Thème", "Theme")},
    ]
    base = {"description": TEXT("Description", "Description"), "image": "test-img",
            "networks": {"private": True, "public": False}}
    return {
        "version": 1,
        "provider_network": "public",
        "private_cidr": "127.77.0.0/24",
        "readiness": {"deadline_s": DEADLINE_S, "probe_timeout_ms": 300,
                      "probe_networks": ["127.0.0.0/8"]},
        "items": [
            dict(base, id="site", name=TEXT("Site web", "Website"), flavors=["tiny"],
                 ports=[PORT_READY], approval="always", epci_admin_may_approve=True,
                 parameters=site_params,
                 user_data={"mutualis_http_port": PORT_READY,
                            "site": {"domain": {"$param": "domain"},
                                     "title": {"$param": "title"},
                                     "size": {"$param": "size", "type": "integer"}}}),
            dict(base, id="box", name=TEXT("Machine", "Machine"), flavors=["tiny"],
                 ports=[PORT_DEAD], approval="always",
                 parameters=[{"name": "purpose", "type": "string", "max_length": 50,
                              "label": TEXT("Usage", "Purpose")}]),
            dict(base, id="auto", name=TEXT("Auto", "Auto"), flavors=["tiny", "big"],
                 ports=[PORT_DEAD], approval={"above": {"vcpus": 2}}, parameters=[]),
            dict(base, id="pub", name=TEXT("Public", "Public"), flavors=["tiny"],
                 networks={"private": True, "public": True}, ports=[PORT_DEAD],
                 approval="always", parameters=[]),
        ],
    }


def main(res):
    tmp = tempfile.mkdtemp(prefix="mu-req-")
    pol = os.path.join(tmp, "policies")
    shutil.copytree(os.path.join(SRC, "policies"), pol)
    with open(os.path.join(pol, "catalog.json"), "w") as f:
        json.dump(catalog(), f, indent=1)
    ctl = Controller(policies=pol).start()
    try:
        scenario(ctl, res)
        reload(ctl, res, pol)
    finally:
        rc = ctl.stop()
        res.check(rc == 0, f"mutualisd exited cleanly ({rc})")
        ctl.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def counts(ctl):
    """What a refused request must not change: requests, events, VMs, operations."""
    db = sqlite3.connect(f"file:{os.path.join(ctl.data_dir, 'mutualis.db')}?mode=ro", uri=True)
    try:
        return tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in ("requests", "events", "vms", "operations"))
    finally:
        db.close()


def vm_address(ctl, vm_id):
    db = sqlite3.connect(f"file:{os.path.join(ctl.data_dir, 'mutualis.db')}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT ip FROM nics WHERE vm_id = ? ORDER BY idx LIMIT 1",
                         (vm_id,)).fetchone()
    finally:
        db.close()
    if not row:
        raise Failure(f"VM {vm_id} has no NIC")
    ip = row[0]
    return ".".join(str((ip >> s) & 255) for s in (24, 16, 8, 0))


def wait_status(rq, rid, want, token, timeout=60):
    end = time.time() + timeout
    j = None
    while time.time() < end:
        j = rq("GET", f"/v1/requests/{rid}", token=token).json
        if j["status"] in want:
            return j
        time.sleep(0.1)
    raise Failure(f"request {rid} stayed {j and j['status']} (wanted {want})")


def scenario(ctl, res):
    rq = ctl.request
    op = ctl.token

    # --- fixtures -------------------------------------------------------------------
    must(rq("POST", "/v1/nodes", {"name": "rq-node", "uri": "test:///default",
                                  "pool": "default-pool"}), 201, "node")
    S = must(rq("POST", "/v1/tenants", {"name": "Syndicat Test", "kind": "syndicat"}), 201,
             "s")["id"]
    E = must(rq("POST", "/v1/tenants", {"name": "CC du Val", "kind": "epci", "epci_form": "CC",
                                        "parent_id": S}), 201, "e")["id"]
    C1 = must(rq("POST", "/v1/tenants", {"name": "Amont", "kind": "commune", "insee": "01001",
                                         "parent_id": E}), 201, "c1")["id"]
    C2 = must(rq("POST", "/v1/tenants", {"name": "Aval", "kind": "commune", "insee": "01002",
                                         "parent_id": E}), 201, "c2")["id"]
    C3 = must(rq("POST", "/v1/tenants", {"name": "Petiteville", "kind": "commune",
                                         "insee": "01003", "parent_id": E}), 201, "c3")["id"]
    unl = {"vcpus": "unlimited", "ram_mib": "unlimited", "disk_gib": "unlimited",
           "vms": "unlimited"}
    for t in (S, E, C1, C2):
        must(rq("PUT", f"/v1/tenants/{t}/quota", unl), 200, "quota")
    must(rq("PUT", f"/v1/tenants/{C3}/quota", {"vcpus": 8, "ram_mib": 8192, "disk_gib": 100,
                                              "vms": 0}), 200, "c3 quota")
    must(rq("POST", "/v1/flavors", {"name": "tiny", "vcpus": 1, "ram_mib": 64, "disk_gib": 1}),
         201, "flavor")
    must(rq("POST", "/v1/flavors", {"name": "big", "vcpus": 4, "ram_mib": 256, "disk_gib": 1}),
         201, "flavor")
    img = b"\0" * 4096
    iid = must(rq("POST", "/v1/images", {"name": "test-img", "format": "raw",
                                         "sha256": hashlib.sha256(img).hexdigest()}), 201,
               "image")["id"]
    must(rq("PUT", f"/v1/images/{iid}/data", raw=img,
            headers={"Content-Type": "application/octet-stream"}), 200, "upload")

    def token_for(role, tenant, name):
        uid = must(rq("POST", "/v1/users", {"name": name, "role": role, "tenant_id": tenant}),
                   201, "user")["id"]
        return must(rq("POST", "/v1/tokens", {"name": f"t-{name}", "user_id": uid}), 201,
                    "token")["secret"]

    c1 = token_for("tenant-admin", C1, "sec-amont")
    c1r = token_for("tenant-reader", C1, "lecteur-amont")
    c2 = token_for("tenant-admin", C2, "sec-aval")
    ea = token_for("tenant-admin", E, "admin-cc")

    site_params = {"domain": "Mairie-Amont.fr", "admin_email": "secretariat@mairie-amont.fr",
                   "title": "Mairie d'Amont", "size": 3, "theme": "clair"}

    def file(item, params=None, token=c1, tenant=None, flavor="tiny", justification="besoin"):
        b = {"item": item, "flavor": flavor, "parameters": params or {},
             "justification": justification}
        if tenant:
            b["tenant_id"] = tenant
        return rq("POST", "/v1/requests", b, token=token)

    # --- the catalogue ---------------------------------------------------------------
    cat = must(rq("GET", "/v1/catalog", token=c1r), 200, "catalog")
    ids = [i["id"] for i in cat["items"]]
    res.check(ids == ["site", "box", "auto", "pub"], f"catalogue lists the items ({ids})")
    site = cat["items"][0]
    p = {x["name"]: x for x in site["parameters"]}
    res.check(site["name"] == {"fr": "Site web", "en": "Website"} and site["ports"] == [PORT_READY]
              and site["approval"] == "always" and site["approval_above"] is None
              and site["public"] is False and site["flavors"] == ["tiny"],
              "an item carries names, flavors, ports, public flag and approval rule")
    res.check(p["size"]["min"] == 1 and p["size"]["max"] == 10 and p["title"]["max_length"] == 20
              and p["theme"]["choices"] == ["clair", "sombre"] and p["domain"]["required"]
              and p["domain"]["label"]["fr"] == "Domaine",
              "parameters carry type, bounds, choices, labels")
    res.check(cat["items"][2]["approval"] == "above"
              and cat["items"][2]["approval_above"]["vcpus"] == 2, "approval above a size")

    # --- file a request: pending ----------------------------------------------------------
    r = file("site", site_params)
    res.check(r.status == 201 and r.json["status"] == "pending" and r.json["tenant_id"] == C1
              and r.json["tenant_name"] == "Amont" and r.json["vm_id"] is None
              and r.headers.get("location") == f"/v1/requests/{r.json['id']}",
              f"a commune's admin files a request → 201 pending ({r!r})")
    site_id = r.json["id"]
    res.check(r.json["parameters"]["domain"] == "mairie-amont.fr",
              "the domain name is stored lower-cased")
    res.check(file("site", site_params, token=c1r).status == 403,
              "a tenant-reader cannot file a request (403)")

    # --- another commune sees none of it -------------------------------------------------
    res.check(rq("GET", f"/v1/requests/{site_id}", token=c2).status == 404,
              "another commune's admin gets 404 on the request")
    for action, body in (("approve", {}), ("reject", {"reason": "x"}), ("cancel", None)):
        res.check(rq("POST", f"/v1/requests/{site_id}/{action}", body, token=c2).status == 404,
                  f"another commune cannot {action} it (404)")
    lst = must(rq("GET", "/v1/requests", token=c2), 200, "list c2")
    res.check(lst["items"] == [], "another commune's list is empty")
    res.check(rq("GET", f"/v1/requests?tenant={C1}", token=c2).status == 404,
              "filtering on another commune answers 404")
    r = file("site", site_params, token=c2, tenant=C1)
    res.check(r.status == 404, "filing for another commune answers 404")

    # --- a tenant does not decide its own request ------------------------------------------
    r = rq("POST", f"/v1/requests/{site_id}/approve", {}, token=c1)
    res.check(r.status == 403 and "own" in r.json["detail"],
              f"a commune's admin cannot approve its own request ({r.json['detail']})")

    # --- bad input: field-level errors, nothing changed ---------------------------------
    before = counts(ctl)
    long_text = "x" * 2001
    bad = [
        ({"item": "nope"}, "item"),
        ({"flavor": "big"}, "flavor"),
        ({"flavor": "nonexistent"}, "flavor"),
        ({"params": dict(site_params, color="red")}, "parameters.color"),
        ({"params": dict(site_params, size=11)}, "parameters.size"),
        ({"params": dict(site_params, size=0)}, "parameters.size"),
        ({"params": dict(site_params, size="3")}, "parameters.size"),
        ({"params": dict(site_params, size=2.5)}, "parameters.size"),
        ({"params": dict(site_params, domain="pas un domaine")}, "parameters.domain"),
        ({"params": dict(site_params, domain="mairie.fr\nruncmd: [reboot]")},
         "parameters.domain"),
        ({"params": dict(site_params, title="Mairie\nruncmd: [\"rm -rf /\"]")},
         "parameters.title"),
        ({"params": dict(site_params, title="x" * 21)}, "parameters.title"),
        ({"params": dict(site_params, admin_email="not-an-email")}, "parameters.admin_email"),
        ({"params": dict(site_params, theme="rose")}, "parameters.theme"),
        ({"params": {k: v for k, v in site_params.items() if k != "domain"}},
         "parameters.domain"),
        ({"justification": long_text}, "justification"),
    ]
    for change, field in bad:
        b = {"item": change.get("item", "site"), "flavor": change.get("flavor", "tiny"),
             "parameters": change.get("params", site_params),
             "justification": change.get("justification", "ok")}
        r = rq("POST", "/v1/requests", b, token=c1)
        fields = [e["field"] for e in (r.json or {}).get("errors", [])]
        ok = (r.status == 400 and field in fields and r.json.get("detail")
              and all(e.get("detail") for e in r.json["errors"]))
        res.check(ok, f"bad input {field} → 400 with a field error ({fields}: "
                      f"{(r.json or {}).get('detail', r.body)[:90]})")
    r = rq("POST", "/v1/requests", {"item": "site", "flavor": "tiny", "parameters": site_params,
                                    "runcmd": "x"}, token=c1)
    res.check(r.status == 400, "an unknown top-level field → 400")
    r = rq("POST", "/v1/requests", raw='{"item": "site", "item": "box"}', token=c1)
    res.check(r.status == 400, "a duplicate key → 400")
    multi = rq("POST", "/v1/requests", {"item": "site", "flavor": "big",
                                        "parameters": {"size": 99}, "justification": long_text},
               token=c1).json
    res.check(len(multi["errors"]) >= 4, f"every problem is listed ({len(multi['errors'])})")
    res.check(counts(ctl) == before, f"bad input changed nothing ({before} → {counts(ctl)})")

    # --- cancel --------------------------------------------------------------------------
    box = must(file("box", {"purpose": "essai"}), 201, "box")["id"]
    r = rq("POST", f"/v1/requests/{box}/cancel", token=c1r)
    res.check(r.status == 403, "a tenant-reader cannot cancel (403)")
    r = rq("POST", f"/v1/requests/{box}/cancel", token=c1)
    res.check(r.status == 200 and r.json["status"] == "cancelled", "the commune cancels (200)")
    before = counts(ctl)
    r = rq("POST", f"/v1/requests/{box}/approve", {})
    res.check(r.status == 409 and "cancelled" in r.json["detail"],
              f"approving a cancelled request → 409 naming its status ({r.json['detail']})")
    r = rq("POST", f"/v1/requests/{box}/cancel", token=c1)
    res.check(r.status == 409, "cancelling twice → 409")
    res.check(counts(ctl) == before and rq("GET", f"/v1/requests/{box}").json["status"] ==
              "cancelled", "nothing changed")

    # --- reject --------------------------------------------------------------------------
    rej = must(file("box", {"purpose": "essai 2"}), 201, "box")["id"]
    r = rq("POST", f"/v1/requests/{rej}/reject", {})
    res.check(r.status == 400 and r.json.get("field") == "reason",
              "rejecting without a reason → 400")
    r = rq("POST", f"/v1/requests/{rej}/reject", {"reason": "Pas de budget cette année"})
    res.check(r.status == 200 and r.json["status"] == "rejected"
              and r.json["reason"] == "Pas de budget cette année"
              and r.json["decided_by"] == "admin", "an operator rejects with a reason")
    r = rq("POST", f"/v1/requests/{rej}/approve", {})
    res.check(r.status == 409 and "rejected" in r.json["detail"], "approving a rejected one → 409")

    # --- an EPCI's admin: only where the item allows it -----------------------------------
    epb = must(file("box", {"purpose": "essai 3"}), 201, "box")["id"]
    r = rq("POST", f"/v1/requests/{epb}/approve", {}, token=ea)
    res.check(r.status == 403 and "operators only" in r.json["detail"],
              "the EPCI's admin cannot approve an item reserved to operators (403)")
    res.check(rq("GET", f"/v1/requests/{epb}").json["status"] == "pending", "still pending")
    lst = must(rq("GET", "/v1/requests?status=pending", token=ea), 200, "epci list")
    res.check(sorted(x["id"] for x in lst["items"]) == sorted([site_id, epb]),
              "the EPCI's admin lists its members' pending requests")

    # --- approval: admission, operation, readiness --------------------------------------
    before_vms = counts(ctl)[2]
    r = rq("POST", f"/v1/requests/{site_id}/approve", {"reason": "Validé"}, token=ea)
    res.check(r.status == 200 and r.json["status"] == "provisioning" and r.json["vm_id"]
              and r.json["operation_id"] and r.json["decided_by"] == "admin-cc",
              f"the EPCI's admin approves its member's website → provisioning ({r!r})")
    vm_id, op_id = r.json["vm_id"], r.json["operation_id"]
    res.check(counts(ctl)[2] == before_vms + 1, "the VM was admitted at approval")
    vm = must(rq("GET", f"/v1/vms/{vm_id}", token=c1), 200, "vm")
    res.check(vm["tenant_id"] == C1, "the VM belongs to the commune")
    r2 = rq("POST", f"/v1/requests/{site_id}/approve", {})
    res.check(r2.status == 409 and "provisioning" in r2.json["detail"] or
              r2.status == 409 and "ready" in r2.json["detail"],
              f"approving twice → 409 naming the status ({r2.json['detail']})")
    res.check(counts(ctl)[2] == before_vms + 1, "approving twice admitted nothing more")
    end = time.time() + 60
    while time.time() < end:
        o = rq("GET", f"/v1/operations/{op_id}").json
        if o["state"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    res.check(o["state"] == "succeeded", f"the create operation ran ({o['state']})")
    addr = vm_address(ctl, vm_id)
    res.check(addr.startswith("127.77.0."), f"the VM's NIC is on the default private network "
                                            f"({addr})")
    res.check(rq("GET", f"/v1/requests/{site_id}").json["status"] == "provisioning",
              "not ready while nothing answers on the port")
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((addr, PORT_READY))
    lsock.listen(8)
    try:
        j = wait_status(rq, site_id, ("ready", "failed"), op)
    finally:
        lsock.close()
    res.check(j["status"] == "ready", f"ready once the guest answers on {addr}:{PORT_READY} "
                                      f"({j['status']}: {j['reason']})")

    # --- concurrent approvals: exactly one wins ----------------------------------------
    race = must(file("box", {"purpose": "course"}), 201, "box")["id"]
    before = counts(ctl)
    answers = []
    go = threading.Barrier(8)

    def approve():
        go.wait()
        answers.append(rq("POST", f"/v1/requests/{race}/approve", {}).status)

    threads = [threading.Thread(target=approve) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res.check(sorted(answers) == [200] + [409] * 7,
              f"8 concurrent approvals: one 200, seven 409 ({sorted(answers)})")
    res.check(counts(ctl)[2] == before[2] + 1, "one VM admitted")

    # --- deadline: nothing ever answers --------------------------------------------------
    dead = must(file("box", {"purpose": "muet"}), 201, "box")["id"]
    r = rq("POST", f"/v1/requests/{dead}/approve", {})
    res.check(r.status == 200 and r.json["status"] == "provisioning", "approved → provisioning")
    j = wait_status(rq, dead, ("ready", "failed"), op, timeout=DEADLINE_S + 60)
    res.check(j["status"] == "failed" and str(PORT_DEAD) in j["reason"]
              and "deadline" in j["reason"],
              f"failed with the reason once the deadline passed ({j['reason']})")
    res.check(j["updated_ms"] - r.json["updated_ms"] >= DEADLINE_S * 1000 - 50,
              "not before the deadline (recorded timestamps)")

    # --- quota refusal at approval ---------------------------------------------------------
    q = must(file("box", {"purpose": "quota"}, token=op, tenant=C3), 201, "c3 request")["id"]
    before = counts(ctl)
    r = rq("POST", f"/v1/requests/{q}/approve", {})
    res.check(r.status == 200 and r.json["status"] == "failed" and "Petiteville" in
              (r.json["reason"] or ""), f"quota refusal: failed, naming the level "
                                        f"({r.json.get('reason')})")
    res.check(counts(ctl)[2] == before[2], "no VM was admitted")
    res.check(rq("GET", f"/v1/requests/{q}").json["status"] == "failed",
              "the request shows failed")

    # --- an item needing a provider network that does not exist -----------------------------
    pub = must(file("pub", {}), 201, "pub")["id"]
    r = rq("POST", f"/v1/requests/{pub}/approve", {})
    res.check(r.status == 200 and r.json["status"] == "failed"
              and "public" in (r.json["reason"] or ""),
              f"a public item without the provider network fails clearly ({r.json['reason']})")

    # --- approval rule above a size --------------------------------------------------------
    r = file("auto", {}, flavor="tiny")
    res.check(r.status == 201 and r.json["status"] == "provisioning"
              and r.json["decided_by"] == "policy",
              f"below the size, no approval is needed ({r.json['status']})")
    r = file("auto", {}, flavor="big")
    res.check(r.status == 201 and r.json["status"] == "pending", "above it, approval is needed")

    # --- operator view: quota levels ----------------------------------------------------------
    j = must(rq("GET", f"/v1/requests/{epb}"), 200, "op get")
    res.check([lv["tenant_id"] for lv in j["quota"]["levels"]] == [S, E, C1],
              "an operator sees the tenant's quota levels with the request")
    j = must(rq("GET", f"/v1/requests/{epb}", token=c1), 200, "c1 get")
    res.check("quota" not in j, "a commune does not get the quota block")
    lst = must(rq("GET", f"/v1/requests?tenant={C1}&status=cancelled", token=c1), 200, "filter")
    res.check([x["id"] for x in lst["items"]] == [box], "list filters by status and tenant")
    res.check(rq("GET", "/v1/requests?status=bogus", token=c1).status == 400,
              "an unknown status filter → 400")
    page = must(rq("GET", "/v1/requests?limit=2"), 200, "page")
    res.check(len(page["items"]) == 2 and page["next_after"] == page["items"][1]["id"],
              "lists are paginated")

    # --- events and audit ------------------------------------------------------------------
    ev = must(rq("GET", f"/v1/events?tenant={C1}&limit=1000", token=c1), 200, "events")["items"]
    types = [e["type"] for e in ev if e["subject"] == f"request/{site_id}"]
    res.check(types == ["request.created", "request.approved", "request.provisioning",
                        "request.ready"], f"events of the approved request ({types})")
    kinds = {e["type"] for e in ev}
    for t in ("request.cancelled", "request.rejected", "request.failed"):
        res.check(t in kinds, f"event {t} appended")
    ev2 = must(rq("GET", "/v1/events?limit=1000", token=c2), 200, "events c2")["items"]
    res.check(all(e["tenant_id"] != C1 for e in ev2), "another commune hears nothing of it")
    aud = must(rq("GET", f"/v1/audit?tenant={C1}&limit=1000"), 200, "audit")["items"]
    acts = [(a["action"], a["outcome"]) for a in aud if a["target"] == f"request/{site_id}"]
    res.check(("request.create", "ok") in acts and ("request.approve", "ok") in acts
              and ("request.ready", "ok") in acts, f"every step audited ({acts})")
    refused = [a for a in aud if a["outcome"] == "invalid" and a["action"] == "request.create"]
    res.check(len(refused) >= len(bad), "refused requests are audited as invalid")

    # --- CLI ---------------------------------------------------------------------------
    rc, out, err = cli(ctl, "catalog", "list", token=c1)
    res.check(rc == 0 and "site" in out and "Site web" in out, f"mutualis catalog list ({err})")
    rc, out, err = cli(ctl, "request", "create", "box", "--flavor", "tiny", "--param",
                       "purpose=cli", "--justification", "par la CLI", "--json", token=c1)
    cj = json.loads(out) if rc == 0 else {}
    res.check(rc == 0 and cj.get("status") == "pending", f"mutualis request create ({err})")
    rc, out, err = cli(ctl, "request", "create", "site", "--flavor", "tiny", "--param",
                       "size=99", token=c1)
    res.check(rc == 1 and "parameters.size" in err, f"the CLI shows field errors ({err.strip()})")
    rc, out, err = cli(ctl, "request", "list", "--status", "pending", token=c1)
    res.check(rc == 0 and str(cj.get("id")) in out and "pending" in out, "mutualis request list")
    rc, out, err = cli(ctl, "request", "show", str(cj.get("id")), token=c1)
    res.check(rc == 0 and "box" in out, "mutualis request show")
    rc, out, err = cli(ctl, "request", "reject", str(cj.get("id")), "--reason", "doublon")
    res.check(rc == 0 and "rejected" in out, f"mutualis request reject ({err})")
    rc, out, err = cli(ctl, "request", "approve", str(cj.get("id")))
    res.check(rc == 1 and "rejected" in err, "the CLI shows the 409")
    rc, out, err = cli(ctl, "request", "cancel", str(epb), token=c1)
    res.check(rc == 0 and "cancelled" in out, "mutualis request cancel")


def reload(ctl, res, pol):
    """SIGHUP re-reads the catalogue with the other policies, all or nothing."""
    rq = ctl.request
    path = os.path.join(pol, "catalog.json")
    with open(path, "w") as f:
        f.write('{"version": 1,\n "items": [{"id": "x", "ports": [80]}]}')
    ctl.send_signal(signal.SIGHUP)
    end = time.time() + 30
    while time.time() < end and "catalog.json: line 2" not in ctl.read_log():
        time.sleep(0.1)
    log = ctl.read_log()
    res.check("policy reload refused" in log and "catalog.json: line 2" in log,
              "a bad catalogue is refused on SIGHUP, naming the file and line")
    ids = [i["id"] for i in rq("GET", "/v1/catalog").json["items"]]
    res.check(ids == ["site", "box", "auto", "pub"], "the previous catalogue stays in force")
    new = catalog()
    new["items"] = new["items"][:1]
    with open(path, "w") as f:
        json.dump(new, f)
    ctl.send_signal(signal.SIGHUP)
    end = time.time() + 30
    while time.time() < end:
        ids = [i["id"] for i in rq("GET", "/v1/catalog").json["items"]]
        if ids == ["site"]:
            break
        time.sleep(0.1)
    res.check(ids == ["site"], "a good catalogue replaces it on SIGHUP")
    r = rq("POST", "/v1/requests", {"tenant_id": 3, "item": "box", "flavor": "tiny",
                                    "parameters": {}})
    res.check(r.status == 400 and r.json["errors"][0]["field"] == "item",
              "an item no longer in the catalogue cannot be requested")


if __name__ == "__main__":
    sys.exit(run(main))
