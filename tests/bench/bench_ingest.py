#!/usr/bin/env python3
"""Benchmark of report ingestion (issue 4): many simulated agents (default 500 agents x 20
domains, every domain a VM of its node: 10,000 VMs) over keep-alive mutual TLS, each
sending reports as fast as they are acknowledged, for ~20 s against a release mutualisd;
then nginx serving a static file over HTTPS to the same client (same certificates,
connections and TLS) in the same run, for the ratio. Target: >= 5,000 reports/s on 2 cores.

None lost: the controller is killed with SIGKILL right after the run, and every
acknowledged (epoch, seq) must be in the store (each agent's epoch acked_seq >= the last
sequence it saw acknowledged, its last report row at that sequence).

Usage: tests/bench/bench_ingest.py BUILD_DIR  (a Release build: scripts/bench.sh)
Environment: MU_BENCH_AGENTS, MU_BENCH_DOMAINS, MU_BENCH_SECONDS; MU_BENCH_CONFIG (JSON
merged into the controller's config file, e.g. {"threads": 2}); MU_BENCH_CTL_ENV (JSON,
the controller's environment); MU_BENCH_PERF=FILE (perf record of the controller) or
MU_BENCH_PERF_STAT=EVENTS (perf stat) during the run.
"""
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import harness  # noqa: E402
from harness import Controller  # noqa: E402

AGENTS = int(os.environ.get("MU_BENCH_AGENTS", "500"))
DOMAINS = int(os.environ.get("MU_BENCH_DOMAINS", "20"))
SECONDS = int(os.environ.get("MU_BENCH_SECONDS", "20"))
TENANTS = 100


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def setup(ctl, work):
    """Tenants through the API; nodes and VMs straight into the database (10,000 VMs
    provisioned through libvirt would take longer than the benchmark)."""
    rq = ctl.request
    root = rq("POST", "/v1/tenants", {"name": "Syndicat du banc d'essai", "kind": "syndicat"}).json["id"]
    tenants = [rq("POST", "/v1/tenants", {"name": f"Commune {i}", "kind": "other",
                                          "parent_id": root}).json["id"] for i in range(TENANTS)]
    ctl.stop()
    con = sqlite3.connect(os.path.join(ctl.data_dir, "mutualis.db"))
    now = int(time.time() * 1000)
    paths = dict(con.execute("SELECT id, path FROM tenants"))
    vms = []
    with con:
        for a in range(AGENTS):
            # A libvirt URI that fails at once: the reconciler leaves these nodes alone.
            cur = con.execute(
                "INSERT INTO nodes (name, uri, health, cpus, mem_mib, disk_gib, created_ms, "
                "updated_ms) VALUES (?, 'test:///nonexistent/bench.xml', 'unknown', 64, 262144, "
                "4096, ?, ?)", (f"bench-{a}", now, now))
            node_id = cur.lastrowid
            for d in range(DOMAINS):
                t = tenants[(a * DOMAINS + d) % TENANTS]
                u = str(uuid.uuid4())
                cur = con.execute(
                    "INSERT INTO vms (uuid, tenant_id, tenant_path, name, vcpus, ram_mib, "
                    "disk_gib, node_id, desired_state, observed_state, created_ms, updated_ms, "
                    "desired_ms, observed_ms) VALUES (?, ?, ?, ?, 1, 1024, 10, ?, 'running', "
                    "'running', ?, ?, ?, ?)",
                    (u, t, paths[t], f"vm-{a}-{d}", node_id, now, now, now, now))
                vms.append((a, cur.lastrowid, u))
    con.close()
    path = os.path.join(work, "vms.txt")
    with open(path, "w") as f:
        for a, vm, u in vms:
            f.write(f"{a} {vm} {u}\n")
    return path


