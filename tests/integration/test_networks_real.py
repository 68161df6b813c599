"""Tenant networks for real (issue 5's data plane): nodes with their own network stacks
(network + mount namespaces, a privileged libvirtd each, an underlay bridge, netnodes.py),
one mutualis-agent per node realising its network plan, and the tiny test guest booted by
the controller with its NICs, nwfilters and NoCloud seed.

Checked, each from outside the controller (virsh, ip/bridge/nft in the node, HTTP to the
guests from observer namespaces plugged into the segments' bridges):
  - the guest read its address and MTU from the seed (console markers, /cgi-bin/info);
  - two guests of one tenant on two nodes reach each other, full-MTU pings with DF too;
  - a guest of another tenant with an overlapping CIDR reaches neither and is not reached;
  - a guest that changes its IP or its MAC is cut off (and back once it reverts);
  - opening a rule lets an outside address in, closing it shuts it out (running VMs);
  - VXLAN from an unregistered underlay address is dropped (nft counter);
  - devices deleted by hand come back; peer lists follow a node joining and leaving; the
    last VM of a network leaving a node removes the node's devices.
"""
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Controller, Failure, run  # noqa: E402
from netnodes import HOST_ADDR, NetNodes, wait_for  # noqa: E402
from nodes import build_guest  # noqa: E402

OP_TIMEOUT = int(os.environ.get("MU_NET_OP_TIMEOUT", "240"))


def wait_op(ctl, op_id, timeout=OP_TIMEOUT):
    end = time.time() + timeout
    r = None
    while time.time() < end:
        r = ctl.request("GET", f"/v1/operations/{op_id}")
        if r.json and r.json["state"] in ("succeeded", "failed"):
            return r.json
        time.sleep(0.5)
    raise Failure(f"operation {op_id} did not finish in {timeout} s: {r}")


