"""Networks over real HTTPS (nodes on libvirt's in-process test driver, test:///default):
create / list / show / delete, cross-tenant 404s, a table of bad inputs that change nothing,
security rules (tenant and operator rules), provider networks and public addresses, the
network and public-address quotas naming the level, node underlay addresses, and address
management under 64 concurrent VM creates on one network: no address twice, deletes free
them and new VMs get them back. The CLI's network commands and vm create --nic too."""
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SRC, Controller, Failure, cli, run  # noqa: E402

THREADS = 64


def must(r, status, what):
    if r.status != status:
        raise Failure(f"setup {what}: expected {status}, got {r!r}")
    return r.json


def main(res):
    ctl = Controller()
    try:
        ctl.start()
        scenario(ctl, res)
    finally:
        ctl.stop()
        ctl.cleanup()
    policy_scenario(res)


def policy_scenario(res):
    """policies/networks.json: provider networks it declares exist after the start; a bad
    file is refused on SIGHUP with its line and column and changes nothing; a good one adds
    what it declares."""
    pol = tempfile.mkdtemp(prefix="mu-pol-")
    shutil.rmtree(pol)
    shutil.copytree(os.path.join(SRC, "policies"), pol)
    path = os.path.join(pol, "networks.json")
    with open(path) as f:
        doc = json.load(f)
    doc["providers"] = [{"name": "public", "cidr": "203.0.113.0/24", "gateway": "203.0.113.1",
                         "bridge": "br-public", "pools": [["203.0.113.10", "203.0.113.99"]],
                         "shared": True}]
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
    ctl = Controller(policies=pol)
    try:
        ctl.start()
        rq = ctl.request
        must(rq("POST", "/v1/tenants", {"name": "Syndicat", "kind": "syndicat"}), 201, "root")
        # The root tenant did not exist at the start: the provider network waits for the
        # next reload (the policy's networks belong to the root).
        ctl.send_signal(signal.SIGHUP)
        end = time.time() + 10
        nets = []
        while time.time() < end:
            nets = rq("GET", "/v1/networks").json["items"]
            if nets:
                break
            time.sleep(0.1)
        res.check([n["name"] for n in nets] == ["public"] and nets[0]["free_addresses"] == 90
                  and nets[0]["shared"] is True,
                  "a provider network declared in networks.json is created on reload")
        with open(path, "w") as f:
            f.write('{"version": 1, "private": {"mode": "vxlan"},\n "ipv6": true}\n')
        ctl.send_signal(signal.SIGHUP)
        end = time.time() + 10
        while time.time() < end and "networks.json: line 2, column 2" not in ctl.read_log():
            time.sleep(0.1)
        res.check("networks.json: line 2, column 2: unknown key \"ipv6\"" in ctl.read_log(),
                  "a bad networks.json is refused on reload, naming line and column")
        doc["providers"].append({"name": "dmz", "cidr": "198.51.100.0/24",
                                 "bridge": "br-dmz"})
        with open(path, "w") as f:
            json.dump(doc, f, indent=2)
        ctl.send_signal(signal.SIGHUP)
        end = time.time() + 10
        while time.time() < end and len(rq("GET", "/v1/networks").json["items"]) < 2:
            time.sleep(0.1)
        names = [n["name"] for n in rq("GET", "/v1/networks").json["items"]]
        res.check(names == ["public", "dmz"], "a good reload adds the new provider network once")
    finally:
        ctl.stop()
        ctl.cleanup()
        shutil.rmtree(pol, ignore_errors=True)


