#!/usr/bin/env python3
"""Capacity benchmarks (issue 7) at data-centre scale: 2,000 nodes and 100,000 VMs (50 per
node, 10 flavors, 60 days of creation history for the forecast), written straight into the
store of a release mutualisd (provisioning them through libvirt would take hours), then over
keep-alive HTTPS:

  GET /v1/capacity  (per node, cluster, headroom for 10 flavors, N+1 served from the
                     background check, forecast, tenants)        target <= 50 ms
  GET /metrics                                                    target <= 100 ms
  the background N+1 pass (its own duration_seconds)             target <= 5 s
  headroom for 10 flavors alone: tests/bench/bench_sched.c        target <= 20 ms

Nodes carry a libvirt URI that fails at once (the reconciler and the probe leave them
alone) and count as agent-managed with a report interval of an hour, so their health stays
"unknown"; the placement policy places on unknown health, so N+1 and headroom do the full
work. Prints p50/p95/max of 30 requests each (after one cold request, reported apart) and
the controller's CPU time per request (robust to other load on the machine).

Usage: tests/bench/bench_capacity.py BUILD_DIR   (scripts/bench.sh runs it)
Environment: MU_BENCH_NODES (2000), MU_BENCH_VMS (100000), MU_BENCH_PERF=PREFIX (perf record, MU_BENCH_PERF_CG=dwarf for deeper call graphs,
of the controller during each path's requests, into PREFIX.<path>)."""
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/bench")
os.environ["MU_BINARY_DIR"] = BUILD
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import Controller, SRC  # noqa: E402

NODES = int(os.environ.get("MU_BENCH_NODES", "2000"))
VMS = int(os.environ.get("MU_BENCH_VMS", "100000"))
TENANTS = 200
DAY = 86400000
FLAVORS = [(f"f{i}", v, r, d) for i, (v, r, d) in enumerate(
    [(1, 512, 10), (1, 1024, 20), (2, 2048, 20), (2, 4096, 40), (4, 4096, 40),
     (4, 8192, 80), (8, 8192, 80), (8, 16384, 160), (16, 32768, 200), (16, 65536, 400)])]
VM_FLAVORS = FLAVORS[:6]  # what the VMs use (~3.2 GiB on average: ~60 % of a node's memory)


def populate(ctl):
    rq = ctl.request
    root = rq("POST", "/v1/tenants", {"name": "Syndicat du banc", "kind": "syndicat"}).json["id"]
    tenants = [rq("POST", "/v1/tenants", {"name": f"Commune {i}", "kind": "other",
                                          "parent_id": root}).json["id"] for i in range(TENANTS)]
    for name, v, r, d in FLAVORS:
        rq("POST", "/v1/flavors", {"name": name, "vcpus": v, "ram_mib": r, "disk_gib": d})
    flavor_ids = {f["name"]: f["id"] for f in rq("GET", "/v1/flavors").json["items"]}
    ctl.stop()
    con = sqlite3.connect(os.path.join(ctl.data_dir, "mutualis.db"))
    now = int(time.time() * 1000)
    paths = dict(con.execute("SELECT id, path FROM tenants"))
    rnd = random.Random(7)
    node_alloc = {}
    usage = {t: [0, 0, 0, 0] for t in paths}
    with con:
        node_ids = []
        for n in range(NODES):
            cur = con.execute(
                "INSERT INTO nodes (name, uri, health, cpus, mem_mib, disk_gib, created_ms, "
                "updated_ms, last_report_ms, labels_json) VALUES (?, "
                "'test:///nonexistent/bench.xml', 'unknown', 64, 262144, 8192, ?, ?, ?, ?)",
                (f"node-{n}", now, now, now, json.dumps({"site": f"s{n % 4}"})))
            node_ids.append(cur.lastrowid)
            node_alloc[cur.lastrowid] = [0, 0, 0, 0]
        rows, events = [], []
        for i in range(VMS):
            node = node_ids[i % NODES]
            t = tenants[i % TENANTS]
            name, v, r, d = VM_FLAVORS[rnd.randrange(len(VM_FLAVORS))]
            created = now - rnd.randrange(60 * DAY)
            rows.append((str(uuid.uuid4()), t, paths[t], f"vm-{i}", flavor_ids[name], v, r, d,
                         node, created, created, created, created))
            for acc in (node_alloc[node], usage[t], usage[root]):
                acc[0] += v
                acc[1] += r
                acc[2] += d
                acc[3] += 1
        con.executemany(
            "INSERT INTO vms (uuid, tenant_id, tenant_path, name, flavor_id, vcpus, ram_mib, "
            "disk_gib, node_id, desired_state, observed_state, created_ms, updated_ms, "
            "desired_ms, observed_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', 'running', "
            "?, ?, ?, ?)", rows)
        for (vm_id, t, node, created, v, r, d) in con.execute(
                "SELECT id, tenant_id, node_id, created_ms, vcpus, ram_mib, disk_gib FROM vms"):
            events.append((vm_id, t, node, created, v, r, d))
        events.sort(key=lambda e: e[3])
        con.executemany(
            "INSERT INTO vm_events (vm_id, tenant_id, node_id, ts_ms, kind, vcpus, ram_mib, "
            "disk_gib) VALUES (?, ?, ?, ?, 'created', ?, ?, ?)", events)
        con.executemany("UPDATE nodes SET alloc_vcpus = ?, alloc_ram_mib = ?, alloc_disk_gib = ?, "
                        "vm_count = ? WHERE id = ?",
                        [(a[0], a[1], a[2], a[3], n) for n, a in node_alloc.items()])
        con.executemany("INSERT OR REPLACE INTO tenant_usage (tenant_id, vcpus, ram_mib, "
                        "disk_gib, vms) VALUES (?, ?, ?, ?, ?)",
                        [(t, u[0], u[1], u[2], u[3]) for t, u in usage.items() if u[3]])
        for t in [root] + tenants:
            con.execute("INSERT OR REPLACE INTO quotas (tenant_id, vcpus, ram_mib, disk_gib, vms, "
                        "updated_ms) VALUES (?, -1, -1, -1, -1, ?)", (t, now))
    con.close()


