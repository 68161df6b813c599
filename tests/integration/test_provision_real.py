"""Provisioning for real: two nodes, each a session libvirtd reached over a loopback sshd
(qemu+ssh), running the tiny test guest under software emulation. Through the API:
register nodes (capacity read from libvirt), upload a base image (streamed, checksum
verified), create VMs (202 + operation), graceful stop (no forced destroy), start, reboot
(two boot markers), cold resize, delete, anti-affinity across the two nodes, and quota
refusals naming the level. Each effect is checked independently with virsh on the node."""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Controller, Failure, run  # noqa: E402
from nodes import Nodes, build_guest  # noqa: E402

OP_TIMEOUT = 240


def wait_op(ctl, op_id, timeout=OP_TIMEOUT):
    end = time.time() + timeout
    while time.time() < end:
        r = ctl.request("GET", f"/v1/operations/{op_id}")
        if r.json and r.json["state"] in ("succeeded", "failed"):
            return r.json
        time.sleep(0.5)
    raise Failure(f"operation {op_id} did not finish in {timeout} s: {r.json}")


def console(nodes, i, uuid):
    path = os.path.join(nodes.home(i), "pool", f"mu-{uuid}.console.log")
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_for(pred, timeout=120, step=0.5):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def domstate(nodes, i, uuid):
    out = nodes.virsh(i, "domstate", "--reason", f"mu-{uuid}", check=False).strip()
    return out


def main(res):
    kernel, initrd, cmdline = build_guest()
    nodes = Nodes(2).up()
    cfg_dir = tempfile.mkdtemp(prefix="mu-cfg-")
    cfg = os.path.join(cfg_dir, "config.json")
    with open(cfg, "w") as f:
        json.dump({"stop_timeout_s": 60, "reconcile_interval_s": 5}, f)
    ctl = Controller(extra_args=["--config", cfg])
    try:
        ctl.start()
        scenario(ctl, nodes, res, kernel, initrd, cmdline)
    finally:
        ctl.stop()
        ctl.cleanup()
        nodes.down()


