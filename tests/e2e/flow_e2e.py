"""Issue 6's end-to-end flow in a real headless Chromium, on a real libvirtd with the test
guest:

  1. a commune's secretary logs in through the portal and requests the catalogue's
     "website" item (the shipped policies/catalog.json item, unchanged) with valid values;
  2. an operator logs in (another browser context) and approves it in the pending list;
  3. the VM boots on a node (tests/integration/netnodes.py: network + mount namespaces, a
     privileged libvirtd, its agent); the test guest reads its NoCloud seed and starts its
     listener on the item's declared port from the rendered #cloud-config; the controller's
     prober reaches it on its public address and the request goes `ready`;
  4. the commune sees the request `ready` and its VM running (page reloads, judged from the
     status shown, with a generous deadline), and the guest answers from the host on
     198.51.100.x:80 with instance-id = the VM's UUID;
  5. another commune sees none of it: its portal lists neither the request nor the VM, and
     both ids answer 404 through the API (its browser session and a token).

Set-up: one node; inside its namespaces a provider bridge br-public, linked to the host by a
veth whose host end has 198.51.100.1/24 (the provider network's gateway), so the controller
and this test reach the guests' public addresses; the provider network "public"
198.51.100.0/24 registered through the API with a pool; the controller runs a copy of
policies/ whose catalog.json takes the top-level keys of tests/data/e2e/catalog-flow.json
(readiness.probe_networks = the provider CIDR); the test guest uploaded as the item's base
image "debian-12-web"; flavors tiny/small/medium as the item names them. Chromium runs in
a network namespace of its own (BrowserNet) and reaches the controller over a veth.

Screenshots of each step go to <build>/e2e-artifacts/flow/ (their paths are printed). Any
browser console error fails the test. Everything (VM, controller, node, veth) is removed even
after a failure. Root only. Skips (exit 77) only when chromium or tests/e2e/node_modules is
missing and MU_REQUIRE_E2E is not set.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import BIN, SRC, Controller, Failure, run  # noqa: E402
import netnodes  # noqa: E402
from netnodes import NetNodes, wait_for  # noqa: E402
from nodes import build_guest  # noqa: E402
from portal_e2e import CHROMIUM, PW, prerequisites  # noqa: E402

PUB_CIDR = "198.51.100.0/24"
PUB_HOST = "198.51.100.1"
PUB_BRIDGE = "br-public"
ITEM = "website"
IMAGE = "debian-12-web"  # the shipped website item's base image name
READY_DEADLINE_S = int(os.environ.get("MU_FLOW_READY_DEADLINE", "240"))
OP_TIMEOUT_S = 240


# MU_FLOW_UNDERLAY=10.98.0 moves the node's underlay off netnodes' default 10.99.0 so that a
# hand-run of this test does not collide with another netnodes test running at the same
# time (under CTest the RESOURCE_LOCK serialises them and the default is used).
if os.environ.get("MU_FLOW_UNDERLAY"):
    netnodes.UNDERLAY_PREFIX = os.environ["MU_FLOW_UNDERLAY"]
    netnodes.HOST_ADDR = f"{netnodes.UNDERLAY_PREFIX}.1"
HOST_ADDR = netnodes.HOST_ADDR


def must(r, status, what):
    if r.status != status:
        raise Failure(f"setup {what}: expected {status}, got {r!r}")
    return r.json


def sh(*args, check=True):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise Failure(f"{' '.join(args)} failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    return p.stdout


def policies_dir(tmp):
    """A copy of policies/ whose catalog.json takes the top-level keys of the override."""
    pol = os.path.join(tmp, "policies")
    shutil.copytree(os.path.join(SRC, "policies"), pol)
    with open(os.path.join(pol, "catalog.json")) as f:
        cat = json.load(f)
    with open(os.path.join(SRC, "tests", "data", "e2e", "catalog-flow.json")) as f:
        cat.update(json.load(f))
    with open(os.path.join(pol, "catalog.json"), "w") as f:
        json.dump(cat, f, indent=1, ensure_ascii=False)
    return pol, cat


def wait_op(ctl, op_id, timeout=OP_TIMEOUT_S):
    end = time.time() + timeout
    j = None
    while time.time() < end:
        j = ctl.request("GET", f"/v1/operations/{op_id}").json
        if j and j["state"] in ("succeeded", "failed"):
            return j
        time.sleep(0.5)
    raise Failure(f"operation {op_id} did not finish in {timeout} s: {j}")


class PublicLink:
    """br-public inside the node, a veth to the host with the provider gateway address."""

    def __init__(self, node, tag):
        self.node = node
        self.host_end = f"mupub{tag}"
        self.made = False

    def up(self):
        n = self.node
        n.sh("ip", "link", "add", PUB_BRIDGE, "type", "bridge")
        n.sh("ip", "link", "set", PUB_BRIDGE, "up")
        sh("ip", "link", "add", self.host_end, "type", "veth", "peer", "name", "pub0", "netns",
           n.ns)
        self.made = True
        sh("ip", "addr", "add", f"{PUB_HOST}/24", "dev", self.host_end)
        sh("ip", "link", "set", self.host_end, "up")
        n.sh("ip", "link", "set", "pub0", "master", PUB_BRIDGE, "up")

    def down(self):
        if self.made:
            sh("ip", "link", "del", self.host_end, check=False)
            self.made = False


class BrowserNet:
    """A network namespace for Chromium alone, linked to the host by a veth (host 10.97.0.1,
    browser 10.97.0.2). Chromium aborts page loads and fetches with ERR_NETWORK_CHANGED when
    links or addresses change in its namespace; in the host namespace they do (this test's
    own set-up, other tests' namespaces and veths), in this one nothing changes."""

    HOST = "10.97.0.1"

    def __init__(self, tag):
        self.ns = f"mu{tag}b"
        self.host_end = f"mub{tag}"
        self.made = False

    def up(self):
        sh("ip", "netns", "add", self.ns)
        self.made = True
        # No IPv6 in here: a link-local address finishing its duplicate detection after
        # Chromium started is a "network change" that aborts page loads.
        for key in ("all", "default"):
            sh("ip", "netns", "exec", self.ns, "sysctl", "-q", "-w",
               f"net.ipv6.conf.{key}.disable_ipv6=1")
        sh("ip", "link", "add", self.host_end, "type", "veth", "peer", "name", "eth0", "netns",
           self.ns)
        sh("ip", "addr", "add", f"{self.HOST}/30", "dev", self.host_end)
        sh("ip", "link", "set", self.host_end, "up")
        ns = ["ip", "netns", "exec", self.ns]
        sh(*ns, "ip", "link", "set", "lo", "up")
        sh(*ns, "ip", "addr", "add", "10.97.0.2/30", "dev", "eth0")
        sh(*ns, "ip", "link", "set", "eth0", "up")

    def prefix(self):
        return ["ip", "netns", "exec", self.ns]

    def down(self):
        if self.made:
            sh("ip", "link", "del", self.host_end, check=False)
            sh("ip", "netns", "del", self.ns, check=False)
            self.made = False


def setup(ctl, env, res, guest):
    rq = ctl.request
    kernel, initrd, cmdline = guest
    node = env.nodes[0]
    r = rq("POST", "/v1/nodes", {"name": node.name, "uri": node.uri, "pool": "mu",
                                 "pool_path": node.pool})
    res.check(r.status == 201, f"register {node.name} (privileged libvirtd in its namespaces) "
                               f"({r.status} {r.body[:200]})")
    node.node_id = r.json["id"]
    must(rq("PATCH", f"/v1/nodes/{node.node_id}", {"underlay_ip": node.addr}), 200, "underlay")
    node.start_agent(ctl)
    res.check(wait_for(lambda: rq("GET", f"/v1/nodes/{node.node_id}").json["health"] == "up",
                       60), f"{node.name}: its agent reports (health up)")

    # The test guest as the item's base image: no listener on the command line, so only
    # the seed's user-data can start it.
    img = os.path.join(ctl.data_dir, "guest-base.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img, "64M"], check=True)
    with open(img, "rb") as f:
        data = f.read()
    iid = must(rq("POST", "/v1/images", {"name": IMAGE, "format": "qcow2",
                                         "sha256": hashlib.sha256(data).hexdigest(),
                                         "boot": {"kernel": kernel, "initrd": initrd,
                                                  "cmdline": cmdline}}), 201, "image")["id"]
    must(rq("PUT", f"/v1/images/{iid}/data", raw=data,
            headers={"Content-Type": "application/octet-stream"}), 200, "image upload")
    for name, c, m, d in (("tiny", 1, 128, 1), ("small", 1, 192, 2), ("medium", 2, 256, 4)):
        must(rq("POST", "/v1/flavors", {"name": name, "vcpus": c, "ram_mib": m, "disk_gib": d}),
             201, f"flavor {name}")

    S = must(rq("POST", "/v1/tenants", {"name": "Syndicat Numérique Test", "kind": "syndicat"}),
             201, "syndicat")["id"]
    E = must(rq("POST", "/v1/tenants", {"name": "CC du Val Test", "kind": "epci",
                                        "epci_form": "CC", "parent_id": S}), 201, "epci")["id"]
    C1 = must(rq("POST", "/v1/tenants", {"name": "Commune de Testville", "kind": "commune",
                                         "insee": "01001", "parent_id": E}), 201, "c1")["id"]
    C2 = must(rq("POST", "/v1/tenants", {"name": "Commune Voisine", "kind": "commune",
                                         "insee": "01002", "parent_id": E}), 201, "c2")["id"]
    unl = {k: "unlimited" for k in ("vcpus", "ram_mib", "disk_gib", "vms", "networks",
                                    "public_ips")}
    for t in (S, E, C1, C2):
        must(rq("PUT", f"/v1/tenants/{t}/quota", unl), 200, "quota")

    r = rq("POST", "/v1/networks", {"name": "public", "kind": "provider", "cidr": PUB_CIDR,
                                    "gateway": PUB_HOST, "bridge": PUB_BRIDGE,
                                    "pools": [["198.51.100.10", "198.51.100.29"]],
                                    "shared": True})
    res.check(r.status == 201 and r.json["mode"] == "bridge",
              f"the operator registers the provider network public {PUB_CIDR} on {PUB_BRIDGE} "
              f"({r.status} {r.body[:200]})")

    must(rq("POST", "/v1/users", {"name": "exploitant", "role": "operator", "password": PW}),
         201, "operator user")
    must(rq("POST", "/v1/users", {"name": "secretaire", "role": "tenant-admin",
                                  "tenant_id": C1, "password": PW}), 201, "commune user")
    uid = must(rq("POST", "/v1/users", {"name": "voisine", "role": "tenant-admin",
                                        "tenant_id": C2, "password": PW}), 201,
               "other commune user")["id"]
    other_token = must(rq("POST", "/v1/tokens", {"name": "t-voisine", "user_id": uid}), 201,
                       "token")["secret"]
    return {"C1": C1, "C2": C2, "other_token": other_token}


def guest_http(ip, port):
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=5) as r:
            return r.read().decode("utf-8", errors="replace")
    except OSError:
        return None


def browser(ctl, bnet, out, cat):
    item = next(i for i in cat["items"] if i["id"] == ITEM)
    expect = {
        "item": ITEM,
        "item_name": item["name"]["fr"],
        "port": item["ports"][0],
        "flavor": "tiny",
        "values": {"domain": "mairie-testville.fr",
                   "admin_email": "secretariat@mairie-testville.fr",
                   "site_title": "Mairie de Testville", "storage_gib": 2},
        "justification": "Le site de la mairie pour les habitants",
        "ready_deadline_s": READY_DEADLINE_S,
        "users": {"commune": "secretaire", "operator": "exploitant", "other": "voisine"},
        "tenant": "Commune de Testville",
    }
    result = os.path.join(out, "result.json")
    env = dict(os.environ, MU_E2E_URL=f"https://{bnet.HOST}:{ctl.port}", MU_E2E_PASSWORD=PW,
               MU_E2E_OUT=out, MU_E2E_EXPECT=json.dumps(expect), MU_E2E_CHROMIUM=CHROMIUM,
               MU_E2E_RESULT=result)
    try:
        p = subprocess.run(bnet.prefix() + ["node", os.path.join(HERE, "flow.mjs")], env=env,
                           cwd=HERE, capture_output=True, text=True,
                           timeout=READY_DEADLINE_S + 240)
    except subprocess.TimeoutExpired as e:
        sys.stdout.write(e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or ""))
        raise Failure("the browser flow did not finish in time")
    sys.stdout.write(p.stdout)
    if p.stderr.strip():
        sys.stdout.write("     stderr: " + p.stderr[-3000:] + "\n")
    got = {}
    if os.path.exists(result):
        with open(result) as f:
            got = json.load(f)
    return p.returncode, got, expect


