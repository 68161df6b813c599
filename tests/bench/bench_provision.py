#!/usr/bin/env python3
"""End-to-end creates per second on libvirt's test driver: N concurrent clients POST
/v1/vms over keep-alive HTTPS (API → placement → admission → operation), and the clock
stops when every operation has run define and start on the node (observed running).
Usage: bench_provision.py BUILD_DIR [VMS] [CLIENTS]"""
import hashlib
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
os.environ.setdefault("MU_SOURCE_DIR", os.path.join(HERE, "..", ".."))


def main():
    os.environ["MU_BINARY_DIR"] = os.path.abspath(sys.argv[1])
    total = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    clients = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    import harness
    harness.BIN = os.environ["MU_BINARY_DIR"]
    ctl = harness.Controller(extra_args=["--log-level", "warn"]).start()
    try:
        rq = ctl.request
        # a test-driver node has 16 CPUs (64 vCPU at 4.0) and 3 GiB: ~45 tiny VMs each
        for i in range(total // 40 + 2):
            rq("POST", "/v1/nodes", {"name": f"n{i}", "uri": "test:///default",
                                     "pool": "default-pool", "reserved_memory_mib": 0})
        rq("POST", "/v1/flavors", {"name": "nano", "vcpus": 1, "ram_mib": 64, "disk_gib": 1})
        data = b"\0" * 4096
        iid = rq("POST", "/v1/images", {"name": "img", "format": "raw",
                                        "sha256": hashlib.sha256(data).hexdigest()}).json["id"]
        rq("PUT", f"/v1/images/{iid}/data", raw=data,
           headers={"Content-Type": "application/octet-stream"})
        T = rq("POST", "/v1/tenants", {"name": "Bench", "kind": "syndicat"}).json["id"]
        per = total // clients
        lat = []
        errors = []
        lock = threading.Lock()

        def worker(k):
            c = ctl.conn()
            mine = []
            for j in range(per):
                t0 = time.perf_counter()
                r = rq("POST", "/v1/vms", {"tenant_id": T, "name": f"b{k}-{j}", "flavor": "nano",
                                           "image_id": iid}, conn=c)
                mine.append(time.perf_counter() - t0)
                if r.status != 202:
                    with lock:
                        errors.append(r)
                        if len(errors) == 1:
                            print(f"first refusal: {r!r}")
            c.close()
            with lock:
                lat.extend(mine)

        t0 = time.perf_counter()
        ts = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        t_api = time.perf_counter() - t0
        while True:
            r = rq("GET", "/v1/vms?state=running&limit=1")
            vms = rq("GET", f"/v1/tenants/{T}/quota").json["levels"][-1]["allocated"]["vms"]
            running = 0
            after = 0
            while True:
                page = rq("GET", f"/v1/vms?state=running&limit=1000&after={after}").json
                running += len(page["items"])
                if page["next_after"] is None:
                    break
                after = page["next_after"]
            if running >= vms or time.perf_counter() - t0 > 600:
                break
            time.sleep(0.2)
        t_all = time.perf_counter() - t0
        lat.sort()
        n = len(lat)
        print(f"{n} creates by {clients} clients: API accepted {n / t_api:.0f}/s "
              f"(p50 {lat[n // 2] * 1000:.1f} ms, p99 {lat[int(n * 0.99)] * 1000:.1f} ms); "
              f"all {running} defined and started on the nodes after {t_all:.2f} s = "
              f"{running / t_all:.0f} VMs/s end to end; {len(errors)} refused")
    finally:
        ctl.stop()
        ctl.cleanup()


if __name__ == "__main__":
    main()