def console(node, uuid):
    try:
        with open(os.path.join(node.pool, f"mu-{uuid}.console.log"), errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def ping(obs, guest_ip, host, size=56, count=2):
    """The guest at guest_ip pings host (through its /cgi-bin/ping): True, False or None
    (the guest itself could not be asked)."""
    body = obs.http(f"http://{guest_ip}/cgi-bin/ping?host={host}&size={size}&count={count}",
                    timeout=20)
    if body is None:
        return None
    return "result=ok" in body


def main(res):
    kernel, initrd, cmdline = build_guest()
    env = NetNodes(2)
    cfg_dir = tempfile.mkdtemp(prefix="mu-cfg-")
    cfg = os.path.join(cfg_dir, "config.json")
    with open(cfg, "w") as f:
        json.dump({"stop_timeout_s": 10, "reconcile_interval_s": 5,
                   "server_names": [HOST_ADDR]}, f)
    # Agents reach the controller over the underlay: listen everywhere, and the server
    # certificate names the underlay address.
    ctl = Controller(extra_args=["--config", cfg, "--listen", "0.0.0.0:0"])
    try:
        env.up()
        ctl.start()
        scenario(ctl, env, res, kernel, initrd, cmdline)
    finally:
        for n in env.nodes:
            if n.agent_log:
                lines = [l for l in n.agent_log_text().splitlines()
                         if "report sent" not in l and "report spooled" not in l]
                print(f"     {n.name} agent log (without report lines):\n" +
                      "\n".join(lines[-15:]), flush=True)
        ctl.stop()
        ctl.cleanup()
        env.down()
        subprocess.run(["rm", "-rf", cfg_dir])


def register(ctl, res, node, label):
    rq = ctl.request
    r = rq("POST", "/v1/nodes", {"name": node.name, "uri": node.uri, "pool": "mu",
                                 "pool_path": node.pool, "labels": {"site": label}})
    res.check(r.status == 201, f"register {node.name} (privileged libvirtd in its namespaces) "
                               f"({r.status} {r.body[:200]})")
    node.node_id = r.json["id"]
    r = rq("PATCH", f"/v1/nodes/{node.node_id}", {"underlay_ip": node.addr})
    res.check(r.status == 200, f"{node.name} underlay address {node.addr} ({r.status} {r.body[:200]})")
    node.start_agent(ctl)
    ok = wait_for(lambda: rq("GET", f"/v1/nodes/{node.node_id}").json["health"] == "up", 60)
    res.check(ok, f"{node.name}: its agent reports over the underlay (health up)")


def create_vm(ctl, res, tenant, name, image, site, nics):
    r = ctl.request("POST", "/v1/vms", {"tenant_id": tenant, "name": name, "flavor": "tiny",
                                        "image_id": image, "required_labels": [f"site={site}"],
                                        "nics": nics})
    res.check(r.status == 202, f"create {name} with NICs {nics} ({r.status} {r.body[:300]})")
    vm = r.json["vm"]
    op = wait_op(ctl, r.json["operation"]["id"])
    res.check(op["state"] == "succeeded", f"{name} provisioned ({op.get('error')})")
    vm = ctl.request("GET", f"/v1/vms/{vm['id']}").json
    return vm


def delete_vm(ctl, res, vm):
    r = ctl.request("DELETE", f"/v1/vms/{vm['id']}")
    res.check(r.status == 202, f"delete {vm['name']} ({r.status})")
    op = wait_op(ctl, r.json["operation"]["id"])
    res.check(op["state"] == "succeeded", f"{vm['name']} deleted ({op.get('error')})")


def vxlan_packet(vni, inner):
    # flags (I bit), 24 reserved bits, VNI, 8 reserved bits
    return struct.pack("!II", 0x08000000, vni << 8) + inner


def scenario(ctl, env, res, kernel, initrd, cmdline):
    rq = ctl.request
    n1, n2 = env.nodes
    register(ctl, res, n1, "n1")
    register(ctl, res, n2, "n2")

    img = os.path.join(tempfile.mkdtemp(prefix="mu-img-"), "base.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img, "64M"], check=True)
    data = open(img, "rb").read()
    r = rq("POST", "/v1/images", {"name": "guest", "format": "qcow2",
                                  "sha256": hashlib.sha256(data).hexdigest(),
                                  "boot": {"kernel": kernel, "initrd": initrd,
                                           "cmdline": cmdline + " mutualis.http=80"}})
    iid = r.json["id"]
    r = rq("PUT", f"/v1/images/{iid}/data", raw=data,
           headers={"Content-Type": "application/octet-stream"})
    res.check(r.status == 200, "base image uploaded")
    rq("POST", "/v1/flavors", {"name": "tiny", "vcpus": 1, "ram_mib": 128, "disk_gib": 1})
    S = rq("POST", "/v1/tenants", {"name": "Syndicat", "kind": "syndicat"}).json["id"]
    A = rq("POST", "/v1/tenants", {"name": "Commune A", "kind": "commune", "insee": "01001",
                                   "parent_id": S}).json["id"]
    B = rq("POST", "/v1/tenants", {"name": "Commune B", "kind": "commune", "insee": "01002",
                                   "parent_id": S}).json["id"]

    nets = {}
    for t, name in ((A, "lan-a"), (B, "lan-b")):
        r = rq("POST", "/v1/networks", {"tenant_id": t, "name": name, "cidr": "10.20.0.0/24"})
        res.check(r.status == 201, f"network {name} 10.20.0.0/24 ({r.status} {r.body[:300]})")
        nets[name] = r.json
    netA, netB = nets["lan-a"], nets["lan-b"]
    res.check(netA["segment"] != netB["segment"], "overlapping CIDRs get different VNIs")
    mtu = netA["mtu"]
    res.check(mtu == 1450, f"guest MTU = underlay 1500 - 50 ({mtu})")
    vniA, vniB = netA["segment"], netB["segment"]
    brA, brB = f"mubr{vniA}", f"mubr{vniB}"

    t0 = time.time()
    a1 = create_vm(ctl, res, A, "a1", iid, "n1", [{"network": netA["id"]}])
    a2 = create_vm(ctl, res, A, "a2", iid, "n2", [{"network": netA["id"]}])
    b1 = create_vm(ctl, res, B, "b1", iid, "n2", [{"network": netB["id"], "ip": "10.20.0.99"}])
    ipa1, ipa2, ipb1 = (v["nics"][0]["ip"] for v in (a1, a2, b1))
    print(f"     three VMs created in {time.time() - t0:.1f} s: a1={ipa1} a2={ipa2} b1={ipb1}")

    # --- the seed -----------------------------------------------------------------------
    for vm, node in ((a1, n1), (a2, n2), (b1, n2)):
        ok = wait_for(lambda: "MUTUALIS-GUEST-READY" in console(node, vm["uuid"]), 120)
        text = console(node, vm["uuid"])
        res.check(ok and f"MUTUALIS-SEED instance-id={vm['uuid']} hostname={vm['name']}" in text,
                  f"{vm['name']} booted and read its seed (instance-id, host name)")
        mac = vm["nics"][0]["mac"]
        ip = vm["nics"][0]["ip"]
        res.check(f"MUTUALIS-NET dev=eth0 mac={mac} addr={ip}/24 mtu={mtu} gw=-" in text,
                  f"{vm['name']}: address {ip}/24 and MTU {mtu} from the seed's network-config")
    xml = n1.virsh("dumpxml", f"mu-{a1['uuid']}")
    res.check(f"filterref filter='mu-net-{netA['id']}'" in xml and "<mtu size='1450'/>" in xml and
              ".seed.iso" in xml, "a1's domain: filtered NIC with the MTU and the seed CD")
    res.check(f"mu-net-{netA['id']}" in n1.virsh("nwfilter-list"), "the network's nwfilter "
              "is defined on the node")

    # --- node devices ------------------------------------------------------------------------
    def devices_ok(node, vni, peers):
        links = node.links()
        vx = links.get(f"vx{vni}")
        br = links.get(f"mubr{vni}")
        if not vx or not br:
            return False
        info = vx["linkinfo"]["info_data"]
        return (info["id"] == vni and info["port"] == 4789 and info["local"] == node.addr and
                not info["learning"] and vx.get("master") == f"mubr{vni}" and
                vx["mtu"] == mtu and br["mtu"] == mtu and node.fdb_peers(f"vx{vni}") == peers)

    res.check(wait_for(lambda: devices_ok(n1, vniA, [n2.addr]), 30),
              f"node-1: vx{vniA} (VNI, dstport 4789, local, nolearning) on {brA}, MTU {mtu}, "
              f"peer node-2")
    res.check(wait_for(lambda: devices_ok(n2, vniA, [n1.addr]) and devices_ok(n2, vniB, []), 30),
              "node-2: both segments; lan-b has no peer (only node-2 hosts it)")
    res.check(f"vx{vniB}" not in n1.links(), "node-1 has no device of lan-b (no VM of it there)")

    # --- reachability -------------------------------------------------------------------------
    obsA = env.observer(n1, brA, "10.20.0.250/24", mtu)
    obsB = env.observer(n2, brB, "10.20.0.251/24", mtu)
    info = obsA.http(f"http://{ipa1}/cgi-bin/info")
    res.check(info is not None and f"mtu={mtu} addr={ipa1}/24" in info,
              f"a1 answers on its address from inside the network ({info!r})")
    res.check(ping(obsA, ipa1, ipa2) is True, "a1 (node-1) pings a2 (node-2) across VXLAN")
    res.check(ping(obsA, ipa1, ipa2, size=mtu - 28) is True,
              f"full-MTU ping with DF ({mtu - 28} bytes of data) from a1 to a2")
    res.check(ping(obsA, ipa1, ipb1, count=1) is False, "a1 cannot reach b1 (other tenant)")
    res.check(obsB.http(f"http://{ipb1}/") is not None, "b1 answers inside its own network")
    res.check(ping(obsB, ipb1, ipa1, count=1) is False and ping(obsB, ipb1, ipa2, count=1) is False,
              "b1 (same CIDR, other tenant) reaches neither a1 nor a2")

    # --- anti-spoofing ----------------------------------------------------------------------
    body = obsA.http(f"http://{ipa2}/cgi-bin/netset?op=addr&ip=10.20.0.77/24&revert=10")
    res.check(body is not None and "result=ok" in body, "a2 is told to take 10.20.0.77")
    time.sleep(2.5)
    res.check(ping(obsA, ipa1, "10.20.0.77", count=2) is False,
              "a2 with a spoofed IP is cut off (clean-traffic)")
    res.check(wait_for(lambda: ping(obsA, ipa1, ipa2, count=1) is True, 30),
              "a2 is reachable again once it took its own address back")
    body = obsA.http(f"http://{ipa2}/cgi-bin/netset?op=mac&mac=52:54:00:66:66:66&revert=10")
    res.check(body is not None and "result=ok" in body, "a2 is told to change its MAC")
    time.sleep(2.5)
    res.check(ping(obsA, ipa1, ipa2, count=2) is False, "a2 with a spoofed MAC is cut off")
    res.check(wait_for(lambda: ping(obsA, ipa1, ipa2, count=1) is True, 30),
              "a2 is reachable again with its own MAC")

    # --- security rules -----------------------------------------------------------------------
    obsOut = env.observer(n1, brA, "192.168.77.2/24", mtu)
    obsOut.sh("ip", "route", "add", "10.20.0.0/24", "dev", "eth0")
    body = obsA.http(f"http://{ipa1}/cgi-bin/netset?op=route&to=192.168.77.0/24")
    res.check(body is not None and "result=ok" in body, "a1 routes 192.168.77.0/24 on eth0")
    res.check(obsOut.http(f"http://{ipa1}/", timeout=4) is None,
              "from outside the network (192.168.77.2): no access by default")
    r = rq("POST", f"/v1/networks/{netA['id']}/rules",
           {"proto": "tcp", "ports": "80", "source": "192.168.77.0/24"})
    res.check(r.status in (200, 201), f"open tcp/80 from 192.168.77.0/24 ({r.status} {r.body[:200]})")
    rule_id = r.json.get("id") if r.json else None
    res.check(wait_for(lambda: obsOut.http(f"http://{ipa1}/", timeout=3) is not None, 60),
              "the rule reaches the running VM: outside now gets in on tcp/80")
    r = rq("DELETE", f"/v1/networks/{netA['id']}/rules/{rule_id}")
    res.check(r.status in (200, 204), f"close the rule ({r.status})")
    closed = wait_for(lambda: obsOut.http(f"http://{ipa1}/", timeout=3) is None, 60)
    if not closed:
        print(subprocess.run(["sqlite3", os.path.join(ctl.data_dir, "mutualis.db"),
                              "SELECT id, kind, vm_id, node_id, state, step, attempts, error, "
                              "params_json FROM operations WHERE kind = 'net.filter'; "
                              "SELECT * FROM sec_rules; SELECT id, rules_gen FROM networks"],
                             capture_output=True, text=True).stdout)
        print("\n".join(l for l in n1.sh("iptables-save").splitlines() if "192.168" in l))
        print(n1.virsh("nwfilter-dumpxml", f"mu-net-{netA['id']}"))
    res.check(closed, "closing the rule shuts outside out again")
    obsOut.remove()

    # --- the underlay accepts VXLAN only from registered nodes ---------------------------------
    before = n1.nft_dropped()
    res.check(before is not None, f"node-1 has the nft table inet mutualis ({before})")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST_ADDR, 0))
    inner = (bytes.fromhex("ffffffffffff") + bytes.fromhex("525400dead01") + b"\x08\x06" +
             bytes(28))  # an ARP-sized broadcast frame
    for _ in range(5):
        s.sendto(vxlan_packet(vniA, inner), (n1.addr, 4789))
    s.close()
    res.check(wait_for(lambda: (n1.nft_dropped() or 0) >= before + 5, 10),
              f"5 VXLAN packets from the unregistered {HOST_ADDR} dropped "
              f"(counter {before} -> {n1.nft_dropped()})")

    # --- self-healing ------------------------------------------------------------------------
    n1.sh("ip", "link", "del", f"vx{vniA}")
    res.check(f"vx{vniA}" not in n1.links(), "vx device deleted by hand on node-1")
    res.check(wait_for(lambda: devices_ok(n1, vniA, [n2.addr]), 30),
              "the agent re-created it, with its peer")
    res.check(wait_for(lambda: ping(obsA, ipa1, ipa2, count=1) is True, 30),
              "a1 reaches a2 again")

    # --- a node joins, then its last VM of the network leaves ---------------------------------
    n3 = env.add_node()
    register(ctl, res, n3, "n3")
    a3 = create_vm(ctl, res, A, "a3", iid, "n3", [{"network": netA["id"]}])
    res.check(wait_for(lambda: devices_ok(n1, vniA, sorted([n2.addr, n3.addr])) and
                       devices_ok(n2, vniA, sorted([n1.addr, n3.addr])) and
                       devices_ok(n3, vniA, sorted([n1.addr, n2.addr])), 40),
              "node-3 joins lan-a: every member's peer list follows")
    ip3 = a3["nics"][0]["ip"]
    res.check(wait_for(lambda: ping(obsA, ipa1, ip3, count=1) is True, 90),
              "a1 (node-1) reaches a3 (node-3)")
    delete_vm(ctl, res, a3)
    res.check(wait_for(lambda: f"vx{vniA}" not in n3.links() and
                       f"mubr{vniA}" not in n3.links(), 30),
              "the last VM of lan-a left node-3: its devices are gone")
    res.check(wait_for(lambda: devices_ok(n1, vniA, [n2.addr]) and
                       devices_ok(n2, vniA, [n1.addr]), 30),
              "node-1 and node-2 dropped node-3 from their peer lists")
    vols = n3.virsh("vol-list", "mu")
    res.check(".seed.iso" not in vols, "the seed volume left with the VM")

    for n in env.nodes:
        rc = n.stop_agent()
        log = n.agent_log_text()
        res.check(rc == 0 and "AddressSanitizer" not in log and "LeakSanitizer" not in log,
                  f"{n.name}'s agent stops cleanly on SIGTERM (exit {rc})")


if __name__ == "__main__":
    sys.exit(run(main))