def main(res):
    missing = prerequisites()
    if missing:
        if os.environ.get("MU_REQUIRE_E2E"):
            raise Failure(f"browser test prerequisites missing: {', '.join(missing)}")
        print(f"skipped: browser test prerequisites missing: {', '.join(missing)}")
        sys.exit(77)
    out = os.path.join(os.path.abspath(BIN), "e2e-artifacts", "flow")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    guest = build_guest()
    tmp = tempfile.mkdtemp(prefix="mu-flow-")
    pol, cat = policies_dir(tmp)
    cfg = os.path.join(tmp, "config.json")
    with open(cfg, "w") as f:
        json.dump({"stop_timeout_s": 10, "reconcile_interval_s": 5,
                   "server_names": [HOST_ADDR]}, f)
    # The agent reaches the controller over the underlay, the browser over its own veth.
    ctl = Controller(policies=pol, extra_args=["--config", cfg, "--listen", "0.0.0.0:0"])
    env = NetNodes(1)
    link = None
    bnet = BrowserNet(env.tag)
    vm_id = None
    try:
        env.up()
        link = PublicLink(env.nodes[0], env.tag)
        link.up()
        bnet.up()
        ctl.start()
        ids = setup(ctl, env, res, guest)
        rc, got, expect = browser(ctl, bnet, out, cat)
        vm_id = got.get("vm_id")
        print(f"     artefacts in {out}", flush=True)
        res.check(rc == 0, "the browser flow passed (lines above)")
        verify(ctl, env, res, ids, got, expect)
    finally:
        node = env.nodes[0]
        if vm_id:
            try:
                r = ctl.request("DELETE", f"/v1/vms/{vm_id}")
                if r.status == 202:
                    op = wait_op(ctl, r.json["operation"]["id"])
                    print(f"     cleanup: VM {vm_id} deleted ({op['state']})", flush=True)
                else:
                    print(f"     cleanup: delete VM {vm_id}: {r!r}", flush=True)
            except Exception as e:  # keep cleaning up
                print(f"     cleanup: delete VM {vm_id}: {e}", flush=True)
        if node.agent_log:
            lines = [ln for ln in node.agent_log_text().splitlines()
                     if "report sent" not in ln and "report spooled" not in ln]
            print(f"     {node.name} agent log (without report lines):\n" +
                  "\n".join(lines[-10:]), flush=True)
        crc = ctl.stop() if ctl.proc else 0
        if crc != 0:
            print(f"     mutualisd log tail:\n{ctl.read_log()[-3000:]}", flush=True)
        ctl.cleanup()
        if link:
            link.down()
        bnet.down()
        env.down()
        shutil.rmtree(tmp, ignore_errors=True)
    res.check(crc == 0, f"mutualisd exited cleanly ({crc})")