def scenario(ctl, res):
    rq = ctl.request

    def wait_op(op_id, what):
        end = time.time() + 120
        while time.time() < end:
            j = rq("GET", f"/v1/operations/{op_id}").json
            if j["state"] in ("succeeded", "failed"):
                if j["state"] == "failed":
                    raise Failure(f"{what}: operation {op_id} failed: {j['error']}")
                return j
            time.sleep(0.05)
        raise Failure(f"{what}: operation {op_id} did not finish")

    # ---- fixtures ----------------------------------------------------------------------
    must(rq("POST", "/v1/flavors", {"name": "tiny", "vcpus": 1, "ram_mib": 64, "disk_gib": 1}),
         201, "flavor")
    data = b"\0" * 4096
    img = must(rq("POST", "/v1/images", {"name": "img", "format": "raw",
                                         "sha256": hashlib.sha256(data).hexdigest()}), 201,
               "image")["id"]
    must(rq("PUT", f"/v1/images/{img}/data", raw=data,
            headers={"Content-Type": "application/octet-stream"}), 200, "upload")
    S = must(rq("POST", "/v1/tenants", {"name": "Syndicat", "kind": "syndicat"}), 201, "s")["id"]
    E = must(rq("POST", "/v1/tenants", {"name": "CC du Pays X", "kind": "epci", "epci_form": "CC",
                                        "parent_id": S}), 201, "e")["id"]
    C1 = must(rq("POST", "/v1/tenants", {"name": "Commune A", "kind": "commune",
                                         "insee": "01001", "parent_id": E}), 201, "c1")["id"]
    C2 = must(rq("POST", "/v1/tenants", {"name": "Commune B", "kind": "commune",
                                         "insee": "01002", "parent_id": E}), 201, "c2")["id"]
    unlimited = {"vcpus": "unlimited", "ram_mib": "unlimited", "disk_gib": "unlimited",
                 "vms": "unlimited", "networks": "unlimited", "public_ips": "unlimited"}
    for t in (S, E, C1, C2):
        must(rq("PUT", f"/v1/tenants/{t}/quota", unlimited), 200, "quota")
    nodes = [must(rq("POST", "/v1/nodes", {"name": f"n{i}", "uri": "test:///default",
                                           "pool": "default-pool"}), 201, "node")["id"]
             for i in (1, 2, 3)]  # test:///default: 3 GiB, 1 reserved: 32 tiny VMs each

    def token_for(role, tenant):
        uid = must(rq("POST", "/v1/users", {"name": f"u{role}{tenant}", "role": role,
                                            "tenant_id": tenant}), 201, "user")["id"]
        return must(rq("POST", "/v1/tokens", {"name": "t", "user_id": uid}), 201,
                    "token")["secret"]

    a1 = token_for("tenant-admin", C1)
    a2 = token_for("tenant-admin", C2)
    r1 = token_for("tenant-reader", C1)

    # ---- node underlay addresses -------------------------------------------------------
    r = rq("PATCH", f"/v1/nodes/{nodes[0]}", {"underlay_ip": "10.99.0.11"})
    res.check(r.status == 200 and r.json["underlay_ip"] == "10.99.0.11",
              "PATCH node underlay_ip sets the underlay address")
    code, out, err = cli(ctl, "node", "underlay", str(nodes[1]), "10.99.0.12")
    res.check(code == 0 and rq("GET", f"/v1/nodes/{nodes[1]}").json["underlay_ip"] == "10.99.0.12",
              f"mutualis node underlay sets the address ({err!r})")
    code, out, err = cli(ctl, "node", "underlay", str(nodes[1]), "10.99.0.999")
    res.check(code != 0 and "underlay" in err and
              rq("GET", f"/v1/nodes/{nodes[1]}").json["underlay_ip"] == "10.99.0.12",
              f"mutualis node underlay refuses a bad address, nothing changed ({err!r})")
    for bad, field in (("10.99.0.11", "underlay_ip"), ("10.99.0.300", "underlay_ip"),
                       ("fd00::1", "underlay_ip"), (12, "underlay_ip")):
        r = rq("PATCH", f"/v1/nodes/{nodes[1]}", {"underlay_ip": bad})
        res.check(r.status in (400, 409) and r.json.get("field") == field
                  and rq("GET", f"/v1/nodes/{nodes[1]}").json["underlay_ip"] == "10.99.0.12",
                  f"underlay_ip {bad!r} refused ({r.status}), nothing changed")

    # ---- CRUD and cross-tenant ---------------------------------------------------------
    r = rq("POST", "/v1/networks", {"name": "lan", "cidr": "10.0.0.0/24",
                                    "reserved": [["10.0.0.1", "10.0.0.9"]]}, token=a1)
    res.check(r.status == 201 and r.headers.get("location") == f"/v1/networks/{r.json['id']}",
              "tenant admin creates its private network (201, Location)")
    lan = r.json
    res.check(lan["tenant_id"] == C1 and lan["kind"] == "private" and lan["mode"] == "vxlan"
              and lan["mtu"] == 1450 and lan["bridge"] == f"mubr{lan['segment']}"
              and lan["gateway"] is None and lan["free_addresses"] == 245
              and lan["reserved"] == [["10.0.0.1", "10.0.0.9"]],
              "network: VXLAN segment, bridge mubr<vni>, MTU 1500 - 50, no gateway, reserved")
    r = rq("POST", "/v1/networks", {"name": "lan", "cidr": "10.0.0.0/24"}, token=a2)
    res.check(r.status == 201 and r.json["segment"] != lan["segment"],
              "another tenant's network may overlap the CIDR: its own segment")
    lan2 = r.json
    res.check(rq("GET", f"/v1/networks/{lan['id']}", token=a1).status == 200,
              "owner reads its network")
    res.check(rq("GET", f"/v1/networks/{lan['id']}", token=r1).status == 200,
              "tenant reader reads its tenant's network")
    for method, path in (("GET", f"/v1/networks/{lan['id']}"),
                         ("DELETE", f"/v1/networks/{lan['id']}"),
                         ("GET", f"/v1/networks/{lan['id']}/addresses"),
                         ("GET", f"/v1/networks/{lan['id']}/rules"),
                         ("POST", f"/v1/networks/{lan['id']}/rules")):
        r = rq(method, path, {"proto": "any"} if method == "POST" else None, token=a2)
        res.check(r.status == 404, f"{method} {path} by another tenant's admin: 404")
    ids = [n["id"] for n in rq("GET", "/v1/networks", token=a2).json["items"]]
    res.check(ids == [lan2["id"]], "another tenant lists only its own networks")
    ids = [n["id"] for n in rq("GET", "/v1/networks").json["items"]]
    res.check(lan["id"] in ids and lan2["id"] in ids, "operator lists every network")

    # ---- bad input: refused with a field, nothing changed ------------------------------
    before = len(rq("GET", "/v1/networks").json["items"])
    bad = [
        ({"name": "x", "cidr": "10.1.0.1/24"}, a1, 400, "cidr"),
        ({"name": "x", "cidr": "10.1.0.0/31"}, a1, 400, "cidr"),
        ({"name": "x", "cidr": "10.1.0.0/7"}, a1, 400, "cidr"),
        ({"name": "x", "cidr": "fd00::/64"}, a1, 400, "cidr"),
        ({"name": "x", "cidr": "10.1.0.0/24", "ipv6": "fd00::/64"}, a1, 400, "ipv6"),
        ({"name": "x", "cidr": "10.1.0.0/24", "nat": True}, a1, 400, "nat"),
        ({"name": "x", "cidr": "10.1.0.0/24", "gateway": "10.1.0.1"}, a1, 400, "gateway"),
        ({"name": "x", "cidr": "10.1.0.0/24", "bridge": "br0"}, a1, 400, "bridge"),
        ({"name": "x", "cidr": "10.1.0.0/24", "mode": "bridge"}, a1, 400, "mode"),
        ({"name": "x", "kind": "provider", "mode": "vxlan", "cidr": "203.0.113.0/24",
          "bridge": "br-public"}, None, 400, "mode"),
        ({"name": "Bad Name", "cidr": "10.1.0.0/24"}, a1, 400, "name"),
        ({"name": "x", "cidr": "10.1.0.0/24", "colour": "blue"}, a1, 400, None),
        ({"name": "x", "cidr": "10.1.0.0/24", "reserved": [["10.2.0.1", "10.2.0.5"]]}, a1, 400,
         "reserved"),
        ({"name": "x", "cidr": "10.1.0.0/24", "reserved": [["10.1.0.9", "10.1.0.1"]]}, a1, 400,
         "reserved"),
        ({"name": "x", "cidr": "10.1.0.0/24", "reserved": "10.1.0.1"}, a1, 400, "reserved"),
        ({"name": "x", "kind": "provider", "cidr": "10.1.0.0/24", "bridge": "br0"}, a1, 403,
         None),
        ({"name": "lan", "cidr": "10.1.0.0/24"}, a1, 409, "name"),
        ({"name": "x", "cidr": "10.1.0.0/24", "tenant_id": C2}, a1, 404, None),
        ({"name": "x", "kind": "provider", "cidr": "203.0.113.0/24", "bridge": "br;reboot"},
         None, 400, "bridge"),
        ({"name": "x", "kind": "provider", "cidr": "203.0.113.0/24", "bridge": "br-public",
          "gateway": "198.51.100.1"}, None, 400, "gateway"),
        ({"name": "x", "kind": "provider", "cidr": "203.0.113.0/24", "bridge": "br-public",
          "pools": [["203.0.114.1", "203.0.114.9"]]}, None, 400, "pools"),
    ]
    for body, tok, status, field in bad:
        r = rq("POST", "/v1/networks", body, token=tok) if tok else rq("POST", "/v1/networks",
                                                                         body)
        ok = r.status == status and r.headers.get("content-type", "").startswith(
            "application/problem+json") and r.json.get("detail")
        if field:
            ok = ok and r.json.get("field") == field
        if not ok:
            print(f"     got {r!r}")
        res.check(ok, f"POST /v1/networks {json.dumps(body)[:70]} → {status}")
    res.check(len(rq("GET", "/v1/networks").json["items"]) == before,
              "no bad input created a network")

    # ---- rules -------------------------------------------------------------------------
    rules = f"/v1/networks/{lan['id']}/rules"
    r = rq("POST", rules, {"proto": "tcp", "ports": 443, "description": "site web"}, token=a1)
    res.check(r.status == 201 and r.json["operator_rule"] is False and r.json["ports"] == "443"
              and r.json["source"] == "0.0.0.0/0", "tenant admin opens tcp/443")
    tenant_rule = r.json["id"]
    r = rq("POST", rules, {"proto": "udp", "ports": "53", "action": "drop",
                           "source": "192.0.2.0/24"})
    res.check(r.status == 201 and r.json["operator_rule"] is True, "operator sets a drop rule")
    op_rule = r.json["id"]
    for body, field in (({"proto": "tcp"}, "ports"), ({"proto": "tcp", "ports": 0}, "ports"),
                        ({"proto": "tcp", "ports": "90-80"}, "ports"),
                        ({"proto": "sctp"}, "proto"), ({"proto": "icmp", "ports": 1}, "ports"),
                        ({"proto": "any", "action": "drop"}, "action"),
                        ({"proto": "any", "source": "10.0.0.1/24"}, "source"),
                        ({"proto": "any", "source": "::/0"}, "source"),
                        ({"proto": "any", "direction": "egress"}, None)):
        r = rq("POST", rules, body, token=a1)
        res.check(r.status == 400 and (field is None or r.json.get("field") == field),
                  f"rule {json.dumps(body)} refused (400 {field})")
    j = rq("GET", rules, token=r1).json
    res.check([x["id"] for x in j["items"]] == [op_rule, tenant_rule] and j["rules_gen"] == 2,
              "rules list: operator rules first; rules_gen counts the changes")
    r = rq("DELETE", f"{rules}/{op_rule}", token=a1)
    res.check(r.status == 403 and "operators" in r.json["detail"],
              "a tenant cannot delete an operator rule (403)")
    res.check(rq("DELETE", f"{rules}/{tenant_rule}", token=a2).status == 404,
              "another tenant cannot delete the rule (404)")
    res.check(rq("DELETE", f"{rules}/{tenant_rule}", token=a1).status == 204,
              "tenant admin deletes its rule")
    res.check(rq("DELETE", f"{rules}/{tenant_rule}", token=a1).status == 404,
              "deleting it again: 404")

    # ---- provider network --------------------------------------------------------------
    r = rq("POST", "/v1/networks", {"name": "public", "kind": "provider", "mode": "bridge",
                                    "cidr": "203.0.113.0/24", "gateway": "203.0.113.1",
                                    "bridge": "br-public",
                                    "pools": [["203.0.113.10", "203.0.113.13"]],
                                    "shared": True})
    res.check(r.status == 201 and r.json["tenant_id"] == S and r.json["mode"] == "bridge"
              and r.json["segment"] is None and r.json["free_addresses"] == 4
              and r.json["mtu"] == 1500, "operator creates a provider network owned by the root")
    pub = r.json
    names = [n["name"] for n in rq("GET", "/v1/networks", token=a1).json["items"]]
    res.check("public" in names, "tenants see the provider networks open to them")
    res.check(rq("DELETE", f"/v1/networks/{pub['id']}", token=a1).status == 403,
              "a tenant cannot delete a provider network (403)")
    res.check(rq("POST", f"/v1/networks/{pub['id']}/rules", {"proto": "any"},
                 token=a1).status == 403, "nor change its rules (403)")

    # ---- VMs with NICs -----------------------------------------------------------------
    def vm_body(tenant, name, nics):
        return {"tenant_id": tenant, "name": name, "flavor": "tiny", "image_id": img,
                "nics": nics}

    r = rq("POST", "/v1/vms", vm_body(C1, "www", [{"network": "lan"},
                                                  {"network": pub["id"]}]))
    res.check(r.status == 202, f"VM with a private and a public NIC admitted ({r.status})")
    www = r.json["vm"]
    nics = www["nics"]
    res.check(len(nics) == 2 and nics[0]["ip"] == "10.0.0.10" and nics[0]["public"] is False
              and nics[0]["network_name"] == "lan" and nics[0]["mtu"] == 1450
              and nics[1]["ip"] == "203.0.113.10" and nics[1]["public"] is True
              and nics[1]["gateway"] == "203.0.113.1"
              and nics[0]["mac"].startswith("52:54:00:") and nics[0]["mac"] != nics[1]["mac"],
              "VM JSON shows its NICs: first free addresses (reserved skipped), MACs, public")
    wait_op(r.json["operation"]["id"], "www")
    q = rq("GET", f"/v1/tenants/{C1}/quota").json["levels"]
    res.check(q[-1]["allocated"]["public_ips"] == 1 and q[0]["allocated"]["public_ips"] == 1
              and q[-1]["allocated"]["networks"] == 1 and q[1]["allocated"]["networks"] == 2,
              "quota shows networks and public addresses at every level")
    r = rq("POST", "/v1/vms", vm_body(C1, "pinned", [{"network": "lan", "ip": "10.0.0.200"}]))
    res.check(r.status == 202 and r.json["vm"]["nics"][0]["ip"] == "10.0.0.200",
              "a requested free address is handed out")
    wait_op(r.json["operation"]["id"], "pinned")
    pinned = r.json["vm"]["id"]
    vms_before = len(rq("GET", "/v1/vms?limit=1000").json["items"])
    for nics_req, status, what in (
            ([{"network": "lan", "ip": "10.0.0.200"}], 409, "an address in use"),
            ([{"network": "lan", "ip": "10.0.0.5"}], 400, "a reserved address"),
            ([{"network": "lan", "ip": "10.0.0.255"}], 400, "the broadcast address"),
            ([{"network": "lan", "ip": "10.0.1.5"}], 400, "an address outside the network"),
            ([{"network": lan2["id"]}], 400, "another tenant's network (by id)"),
            ([{"network": "nosuch"}], 400, "an unknown network name"),
            ([{"network": "lan", "mac": "52:54:00:00:00:01"}], 400, "a MAC of its own"),
            ([{"network": "lan"}] * 9, 400, "nine NICs")):
        r = rq("POST", "/v1/vms", vm_body(C1, "refused", nics_req))
        res.check(r.status == status and r.json.get("detail"),
                  f"VM NIC with {what}: {status} ({r.json.get('detail', '')[:60]})")
    res.check(len(rq("GET", "/v1/vms?limit=1000").json["items"]) == vms_before,
              "no refused VM was created")

    # ---- quotas ------------------------------------------------------------------------
    must(rq("PUT", f"/v1/tenants/{C1}/quota", {"networks": 1, "public_ips": 1}), 200, "quota")
    r = rq("POST", "/v1/networks", {"name": "second", "cidr": "10.5.0.0/24"}, token=a1)
    res.check(r.status == 409 and r.json["detail"] ==
              "Commune A: networks 1 of 1 used, this network needs 1",
              f"network quota refusal names the level ({r.json.get('detail')})")
    r = rq("POST", "/v1/vms", vm_body(C1, "www2", [{"network": "public"}]))
    res.check(r.status == 409 and r.json["detail"] ==
              "Commune A: public addresses 1 of 1 used, this VM needs 1",
              f"public address quota refusal names the level ({r.json.get('detail')})")
    must(rq("PUT", f"/v1/tenants/{C1}/quota", {"networks": "unlimited", "public_ips": "unlimited"}),
         200, "quota")
    must(rq("PUT", f"/v1/tenants/{E}/quota", {"public_ips": 1}), 200, "quota")
    r = rq("POST", "/v1/vms", vm_body(C2, "bwww", [{"network": "public"}]))
    res.check(r.status == 409 and r.json["detail"].startswith("CC du Pays X: public addresses"),
              "the EPCI's public address quota binds its communes")
    must(rq("PUT", f"/v1/tenants/{E}/quota", unlimited), 200, "quota")

    # ---- 64 concurrent creates on one network ------------------------------------------
    def burst(bodies):
        results = [None] * len(bodies)
        gate = threading.Barrier(len(bodies))

        def worker(i):
            c = ctl.conn()
            c.connect()
            gate.wait()
            try:
                results[i] = ctl.request("POST", "/v1/vms", bodies[i], conn=c)
            finally:
                c.close()

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(len(bodies))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return results

    rs = burst([vm_body(C1, f"b{i}", [{"network": "lan"}]) for i in range(THREADS)])
    bad = [r for r in rs if r.status != 202]
    res.check(not bad, f"{THREADS} concurrent creates admitted ({bad[:1]})")
    ips = [r.json["vm"]["nics"][0]["ip"] for r in rs]
    macs = [r.json["vm"]["nics"][0]["mac"] for r in rs]
    res.check(len(set(ips)) == THREADS and len(set(macs)) == THREADS,
              f"{THREADS} concurrent creates: {len(set(ips))} distinct addresses and MACs")
    expect = {f"10.0.0.{i}" for i in range(11, 11 + THREADS)}
    res.check(set(ips) == expect, "they are the first free addresses, none reserved or taken")
    addrs = rq("GET", f"/v1/networks/{lan['id']}/addresses?limit=1000", token=r1).json["items"]
    res.check(len(addrs) == THREADS + 2 and len({a["ip"] for a in addrs}) == THREADS + 2
              and [a["ip"] for a in addrs] == sorted((a["ip"] for a in addrs),
                                                      key=ipaddress.IPv4Address),
              "addresses list: every NIC once, in address order, with its VM")
    page = rq("GET", f"/v1/networks/{lan['id']}/addresses?limit=10&after=10.0.0.20").json
    res.check([a["ip"] for a in page["items"]][:1] == ["10.0.0.21"]
              and page["next_after"] == "10.0.0.30", "addresses page after an address")
    for r in rs:
        wait_op(r.json["operation"]["id"], "burst create")

    # Delete every other one, recreate as many concurrently: the freed addresses come back.
    freed = set()
    ops = []
    for r in rs[::2]:
        d = rq("DELETE", f"/v1/vms/{r.json['vm']['id']}")
        if d.status != 202:
            raise Failure(f"delete: {d!r}")
        freed.add(r.json["vm"]["nics"][0]["ip"])
        ops.append(d.json["operation"]["id"])
    for o in ops:
        wait_op(o, "delete")
    free_now = rq("GET", f"/v1/networks/{lan['id']}").json["free_addresses"]
    res.check(free_now == 245 - (THREADS + 2) + len(freed), "deletes free the addresses")
    rs2 = burst([vm_body(C1, f"c{i}", [{"network": "lan"}]) for i in range(len(freed))])
    ips2 = {r.json["vm"]["nics"][0]["ip"] for r in rs2 if r.status == 202}
    res.check(ips2 == freed, f"recreated VMs get exactly the freed addresses ({len(ips2)})")
    addrs = rq("GET", f"/v1/networks/{lan['id']}/addresses?limit=1000").json["items"]
    res.check(len({a["ip"] for a in addrs}) == len(addrs), "still no address twice")
    for r in rs2:
        wait_op(r.json["operation"]["id"], "recreate")

    # ---- network deletion --------------------------------------------------------------
    r = rq("DELETE", f"/v1/networks/{lan['id']}", token=a1)
    res.check(r.status == 409 and "NIC" in r.json["detail"],
              "a network with NICs cannot be deleted (409)")
    res.check(rq("DELETE", f"/v1/networks/{lan2['id']}", token=a2).status == 204,
              "an unused network is deleted (204)")
    res.check(rq("GET", f"/v1/networks/{lan2['id']}", token=a2).status == 404,
              "and is gone")
    q = rq("GET", f"/v1/tenants/{C2}/quota").json["levels"]
    res.check(q[-1]["allocated"]["networks"] == 0, "its quota is given back")

    # ---- CLI ---------------------------------------------------------------------------
    code, out, err = cli(ctl, "network", "create", "--name", "office", "--cidr", "10.7.0.0/28",
                         "--reserved", "10.7.0.1-10.7.0.3", "--json", token=a1)
    res.check(code == 0 and json.loads(out)["cidr"] == "10.7.0.0/28",
              f"CLI network create ({code} {err.strip()[:80]})")
    office = json.loads(out)["id"]
    code, out, err = cli(ctl, "network", "list", token=a1)
    res.check(code == 0 and "office" in out and "public" in out, "CLI network list")
    code, out, err = cli(ctl, "network", "rule", "add", str(office), "--proto", "tcp",
                         "--ports", "22", "--source", "192.0.2.0/24", token=a1)
    res.check(code == 0 and "192.0.2.0/24" in out, f"CLI network rule add ({err.strip()[:80]})")
    code, out, err = cli(ctl, "network", "rule", "list", str(office), "--json", token=a1)
    rid = json.loads(out)["items"][0]["id"] if code == 0 else 0
    res.check(code == 0 and rid > 0, "CLI network rule list")
    code, out, err = cli(ctl, "network", "rule", "add", str(office), "--proto", "tcp",
                         "--ports", "0", token=a1)
    res.check(code == 1 and "ports" in err, "CLI rule with a bad port: refused, exit 1")
    code, out, err = cli(ctl, "network", "rule", "flip", str(office), token=a1)
    res.check(code == 2, "CLI unknown rule action: usage error, exit 2")
    code, out, err = cli(ctl, "vm", "create", "--tenant", str(C1), "--name", "cli-vm",
                         "--flavor", "tiny", "--image", str(img), "--nic", "office",
                         "--nic", f"lan=10.0.0.250", "--json")
    j = json.loads(out) if code == 0 else {}
    res.check(code == 0 and [n["ip"] for n in j["vm"]["nics"]] == ["10.7.0.4", "10.0.0.250"],
              f"CLI vm create --nic NET and NET=IP ({err.strip()[:80]})")
    code, out, err = cli(ctl, "vm", "create", "--tenant", str(C1), "--name", "cli-bad",
                         "--flavor", "tiny", "--image", str(img), "--nic", "Bad Net")
    res.check(code == 2, "CLI vm create --nic with a bad network name: exit 2")
    code, out, err = cli(ctl, "network", "addresses", str(office), token=a1)
    res.check(code == 0 and "10.7.0.4" in out and "cli-vm" in out, "CLI network addresses")
    code, out, err = cli(ctl, "network", "rule", "delete", str(office), "--id", str(rid),
                         token=a1)
    res.check(code == 0, "CLI network rule delete")
    code, out, err = cli(ctl, "network", "show", str(office), token=a2)
    res.check(code == 1 and ("404" in err or "no network" in err),
              "CLI network show of another tenant's network: not found")
    code, out, err = cli(ctl, "network", "delete", str(office), token=a1)
    res.check(code == 1 and "NIC" in err, "CLI network delete of a used network: refused")
    code, out, err = cli(ctl, "quota", "set", str(C2), "--networks", "3", "--public-ips",
                         "unlimited", "--json")
    lv = json.loads(out)["levels"][-1] if code == 0 else {}
    res.check(code == 0 and lv["limits"]["networks"] == 3
              and lv["limits"]["public_ips"] == "unlimited" and lv["limits"]["vms"] == "unlimited",
              "CLI quota set --networks --public-ips (other limits kept)")
    code, out, err = cli(ctl, "quota", "show", str(C2))
    res.check(code == 0 and "NETWORKS" in out and "0/3" in out, "CLI quota show: networks column")
    _ = pinned


if __name__ == "__main__":
    sys.exit(run(main))
