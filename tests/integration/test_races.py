"""Admission never overshoots, over real HTTPS: 64 concurrent creates aimed at the last
node with room, and 64 concurrent creates against a three-level tree of limits, several
rounds each. The number admitted is exactly what the tightest level or node allows.
Nodes are libvirt's in-process test driver (test:///default), so the race is between
requests, not hypervisors. Also: hostile VM names are refused before libvirt."""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
from harness import Controller, Failure, run  # noqa: E402

THREADS = 64


def must(r, status, what):
    if r.status != status:
        raise Failure(f"setup {what}: expected {status}, got {r!r}")
    return r.json


def burst(ctl, bodies):
    """Sends the bodies concurrently (one connection each, released together)."""
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


def main(res):
    ctl = Controller()
    try:
        ctl.start()
        scenario(ctl, res)
    finally:
        ctl.stop()
        ctl.cleanup()


def scenario(ctl, res):
    rq = ctl.request
    must(rq("POST", "/v1/flavors", {"name": "tiny", "vcpus": 1, "ram_mib": 64, "disk_gib": 1}),
         201, "flavor")
    import hashlib
    data = b"\0" * 4096
    iid = must(rq("POST", "/v1/images", {"name": "img", "format": "raw",
                                         "sha256": hashlib.sha256(data).hexdigest()}), 201,
               "image")["id"]
    must(rq("PUT", f"/v1/images/{iid}/data", raw=data,
            headers={"Content-Type": "application/octet-stream"}), 200, "upload")
    S = must(rq("POST", "/v1/tenants", {"name": "Syndicat", "kind": "syndicat"}), 201, "s")["id"]
    must(rq("PUT", f"/v1/tenants/{S}/quota", {"vcpus": "unlimited", "ram_mib": "unlimited",
                                              "disk_gib": "unlimited", "vms": "unlimited"}),
         200, "quota")

    # --- the last node with room -------------------------------------------------------
    prev = None
    for rnd, room in enumerate((5, 1, 17)):
        T = must(rq("POST", "/v1/tenants", {"name": f"Commune {rnd}", "kind": "other",
                                            "parent_id": S}), 201, "t")["id"]
        must(rq("PUT", f"/v1/tenants/{T}/quota", {"vcpus": "unlimited", "ram_mib": "unlimited",
                                                  "disk_gib": "unlimited", "vms": "unlimited"}),
             200, "quota")
        n = must(rq("POST", "/v1/nodes", {"name": f"node-{rnd}", "uri": "test:///default",
                                          "pool": "default-pool"}), 201, "node")
        mem = n["capacity"]["memory_mib"]
        if prev:
            must(rq("POST", f"/v1/nodes/{prev}/maintenance"), 200, "maintenance")
        # room for exactly `room` VMs of 64 MiB: allocatable = memory - reserved
        import sqlite3
        con = sqlite3.connect(os.path.join(ctl.data_dir, "mutualis.db"))
        con.execute("UPDATE nodes SET reserved_mem_mib = ? WHERE id = ?",
                    (mem - room * 64, n["id"]))
        con.commit()
        con.close()
        prev = n["id"]
        rs = burst(ctl, [{"tenant_id": T, "name": f"r{rnd}-{i}", "flavor": "tiny",
                          "image_id": iid} for i in range(THREADS)])
        ok = sum(1 for r in rs if r.status == 202)
        refused = [r for r in rs if r.status != 202]
        res.check(ok == room, f"round {rnd}: {ok} of {THREADS} admitted on a node with room "
                              f"for {room}")
        res.check(all(r.status == 409 and "no node" in r.json["detail"] for r in refused),
                  f"round {rnd}: every other create refused with a reason "
                  f"({refused[0].json['detail'] if refused else ''})")
        node = rq("GET", f"/v1/nodes/{n['id']}").json
        res.check(node["allocated"]["vms"] == room and node["allocated"]["ram_mib"] == room * 64,
                  f"round {rnd}: the node's counters say {node['allocated']['vms']} VMs")
    must(rq("POST", f"/v1/nodes/{prev}/maintenance"), 200, "maintenance")

    # --- a three-level tree of limits --------------------------------------------------
    # enough nodes that only the quota levels bind (each test-driver node takes ~32 tiny VMs)
    bigs = [must(rq("POST", "/v1/nodes", {"name": f"big-{i}", "uri": "test:///default",
                                          "pool": "default-pool"}), 201, "node")
            for i in range(4)]
    for rnd, (epci_vms, c1_vms, c2_vms, want) in enumerate(((10, 4, 20, 10), (7, 3, 3, 6),
                                                            (50, 9, 12, 21))):
        E = must(rq("POST", "/v1/tenants", {"name": f"CC Round {rnd}", "kind": "epci",
                                            "epci_form": "CC", "parent_id": S}), 201, "e")["id"]
        C1 = must(rq("POST", "/v1/tenants", {"name": f"C1 {rnd}", "kind": "other",
                                             "parent_id": E}), 201, "c1")["id"]
        C2 = must(rq("POST", "/v1/tenants", {"name": f"C2 {rnd}", "kind": "other",
                                             "parent_id": E}), 201, "c2")["id"]
        for t, v in ((E, epci_vms), (C1, c1_vms), (C2, c2_vms)):
            must(rq("PUT", f"/v1/tenants/{t}/quota", {"vcpus": "unlimited", "ram_mib":
                                                      "unlimited", "disk_gib": "unlimited",
                                                      "vms": v}), 200, "quota")
        bodies = [{"tenant_id": C1 if i % 2 else C2, "name": f"q{rnd}-{i}", "flavor": "tiny",
                   "image_id": iid} for i in range(THREADS)]
        rs = burst(ctl, bodies)
        ok = sum(1 for r in rs if r.status == 202)
        res.check(ok == want, f"tree round {rnd}: {ok} admitted, the limits allow exactly {want}")
        q = rq("GET", f"/v1/tenants/{C1}/quota").json["levels"]
        epci_level = [lv for lv in q if lv["tenant_id"] == E][0]
        res.check(epci_level["allocated"]["vms"] == want,
                  f"tree round {rnd}: the EPCI's counter says {epci_level['allocated']['vms']}")
    res.check(all(b["id"] > 0 for b in bigs), "nodes used")

    # --- hostile names never reach libvirt ---------------------------------------------
    T = must(rq("POST", "/v1/tenants", {"name": "Hostile", "kind": "other", "parent_id": S}),
             201, "t")["id"]
    for name in ["<disk>", "a&b", "x'y", 'q"q', "../../etc/passwd", "a/b", "..", "a\u0000b",
                 "A" * 300, "", "-leading", "UPPER", "é"]:
        r = rq("POST", "/v1/vms", {"tenant_id": T, "name": name, "flavor": "tiny",
                                   "image_id": iid})
        res.check(r.status == 400 and (r.json.get("field") == "name" or "NUL" in r.json["detail"]),
                  f"hostile VM name {name[:20]!r} refused ({r.status})")
    r = rq("GET", f"/v1/vms?tenant={T}")
    res.check(r.json["items"] == [], "nothing was created for them")


if __name__ == "__main__":
    sys.exit(run(main))