def nginx_start(work, ctl, port):
    d = os.path.join(work, "nginx")
    os.makedirs(os.path.join(d, "html"))
    os.makedirs(os.path.join(d, "tmp"))
    with open(os.path.join(d, "html", "ack.json"), "w") as f:
        f.write('{"epoch":"0123456789abcdef0123456789abcdef","acked_seq":123456}')
    pki = os.path.join(ctl.data_dir, "pki")
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""user root;
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp;
  fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {pki}/server.pem;
    ssl_certificate_key {pki}/server.key;
    ssl_client_certificate {pki}/ca.pem;
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    root {d}/html;
    default_type application/json;
  }}
}}
""")
    p = subprocess.Popen(["nginx", "-c", conf, "-p", d])
    time.sleep(0.5)
    return p


def load(build, mode, port, pki, work, extra):
    cmd = [os.path.join(build, "tests", "bench", "mu_ingest_load"), mode, "--port", str(port),
           "--pki", pki, "--agents", str(AGENTS), "--domains", str(DOMAINS),
           "--seconds", str(SECONDS)] + extra
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 600)
    if p.stderr.strip():
        print("   ", p.stderr.strip().replace("\n", "\n    ")[-1500:])
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if not line:
        raise SystemExit(f"load generator failed ({p.returncode}): {p.stdout} {p.stderr}")
    return json.loads(line[-1])


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRC, "build"))
    harness.BIN = build
    work = tempfile.mkdtemp(prefix="mu-bench-ingest-")
    cfg = os.path.join(work, "config.json")
    with open(cfg, "w") as f:
        json.dump(dict({"report_interval_s": 10, "reconcile_interval_s": 3600,
                        "log_level": "warn"},
                       **json.loads(os.environ.get("MU_BENCH_CONFIG", "{}"))), f)
    env = dict({"ASAN_OPTIONS": "detect_leaks=0"},
               **json.loads(os.environ.get("MU_BENCH_CTL_ENV", "{}")))
    ctl = Controller(data_dir=os.path.join(work, "var"), extra_args=["--config", cfg], env=env)
    os.mkdir(ctl.data_dir)
    ng = None
    try:
        ctl.start()
        vms = setup(ctl, work)
        ctl.start()
        pki = os.path.join(ctl.data_dir, "pki")
        print(f"== report ingestion: {AGENTS} agents x {DOMAINS} domains (each a VM of its node),"
              f" one keep-alive mutual-TLS connection per agent, {SECONDS} s")
        acked = os.path.join(work, "acked.txt")
        cpu0 = cpu_s(ctl.proc.pid)
        prof = None
        if os.environ.get("MU_BENCH_PERF_STAT"):
            prof = subprocess.Popen(["perf", "stat", "-e", os.environ["MU_BENCH_PERF_STAT"],
                                     "-p", str(ctl.proc.pid), "--", "sleep", str(SECONDS)])
        elif os.environ.get("MU_BENCH_PERF"):
            prof = subprocess.Popen(["perf", "record", "-g", "-o", os.environ["MU_BENCH_PERF"],
                                     "-p", str(ctl.proc.pid), "--", "sleep", str(SECONDS)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = load(build, "report", ctl.port, pki, work, ["--vms", vms, "--out", acked])
        if prof:
            prof.wait()
        cpu = cpu_s(ctl.proc.pid) - cpu0
        rss = rss_mb(ctl.proc.pid)
        print(f"mutualisd: {r['per_s']:.0f} reports/s acknowledged ({r['ok']} in {r['seconds']} s),"
              f" p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, errors {r['errors']},"
              f" resends {r['retries']}; controller CPU {cpu / r['seconds']:.2f} cores,"
              f" {1e6 * cpu / max(r['ok'], 1):.0f} us/report, RSS {rss:.0f} MB")

        # None lost: kill -9, then every acknowledged sequence must be stored.
        ctl.proc.send_signal(signal.SIGKILL)
        ctl.proc.wait()
        con = sqlite3.connect(os.path.join(ctl.data_dir, "mutualis.db"))
        epochs = {(n, e): a for n, e, a in con.execute(
            "SELECT n.name, e.epoch, e.acked_seq FROM agent_epochs e JOIN nodes n ON n.id = e.node_id")}
        last = dict(con.execute(
            "SELECT n.name, l.seq FROM node_last l JOIN nodes n ON n.id = l.node_id"))
        lost = 0
        total = 0
        with open(acked) as f:
            for line in f:
                name, epoch, seq = line.split()
                seq = int(seq)
                total += seq
                if epochs.get((name, epoch), 0) < seq or last.get(name, 0) < seq:
                    lost += 1
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("vm_last", "node_history", "node_hourly", "tenant_hourly")}
        con.close()
        print(f"after kill -9: {total} acknowledged reports, agents with a lost report: {lost};"
              f" rows: {counts}")

        port = free_port()
        ng = nginx_start(work, ctl, port)
        g = load(build, "get", port, pki, work, ["--path", "/ack.json"])
        print(f"nginx (1 worker, static 58-byte file, same client and mutual TLS):"
              f" {g['per_s']:.0f} req/s, p50 {g['p50_ms']} ms, p99 {g['p99_ms']} ms")
        print(f"ratio mutualisd reports / nginx static: {r['per_s'] / g['per_s']:.2f}")
        ok = lost == 0 and r["errors"] == 0
        print("RESULT", "ok" if ok else "FAILED", "(target >= 5000 reports/s:",
              "met)" if r["per_s"] >= 5000 else "not met)")
        return 0 if ok else 1
    finally:
        if ng:
            ng.terminate()
            ng.wait()
        ctl.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
