"""GET /v1/capacity on nodes of libvirt's test driver (figures fixed by the driver, read
back from GET /v1/nodes): allocatable after the placement policy's ratios and reserved
memory, allocated from the VMs' flavors, headroom per flavor by hand, no headroom on a node
in maintenance, the label filter, the tenants' summary, and the background N+1 verdict
flipping once one node's VMs no longer fit on the others (judged from its generation and
computed_at moving, not from sleeps)."""
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Controller, Failure, SRC, cli, run  # noqa: E402

CPU_RATIO, RAM_RATIO, DISK_RATIO, RESERVED = 2.5, 1.5, 1.2, 512


def must(r, status, what):
    if r.status != status:
        raise Failure(f"setup {what}: expected {status}, got {r!r}")
    return r.json


def main(res):
    tmp = tempfile.mkdtemp(prefix="mu-cap-")
    pol = os.path.join(tmp, "policies")
    shutil.copytree(os.path.join(SRC, "policies"), pol)
    with open(os.path.join(pol, "placement.json"), "w") as f:
        json.dump({"version": 1, "overcommit": {"cpu": CPU_RATIO, "ram": RAM_RATIO,
                                                "disk": DISK_RATIO},
                   "reserved_host_memory_mib": RESERVED, "weigher": "spread",
                   "place_on_unknown_health": False}, f)
    cfg = os.path.join(tmp, "mutualisd.json")
    with open(cfg, "w") as f:
        json.dump({"capacity_interval_s": 1}, f)
    ctl = Controller(policies=pol, extra_args=["--config", cfg]).start()
    try:
        scenario(ctl, res)
    finally:
        rc = ctl.stop()
        res.check(rc == 0, f"mutualisd exited cleanly ({rc})")
        ctl.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def allocatable(node):
    c = node["capacity"]
    reserved = c["reserved_memory_mib"] if c["reserved_memory_mib"] is not None else RESERVED
    # integer arithmetic on ratios taken to the thousandth, as sched.h says
    return {"vcpus": c["cpus"] * int(CPU_RATIO * 1000) // 1000,
            "ram_mib": (c["memory_mib"] - reserved) * int(RAM_RATIO * 1000) // 1000,
            "disk_gib": c["disk_gib"] * int(DISK_RATIO * 1000) // 1000}


def wait_n1(ctl, after_gen, what, timeout=30):
    """The N+1 verdict once the background check has run past generation after_gen."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        n1 = must(ctl.request("GET", "/v1/capacity"), 200, "capacity")["n_plus_1"]
        if n1["generation"] > after_gen:
            return n1
        time.sleep(0.2)
    raise Failure(f"the N+1 verdict was not recomputed after {what}")


def scenario(ctl, res):
    rq = ctl.request
    # --- fixtures: three nodes, a tenant tree with unlimited quota, flavors, an image ---
    names = [("cap-a", "paris"), ("cap-b", "paris"), ("cap-c", "lyon")]
    nodes = {}
    for name, site in names:
        n = must(rq("POST", "/v1/nodes", {"name": name, "uri": "test:///default",
                                          "pool": "default-pool"}), 201, "node")
        must(rq("PATCH", f"/v1/nodes/{n['id']}", {"labels": {"site": site}}), 200, "labels")
        nodes[name] = n["id"]
    S = must(rq("POST", "/v1/tenants", {"name": "Syndicat", "kind": "syndicat"}), 201, "s")["id"]
    E = must(rq("POST", "/v1/tenants", {"name": "CC Test", "kind": "epci", "epci_form": "CC",
                                        "parent_id": S}), 201, "e")["id"]
    O = must(rq("POST", "/v1/tenants", {"name": "Autre", "kind": "other", "parent_id": S}),
             201, "o")["id"]
    for t in (S, E, O):
        must(rq("PUT", f"/v1/tenants/{t}/quota", {"vcpus": "unlimited", "ram_mib": "unlimited",
                                                  "disk_gib": "unlimited", "vms": "unlimited"}),
             200, "quota")
    data = b"\0" * 4096
    iid = must(rq("POST", "/v1/images", {"name": "img", "format": "raw",
                                         "sha256": hashlib.sha256(data).hexdigest()}), 201,
               "image")["id"]
    must(rq("PUT", f"/v1/images/{iid}/data", raw=data,
            headers={"Content-Type": "application/octet-stream"}), 200, "upload")

    node_rows = {n["name"]: n for n in must(rq("GET", "/v1/nodes"), 200, "nodes")["items"]}
    alloc = {name: allocatable(node_rows[name]) for name, _ in names}
    A = alloc["cap-a"]
    big_ram = A["ram_mib"] * 2 // 5  # two per node fit, a third does not
    must(rq("POST", "/v1/flavors", {"name": "small", "vcpus": 1, "ram_mib": 256,
                                    "disk_gib": 1}), 201, "flavor")
    must(rq("POST", "/v1/flavors", {"name": "big", "vcpus": 2, "ram_mib": big_ram,
                                    "disk_gib": 2}), 201, "flavor")
    flavors = {"small": (1, 256, 1), "big": (2, big_ram, 2)}

    n1 = wait_n1(ctl, 0, "start")
    res.check(n1["ok"] is True and n1["worst_node"] is None,
              f"N+1 holds on empty nodes ({n1['summary']})")

    vm_count = [0]

    def mk_vm(tenant, flavor):
        vm_count[0] += 1
        return must(rq("POST", "/v1/vms", {"tenant_id": tenant, "name": f"vm-{vm_count[0]}",
                                           "flavor": flavor, "image_id": iid}), 202, "vm")

    for _ in range(3):
        mk_vm(E, "big")
    mk_vm(O, "small")
    gen = n1["generation"]
    n1 = wait_n1(ctl, gen, "four VMs")
    res.check(n1["ok"] is True, f"N+1 holds with one big VM per node ({n1['summary']})")

    # --- figures against hand computation ------------------------------------------------
    def check_doc(doc, label_names, what):
        rows = {n["name"]: n for n in must(rq("GET", "/v1/nodes"), 200, "nodes")["items"]}
        got = {n["name"]: n for n in doc["nodes"]}
        res.check(sorted(got) == sorted(label_names), f"{what}: nodes {sorted(got)}")
        sums = {"vcpus": [0, 0, 0], "ram_mib": [0, 0, 0], "disk_gib": [0, 0, 0]}
        ok_all = True
        for name in label_names:
            n, row = got[name], rows[name]
            c = row["capacity"]
            phys = {"vcpus": c["cpus"], "ram_mib": c["memory_mib"], "disk_gib": c["disk_gib"]}
            allocd = row["allocated"]
            for r in ("vcpus", "ram_mib", "disk_gib"):
                want = (phys[r], alloc[name][r], allocd[r])
                have = (n[r]["physical"], n[r]["allocatable"], n[r]["allocated"])
                if want != have or n[r]["free"] != want[1] - want[2] or n[r]["used"] is not None:
                    ok_all = False
                    print(f"     {name} {r}: want {want}, have {n[r]}")
                for i in range(3):
                    sums[r][i] += want[i]
            # headroom by hand: min over resources of floor(free / need), 0 if not active
            for fl, need in flavors.items():
                if row["state"] != "active":
                    want_h = 0
                else:
                    free = (alloc[name]["vcpus"] - allocd["vcpus"],
                            alloc[name]["ram_mib"] - allocd["ram_mib"],
                            alloc[name]["disk_gib"] - allocd["disk_gib"])
                    want_h = min(max(f, 0) // k for f, k in zip(free, need))
                if n["headroom"][fl] != want_h:
                    ok_all = False
                    print(f"     {name} headroom {fl}: want {want_h}, have {n['headroom'][fl]}")
        res.check(ok_all, f"{what}: physical, allocatable, allocated, free and headroom per "
                          f"node match hand computation")
        cl = doc["cluster"]["all"]
        res.check(all((cl[r]["physical"], cl[r]["allocatable"], cl[r]["allocated"]) ==
                      tuple(sums[r]) for r in sums), f"{what}: cluster sums")
        tot = {h["flavor"]: h["fit"] for h in doc["headroom"]}
        res.check(all(tot[f] == sum(got[nm]["headroom"][f] for nm in label_names)
                      for f in flavors), f"{what}: headroom per flavor is the sum over nodes "
                                         f"({tot})")
        return got

    doc = must(rq("GET", "/v1/capacity"), 200, "capacity")
    all_names = [nm for nm, _ in names]
    check_doc(doc, all_names, "all nodes")
    vms_total = sum(n["allocated"]["vms"]
                    for n in must(rq("GET", "/v1/nodes"), 200, "nodes")["items"])
    res.check(vms_total == 4, f"four VMs allocated ({vms_total})")
    res.check(doc["policy"]["cpu_ratio"] == CPU_RATIO and
              doc["policy"]["reserved_mem_mib"] == RESERVED, "policy echoed")

    # tenants: the members under the root, with their subtree's allocation
    ten = {t["name"]: t for t in doc["tenants"]}
    res.check(sorted(ten) == ["Autre", "CC Test"], f"top-level tenants listed ({sorted(ten)})")
    res.check(ten["CC Test"]["allocated"] == {"vcpus": 6, "ram_mib": 3 * big_ram,
                                              "disk_gib": 6, "vms": 3} and
              ten["Autre"]["allocated"]["ram_mib"] == 256 and
              ten["CC Test"]["limits"]["vcpus"] == "unlimited", "tenants' allocation")

    # --- label filter --------------------------------------------------------------------
    doc = must(rq("GET", "/v1/capacity?label=site=paris"), 200, "capacity paris")
    check_doc(doc, ["cap-a", "cap-b"], "site=paris")
    res.check(doc["label"] == "site=paris", "the filter is echoed")
    doc = must(rq("GET", "/v1/capacity?label=site=nowhere"), 200, "capacity nowhere")
    res.check(doc["nodes"] == [] and doc["cluster"]["all"]["nodes"] == 0 and
              all(h["fit"] == 0 for h in doc["headroom"]), "an unknown label matches no node")
    r = rq("GET", "/v1/capacity?label=site")
    res.check(r.status == 400 and r.json.get("field") == "label", f"a bad label is refused ({r})")

    # --- the CLI's summary: the same figures as the API -------------------------------------
    doc = must(rq("GET", "/v1/capacity?label=site=paris"), 200, "capacity paris")
    code, out, err = cli(ctl, "capacity", "show", "--label", "site=paris")
    ram = doc["cluster"]["schedulable"]["ram_mib"]
    ram_line = [ln.split() for ln in out.splitlines() if ln.startswith("ram_mib ")]
    res.check(code == 0 and len(ram_line) == 1 and
              ram_line[0][1:4] == [str(ram["physical"]), str(ram["allocatable"]),
                                   str(ram["allocated"])],
              f"mutualis capacity show: cluster memory as the API says ({out!r} {err!r})")
    fits = {h["flavor"]: h["fit"] for h in doc["headroom"]}
    res.check(all(any(ln.split()[:1] == [f] and ln.split()[-1] == str(n)
                      for ln in out.splitlines()) for f, n in fits.items())
              and "N+1: " in out and "Forecast" in out,
              "mutualis capacity show: headroom per flavor, N+1 and forecast lines")
    code, out, err = cli(ctl, "capacity", "show", "--json")
    res.check(code == 0 and json.loads(out)["headroom"], "mutualis capacity show --json")
    code, out, err = cli(ctl, "capacity", "show", "--label", "site")
    res.check(code != 0 and "label" in err and len(err.strip().splitlines()) == 1,
              f"a bad label: one-line CLI error, non-zero exit ({err!r})")

    # --- maintenance: no headroom, out of the schedulable sums -----------------------------
    must(rq("POST", f"/v1/nodes/{nodes['cap-c']}/maintenance"), 200, "maintenance")
    doc = must(rq("GET", "/v1/capacity"), 200, "capacity")
    got = check_doc(doc, all_names, "one node in maintenance")
    res.check(got["cap-c"]["state"] == "maintenance" and not got["cap-c"]["schedulable"] and
              all(v == 0 for v in got["cap-c"]["headroom"].values()),
              "a node in maintenance contributes no headroom")
    sch = doc["cluster"]["schedulable"]
    res.check(sch["nodes"] == 2 and sch["ram_mib"]["allocatable"] ==
              alloc["cap-a"]["ram_mib"] + alloc["cap-b"]["ram_mib"],
              "schedulable sums leave the node in maintenance out")
    must(rq("POST", f"/v1/nodes/{nodes['cap-c']}/activate"), 200, "activate")

    # --- N+1 flips: two big VMs per node, a failed node's VMs no longer fit --------------
    gen = wait_n1(ctl, 0, "activation")["generation"]
    for _ in range(3):
        mk_vm(E, "big")
    deadline = time.time() + 30
    while True:
        n1 = wait_n1(ctl, gen, "three more VMs")
        gen = n1["generation"]
        rows = must(rq("GET", "/v1/nodes"), 200, "nodes")["items"]
        if sum(n["allocated"]["vms"] for n in rows) == 7 and n1["ok"] is False:
            break
        if time.time() > deadline:
            raise Failure(f"N+1 did not flip: {n1}")
    res.check(n1["ok"] is False and n1["worst_node"] is not None and
              n1["worst_node"]["short"]["ram_mib"] > 0 and "short by" in n1["summary"],
              f"N+1 fails once a node's VMs no longer fit elsewhere ({n1['summary']})")
    res.check(n1["computed_at"] is not None and n1["nodes_failing"] >= 1,
              f"verdict carries its time ({n1['computed_at']})")
    worst = n1["worst_node"]["name"]
    res.check(worst in all_names, f"worst node named ({worst})")

    # --- who may read --------------------------------------------------------------------
    r = rq("GET", "/v1/capacity", token=None)
    res.check(r.status == 401, f"no token: 401 ({r.status})")


if __name__ == "__main__":
    sys.exit(run(main))
