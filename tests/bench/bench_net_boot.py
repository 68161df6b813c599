#!/usr/bin/env python3
"""Time from VM create to the guest answering on its address, on real QEMU (TCG): one node in
its own network + mount namespaces with a privileged libvirtd and an agent
(tests/integration/netnodes.py), the tiny test guest on a tenant VXLAN network. For each VM:
POST /v1/vms -> operation succeeded -> first HTTP answer of the guest at its allocated
address, from an observer plugged into the segment's bridge. Prints each phase and the
median / max. Needs root. Usage: bench_net_boot.py BUILD_DIR [VMS]"""
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
os.environ.setdefault("MU_SOURCE_DIR", os.path.join(HERE, "..", ".."))


def main():
    os.environ["MU_BINARY_DIR"] = os.path.abspath(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    import harness
    harness.BIN = os.environ["MU_BINARY_DIR"]
    from netnodes import HOST_ADDR, NetNodes, wait_for
    from nodes import build_guest

    kernel, initrd, cmdline = build_guest()
    env = NetNodes(1)
    cfg_dir = tempfile.mkdtemp(prefix="mu-bench-")
    cfg = os.path.join(cfg_dir, "config.json")
    with open(cfg, "w") as f:
        json.dump({"server_names": [HOST_ADDR]}, f)
    ctl = harness.Controller(extra_args=["--config", cfg, "--listen", "0.0.0.0:0",
                                         "--log-level", "warn"])
    try:
        env.up()
        ctl.start()
        rq = ctl.request
        n = env.nodes[0]
        nid = rq("POST", "/v1/nodes", {"name": n.name, "uri": n.uri, "pool": "mu",
                                       "pool_path": n.pool}).json["id"]
        rq("PATCH", f"/v1/nodes/{nid}", {"underlay_ip": n.addr})
        n.start_agent(ctl)
        wait_for(lambda: rq("GET", f"/v1/nodes/{nid}").json["health"] == "up", 60)
        img = os.path.join(cfg_dir, "base.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img, "64M"], check=True)
        data = open(img, "rb").read()
        iid = rq("POST", "/v1/images", {"name": "guest", "format": "qcow2",
                                        "sha256": hashlib.sha256(data).hexdigest(),
                                        "boot": {"kernel": kernel, "initrd": initrd,
                                                 "cmdline": cmdline + " mutualis.http=80"}}
                 ).json["id"]
        rq("PUT", f"/v1/images/{iid}/data", raw=data,
           headers={"Content-Type": "application/octet-stream"})
        rq("POST", "/v1/flavors", {"name": "tiny", "vcpus": 1, "ram_mib": 128, "disk_gib": 1})
        T = rq("POST", "/v1/tenants", {"name": "Bench", "kind": "syndicat"}).json["id"]
        net = rq("POST", "/v1/networks", {"tenant_id": T, "name": "lan",
                                          "cidr": "10.30.0.0/24"}).json
        obs = None
        rows = []
        for i in range(count):
            t0 = time.time()
            r = rq("POST", "/v1/vms", {"tenant_id": T, "name": f"b{i}", "flavor": "tiny",
                                       "image_id": iid, "nics": [{"network": net["id"]}]})
            vm, op = r.json["vm"], r.json["operation"]["id"]
            while rq("GET", f"/v1/operations/{op}").json["state"] not in ("succeeded", "failed"):
                time.sleep(0.05)
            t_op = time.time()
            opj = rq("GET", f"/v1/operations/{op}").json
            if opj.get("attempts"):
                print(f"vm {i}: operation needed {opj['attempts']} retries, last: {opj.get('error')}")
            ip = rq("GET", f"/v1/vms/{vm['id']}").json["nics"][0]["ip"]
            if obs is None:  # the bridge exists once the agent has realised the plan
                wait_for(lambda: f"mubr{net['segment']}" in n.links(), 30)
                obs = env.observer(n, f"mubr{net['segment']}", "10.30.0.250/24", net["mtu"])
            ok = wait_for(lambda: obs.http(f"http://{ip}/", timeout=1) is not None, 120,
                          step=0.05)
            t_ans = time.time()
            rows.append((t_op - t0, t_ans - t0, ok))
            print(f"vm {i}: operation done {t_op - t0:.2f} s, guest answers at {ip} "
                  f"{t_ans - t0:.2f} s{'' if ok else ' (TIMEOUT)'}", flush=True)
        answers = [r[1] for r in rows if r[2]]
        if answers:
            print(f"create -> guest answering on its address: median "
                  f"{statistics.median(answers):.2f} s, max {max(answers):.2f} s "
                  f"({len(answers)}/{count} VMs, TCG, 1 node)")
    finally:
        ctl.stop()
        ctl.cleanup()
        env.down()
        subprocess.run(["rm", "-rf", cfg_dir])


if __name__ == "__main__":
    main()