def verify(ctl, env, res, ids, got, expect):
    """What the browser saw, checked again from outside: the guest itself, and the API."""
    rq = ctl.request
    rid, vm_id = got["request_id"], got["vm_id"]
    r = must(rq("GET", f"/v1/requests/{rid}"), 200, "request")
    res.check(r["status"] == "ready" and r["tenant_id"] == ids["C1"] and r["item"] == ITEM,
              f"request {rid}: ready, the commune's, item {ITEM} ({r['status']} {r.get('reason')})")
    vm = must(rq("GET", f"/v1/vms/{vm_id}"), 200, "vm")
    pub = [n for n in vm["nics"] if n.get("public")]
    res.check(len(pub) == 1 and pub[0]["ip"].startswith("198.51.100."),
              f"the VM has one public address on {PUB_CIDR} ({vm['nics']})")
    ip, port = pub[0]["ip"], expect["port"]
    body = guest_http(ip, port)
    res.check(body is not None and f"instance-id={vm['uuid']}" in body,
              f"the guest answers from the host on {ip}:{port} with instance-id = the VM's UUID "
              f"{vm['uuid']} ({(body or '').strip()!r})")
    node = env.nodes[0]
    try:
        with open(os.path.join(node.pool, f"mu-{vm['uuid']}.console.log"), errors="replace") as f:
            console = f.read()
    except OSError:
        console = ""
    res.check(f"MUTUALIS-SEED instance-id={vm['uuid']}" in console and
              f"MUTUALIS-HTTP port={port} ok" in console,
              f"the guest's console: it read its seed and started the listener on {port} from "
              "the rendered #cloud-config")
    xml = node.virsh("dumpxml", f"mu-{vm['uuid']}")
    res.check(f"<source bridge='{PUB_BRIDGE}'/>" in xml and ".seed.iso" in xml,
              f"the domain on {node.name}: a NIC on {PUB_BRIDGE} and the seed CD")
    tok = ids["other_token"]
    res.check(rq("GET", f"/v1/requests/{rid}", token=tok).status == 404,
              "another commune (token): the request answers 404")
    res.check(rq("GET", f"/v1/vms/{vm_id}", token=tok).status == 404,
              "another commune (token): the VM answers 404")
    lst = must(rq("GET", "/v1/requests?limit=1000", token=tok), 200, "other requests")
    vms = must(rq("GET", "/v1/vms?limit=1000", token=tok), 200, "other vms")
    res.check(lst["items"] == [] and vms["items"] == [],
              "another commune (token): its request and VM lists are empty")


if __name__ == "__main__":
    sys.exit(run(main))