def scenario(ctl, nodes, res, kernel, initrd, cmdline):
    rq = ctl.request
    node_ids = []
    for i, uri in enumerate(nodes.uris):
        r = rq("POST", "/v1/nodes", {"name": f"node-{i + 1}", "uri": uri, "pool": "default",
                                     "labels": {"site": "a" if i == 0 else "b"}})
        res.check(r.status == 201, f"register node-{i + 1} over qemu+ssh ({r.status})")
        node_ids.append(r.json["id"])
        cap = r.json["capacity"]
        res.check(cap["cpus"] >= 1 and cap["memory_mib"] > 1024 and cap["disk_gib"] > 0 and
                  cap["virtualization"] in ("kvm", "qemu") and r.json["health"] == "up",
                  f"node-{i + 1} capacity read from libvirt ({cap}, health {r.json['health']})")

    # base image: a small empty qcow2; the guest boots its kernel directly
    img = os.path.join(tempfile.mkdtemp(prefix="mu-img-"), "base.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img, "64M"], check=True)
    data = open(img, "rb").read()
    sha = hashlib.sha256(data).hexdigest()
    r = rq("POST", "/v1/images", {"name": "guest", "format": "qcow2", "sha256": sha,
                                  "boot": {"kernel": kernel, "initrd": initrd,
                                           "cmdline": cmdline}})
    res.check(r.status == 201 and r.json["status"] == "uploading", "declare the base image")
    iid = r.json["id"]
    r = rq("PUT", f"/v1/images/{iid}/data", raw=b"x" * 1000,
           headers={"Content-Type": "application/octet-stream"})
    res.check(r.status == 400 and "SHA-256" in r.json["detail"], "wrong bytes are refused")
    r = rq("PUT", f"/v1/images/{iid}/data", raw=data,
           headers={"Content-Type": "application/octet-stream"})
    res.check(r.status == 200 and r.json["status"] == "ready", "upload the image once")
    r = rq("POST", "/v1/flavors", {"name": "tiny", "vcpus": 1, "ram_mib": 128, "disk_gib": 1})
    tiny = r.json["id"]
    rq("POST", "/v1/flavors", {"name": "small", "vcpus": 2, "ram_mib": 192, "disk_gib": 2})

    S = rq("POST", "/v1/tenants", {"name": "Syndicat", "kind": "syndicat"}).json["id"]
    C = rq("POST", "/v1/tenants", {"name": "Commune de Test", "kind": "commune",
                                   "insee": "01001", "parent_id": S}).json["id"]
    rq("PUT", f"/v1/tenants/{C}/quota", {"vcpus": 4, "ram_mib": 1024, "disk_gib": 10, "vms": 3})
    G = rq("POST", "/v1/groups", {"name": "web", "tenant_id": C}).json["id"]

    # create two VMs in one anti-affinity group: they land on different nodes
    t0 = time.time()
    vms = []
    for name in ("web-1", "web-2"):
        r = rq("POST", "/v1/vms", {"tenant_id": C, "name": name, "flavor": "tiny",
                                   "image_id": iid, "group_id": G})
        res.check(r.status == 202 and r.headers.get("location", "").startswith("/v1/operations/"),
                  f"create {name} → 202 + operation")
        vms.append(r.json["vm"])
        op = wait_op(ctl, r.json["operation"]["id"])
        res.check(op["state"] == "succeeded", f"{name} provisioned ({op['error']})")
    print(f"     two VMs created and started in {time.time() - t0:.1f} s")
    placed = [rq("GET", f"/v1/vms/{v['id']}").json["node_id"] for v in vms]
    res.check(sorted(placed) == sorted(node_ids), f"anti-affinity: one VM per node ({placed})")
    idx = [node_ids.index(n) for n in placed]
    for v, i in zip(vms, idx):
        res.check(domstate(nodes, i, v["uuid"]).startswith("running"),
                  f"virsh on node-{i + 1}: {v['name']} running")
        res.check(wait_for(lambda: "MUTUALIS-GUEST-READY" in console(nodes, i, v["uuid"]), 120),
                  f"{v['name']} booted (marker on its serial console)")
    xml = nodes.virsh(idx[0], "dumpxml", f"mu-{vms[0]['uuid']}")
    res.check("mutualis.example/xmlns" in xml and f"vm-id=\"{vms[0]['id']}\"" in xml,
              "the domain carries Mutualis metadata")
    vols = nodes.virsh(idx[0], "vol-list", "default")
    res.check(f"mu-{vms[0]['uuid']}.qcow2" in vols, "the VM's overlay volume exists")
    info = subprocess.run(["qemu-img", "info", "-U", os.path.join(nodes.home(idx[0]), "pool",
                                                                 f"mu-{vms[0]['uuid']}.qcow2")],
                          capture_output=True, text=True).stdout
    res.check("backing file:" in info, "the VM disk is an overlay on the base image")

    # a third VM in the group has no node left
    r = rq("POST", "/v1/vms", {"tenant_id": C, "name": "web-3", "flavor": "tiny",
                               "image_id": iid, "group_id": G})
    res.check(r.status == 409 and "no node" in r.json["detail"],
              f"anti-affinity refusal explains itself ({r.json.get('detail')})")
    # quota: 4 vCPU at the commune; a small VM (2 vCPU) + 2 tiny = 4 fits, another refuses
    r = rq("POST", "/v1/vms", {"tenant_id": C, "name": "big", "flavor": "small",
                               "image_id": iid})
    res.check(r.status == 202, "a third VM within quota")
    big = r.json["vm"]
    wait_op(ctl, r.json["operation"]["id"])
    r = rq("POST", "/v1/vms", {"tenant_id": C, "name": "over", "flavor": "tiny",
                               "image_id": iid})
    res.check(r.status == 409 and "Commune de Test" in r.json["detail"],
              f"quota refusal names the level ({r.json.get('detail')})")

    v, i = vms[0], idx[0]
    # graceful stop
    r = rq("POST", f"/v1/vms/{v['id']}/stop")
    op = wait_op(ctl, r.json["operation"]["id"])
    st = domstate(nodes, i, v["uuid"])
    res.check(op["state"] == "succeeded" and st.startswith("shut off") and "shutdown" in st,
              f"graceful stop: virsh says '{st}' (not destroyed)")
    r = rq("GET", f"/v1/vms/{v['id']}")
    res.check(r.json["observed"]["state"] == "shutoff" and r.json["desired"]["state"] == "stopped",
              "desired and observed state shown")
    # cold resize to 2 vCPU / 192 MiB
    r = rq("POST", f"/v1/vms/{v['id']}/resize", {"flavor": "small"})
    res.check(r.status == 409, f"resize refused by quota at the commune ({r.json.get('detail')})")
    rq("PUT", f"/v1/tenants/{C}/quota", {"vcpus": 8, "ram_mib": 2048, "disk_gib": 20, "vms": 4})
    r = rq("POST", f"/v1/vms/{v['id']}/resize", {"flavor": "small"})
    op = wait_op(ctl, r.json["operation"]["id"])
    dominfo = nodes.virsh(i, "dominfo", f"mu-{v['uuid']}")
    res.check(op["state"] == "succeeded" and "CPU(s):         2" in dominfo and
              "196608 KiB" in dominfo, "cold resize: virsh dominfo shows 2 vCPU, 192 MiB")
    # start again, then reboot: two boot markers
    before = console(nodes, i, v["uuid"]).count("MUTUALIS-GUEST-BOOT")
    r = rq("POST", f"/v1/vms/{v['id']}/start")
    op = wait_op(ctl, r.json["operation"]["id"])
    res.check(op["state"] == "succeeded" and domstate(nodes, i, v["uuid"]).startswith("running"),
              "start")
    res.check(wait_for(lambda: console(nodes, i, v["uuid"]).count("MUTUALIS-GUEST-READY") >
                       before, 120), "booted again after start")
    boots = console(nodes, i, v["uuid"]).count("MUTUALIS-GUEST-BOOT")
    r = rq("POST", f"/v1/vms/{v['id']}/reboot")
    op = wait_op(ctl, r.json["operation"]["id"])
    res.check(op["state"] == "succeeded", "reboot accepted by the guest")
    res.check(wait_for(lambda: console(nodes, i, v["uuid"]).count("MUTUALIS-GUEST-BOOT") >= boots + 1,
                       180), "reboot: a second boot marker on the console")
    # delete everything
    for vm in vms + [big]:
        r = rq("DELETE", f"/v1/vms/{vm['id']}")
        op = wait_op(ctl, r.json["operation"]["id"])
        res.check(op["state"] == "succeeded", f"delete {vm['name']}")
    uuids = [vm["uuid"] for vm in vms + [big]]
    for n in range(2):
        doms = nodes.virsh(n, "list", "--all", "--name")
        vols = nodes.virsh(n, "vol-list", "default")
        left = [u for u in uuids if f"mu-{u}" in doms or f"mu-{u}" in vols]
        res.check(not left and "mu-" not in doms,
                  f"node-{n + 1}: no domain, disk or console log left ({left})")
    r = rq("GET", f"/v1/tenants/{C}/quota")
    lvl = r.json["levels"][-1]
    res.check(lvl["allocated"]["vms"] == 0 and lvl["allocated"]["vcpus"] == 0,
              "the quota usage is back to zero")
    r = rq("GET", f"/v1/vms?tenant={C}")
    res.check(r.json["items"] == [], "no VM listed")


if __name__ == "__main__":
    sys.exit(run(main))
