"""Crash safety: mutualisd is killed with SIGKILL at every named step of VM create and
delete (the test-only fault hook MU_FAULT_POINT), then at seeded random moments (the seed
is printed; MU_TEST_SEED replays it). After each restart the reconciler must leave no
orphan domain or disk, lose no VM, and bring every VM to its desired state. The node is a
real session libvirtd reached over a loopback sshd (a test-driver node would forget
everything with the process)."""
import hashlib
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Controller, Failure, run  # noqa: E402
from nodes import Nodes  # noqa: E402

CREATE_POINTS = ["create.before_image", "create.after_image", "create.after_disk",
                 "create.after_define", "create.after_start"]
DELETE_POINTS = ["delete.before_destroy", "delete.after_destroy", "delete.after_undefine",
                 "delete.after_disk", "delete.after_purge"]


def main(res):
    seed = int(os.environ.get("MU_TEST_SEED", str(random.randrange(1 << 30))))
    print(f"seed {seed} (replay with MU_TEST_SEED={seed})", flush=True)
    rng = random.Random(seed)
    nodes = Nodes(1).up()
    data_dir = tempfile.mkdtemp(prefix="mu-crash-")
    state = {"ctl": None}
    try:
        scenario(res, nodes, data_dir, rng, state)
    finally:
        if state["ctl"]:
            state["ctl"].stop()
        Controller(data_dir=data_dir).cleanup()
        subprocess.run(["rm", "-rf", data_dir])
        nodes.down()


def scenario(res, nodes, data_dir, rng, state):
    def start(fault=None):
        env = {"MU_FAULT_POINT": fault} if fault else {}
        ctl = Controller(data_dir=data_dir, env=env)
        ctl.owns_dir = False
        state["ctl"] = ctl.start()
        return ctl

    ctl = start()
    rq = ctl.request
    r = rq("POST", "/v1/nodes", {"name": "node-1", "uri": nodes.uris[0], "pool": "default"})
    res.check(r.status == 201 and r.json["health"] == "up", "register the node")
    img = os.path.join(tempfile.mkdtemp(prefix="mu-img-"), "base.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img, "64M"], check=True)
    data = open(img, "rb").read()
    iid = rq("POST", "/v1/images", {"name": "base", "format": "qcow2",
                                    "sha256": hashlib.sha256(data).hexdigest()}).json["id"]
    rq("PUT", f"/v1/images/{iid}/data", raw=data,
       headers={"Content-Type": "application/octet-stream"})
    rq("POST", "/v1/flavors", {"name": "tiny", "vcpus": 1, "ram_mib": 64, "disk_gib": 1})
    T = rq("POST", "/v1/tenants", {"name": "Syndicat", "kind": "syndicat"}).json["id"]
    counter = [0]

    def create(c):
        counter[0] += 1
        try:
            c.request("POST", "/v1/vms", {"tenant_id": T, "name": f"vm-{counter[0]}",
                                          "flavor": "tiny", "image_id": iid})
        except OSError:
            pass  # killed while answering: the VM was admitted or not; the list tells

    def settle(c, what, timeout=180):
        end = time.time() + timeout
        while time.time() < end:
            vms = c.request("GET", "/v1/vms?limit=1000").json["items"]
            pending = [v for v in vms if not (
                (v["desired"]["state"] == "running" and v["observed"]["state"] == "running") or
                (v["desired"]["state"] == "stopped" and v["observed"]["state"] == "shutoff"))]
            if not pending:
                break
            time.sleep(0.5)
        else:
            raise Failure(f"{what}: VMs did not settle: {pending}")
        doms = set(x for x in nodes.virsh(0, "list", "--all", "--name").split() if x)
        running = set(x for x in nodes.virsh(0, "list", "--name").split() if x)
        nodes.virsh(0, "pool-refresh", "default")
        vols = set(line.split()[0] for line in nodes.virsh(0, "vol-list", "default")
                   .splitlines() if line.strip() and not line.strip().startswith(("Name", "--")))
        want = {f"mu-{v['uuid']}" for v in vms}
        res.check(doms == want and running == want,
                  f"{what}: exactly one running domain per VM, no orphan ({len(want)} VMs)")
        disks = {x for x in vols if x.endswith(".qcow2") and not x.startswith("mu-image-")}
        res.check({f"mu-{v['uuid']}.qcow2" for v in vms} == disks,
                  f"{what}: exactly one disk per VM, no orphan disk ({sorted(disks)})")
        return vms

    def crash_and_restart(point, action):
        nonlocal ctl
        ctl.stop()
        ctl = start(point)
        action(ctl)
        try:
            ctl.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            raise Failure(f"{point}: the fault point was never reached")
        res.check(ctl.proc.returncode == -9, f"{point}: mutualisd killed at the named step")
        ctl.proc = None
        ctl = start()

    for point in CREATE_POINTS:
        before = len(ctl.request("GET", "/v1/vms?limit=1000").json["items"])
        crash_and_restart(point, create)
        vms = settle(ctl, point)
        res.check(len(vms) == before + 1, f"{point}: the admitted VM was not lost")

    for point in DELETE_POINTS:
        vms = ctl.request("GET", "/v1/vms?limit=1000").json["items"]
        victim = vms[0]

        def delete(c, vid=victim["id"]):
            try:
                c.request("DELETE", f"/v1/vms/{vid}")
            except OSError:
                pass

        crash_and_restart(point, delete)
        end = time.time() + 120
        while time.time() < end and ctl.request("GET", f"/v1/vms/{victim['id']}").status != 404:
            time.sleep(0.5)
        res.check(ctl.request("GET", f"/v1/vms/{victim['id']}").status == 404,
                  f"{point}: the delete finished after the restart")
        settle(ctl, point)
        create(ctl)  # keep a VM around for the next delete
        settle(ctl, f"{point} (new VM)")

    for i in range(3):
        delay = rng.uniform(0.0, 2.0)
        deleting = i % 2 == 1
        vms = ctl.request("GET", "/v1/vms?limit=1000").json["items"]
        if deleting and vms:
            ctl.request("DELETE", f"/v1/vms/{vms[-1]['id']}")
        else:
            create(ctl)
        time.sleep(delay)
        ctl.proc.kill()
        ctl.proc.wait()
        ctl.proc = None
        ctl = start()
        settle(ctl, f"random kill {i + 1} after {delay:.2f} s ({'delete' if deleting else 'create'})")


if __name__ == "__main__":
    sys.exit(run(main))