def cpu_ms(pid):
    """User + system CPU time of a process so far (ms): what a request costs the controller
    whatever else the machine runs (wall times on a loaded 2-core machine are not)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def timed(ctl, conn, path, n=30):
    t0 = time.perf_counter()
    first = ctl.request("GET", path, conn=conn)
    cold = (time.perf_counter() - t0) * 1000
    if first.status != 200:
        raise SystemExit(f"{path}: {first!r}")
    ts = []
    c0 = cpu_ms(ctl.proc.pid)
    for _ in range(n):
        t0 = time.perf_counter()
        r = ctl.request("GET", path, conn=conn)
        ts.append((time.perf_counter() - t0) * 1000)
        if r.status != 200:
            raise SystemExit(f"{path}: {r!r}")
    cpu = (cpu_ms(ctl.proc.pid) - c0) / n
    ts.sort()
    return cold, ts[len(ts) // 2], ts[int(len(ts) * 0.95) - 1], ts[-1], len(r.body), cpu


def main():
    work = tempfile.mkdtemp(prefix="mu-bench-cap-")
    pol = os.path.join(work, "policies")
    shutil.copytree(os.path.join(SRC, "policies"), pol)
    with open(os.path.join(pol, "placement.json")) as f:
        p = json.load(f)
    p["place_on_unknown_health"] = True
    with open(os.path.join(pol, "placement.json"), "w") as f:
        json.dump(p, f)
    cfg = os.path.join(work, "config.json")
    with open(cfg, "w") as f:
        json.dump({"report_interval_s": 3600, "reconcile_interval_s": 3600,
                   "capacity_interval_s": 1, "log_level": "warn"}, f)
    os.makedirs(os.path.join(work, "var"))
    ctl = Controller(data_dir=os.path.join(work, "var"), policies=pol,
                     extra_args=["--config", cfg])
    try:
        ctl.start()
        t0 = time.time()
        populate(ctl)
        print(f"populated {NODES} nodes, {VMS} VMs, {len(FLAVORS)} flavors, {VMS} events in "
              f"{time.time() - t0:.1f} s", flush=True)
        ctl.start()
        deadline = time.time() + 120
        n1 = None
        while time.time() < deadline:
            n1 = ctl.request("GET", "/v1/capacity").json["n_plus_1"]
            if n1["generation"] >= 1:
                break
            time.sleep(0.5)
        print(f"N+1 background pass: {n1['duration_seconds'] * 1000:.0f} ms (target <= 5000 ms)"
              f" verdict ok={n1['ok']} nodes_checked={n1.get('nodes_checked')}", flush=True)
        conn = ctl.conn()
        for path, target in (("/v1/capacity", 50), ("/metrics", 100)):
            perf = None
            if os.environ.get("MU_BENCH_PERF"):  # a profile of the controller per path
                import subprocess
                out = f"{os.environ['MU_BENCH_PERF']}.{path.strip('/').replace('/', '_')}"
                graph = os.environ.get("MU_BENCH_PERF_CG", "fp")  # "dwarf": deeper stacks
                perf = subprocess.Popen(["perf", "record", "--call-graph", graph, "-o", out,
                                         "-p", str(ctl.proc.pid)], stderr=subprocess.DEVNULL)
                time.sleep(1)
            cold, p50, p95, mx, size, cpu = timed(ctl, conn, path)
            if perf:
                perf.send_signal(2)
                perf.wait()
            print(f"GET {path}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {mx:.1f} ms (target <= "
                  f"{target} ms); controller CPU {cpu:.1f} ms per request; first request "
                  f"{cold:.1f} ms; {size / 1e6:.1f} MB", flush=True)
        cap = ctl.request("GET", "/v1/capacity", conn=conn).json
        fc = cap["forecast"]["resources"]["ram_mib"]
        print(f"forecast ram_mib: {len(fc['points'])} points, slope {fc['slope_per_day']:.0f} "
              f"MiB/day, days_to_full {fc['days_to_full']}, r2 {fc['r2']:.3f}", flush=True)
        conn.close()
    finally:
        ctl.stop()
        ctl.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
