#!/usr/bin/env bash
# Agent footprint: runs mutualis-agent at interval 1 s against libvirt's test driver (a node
# file with BENCH_DOMAINS domains, 20 by default, and one pool) and a loopback HTTPS
# receiver that requires its client certificate (tests/integration/agent_receiver.py),
# for BENCH_SECONDS (20). Reports, from /proc/PID/status and /proc/PID/stat:
#   RssAnon (private memory: target <= 4 MB), VmRSS (includes shared libraries such as
#   libvirt's), VmHWM, threads, and CPU time (utime + stime) per report delivered.
# RssAnon is sampled every second: first and last samples show whether it grows.
# If prometheus-node-exporter is installed (Debian package), the same figures for it,
# scraped once a second on loopback for the same time (CPU per scrape).
#
# Use a build without sanitizers (ASan multiplies memory):
#   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release && cmake --build build-rel \
#     --target mutualis-agent && MU_BINARY_DIR=build-rel tests/bench/bench_agent.sh
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MU_BINARY_DIR:-${1:-$SRC/build}}
AGENT=$BIN/mutualis-agent
SECONDS_RUN=${BENCH_SECONDS:-20}
DOMAINS=${BENCH_DOMAINS:-20}
[ -x "$AGENT" ] || { echo "no agent at $AGENT (set MU_BINARY_DIR)" >&2; exit 1; }
if ldd "$AGENT" | grep -q libasan; then
    echo "warning: $AGENT is built with ASan: memory figures are not representative" >&2
fi

TMP=$(mktemp -d /tmp/mu-bench-agent-XXXXXX)
RPID=
APID=
NPID=
cleanup() {
    for p in $APID $NPID $RPID; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# The node: DOMAINS running domains with Mutualis metadata, disks and interfaces.
{
    echo "<node><cpu><mhz>2000</mhz><model>x86_64</model><active>8</active><total>8</total>"
    echo "<nodes>1</nodes><sockets>1</sockets><cores>8</cores><threads>1</threads></cpu>"
    echo "<memory>67108864</memory>"
    NS=https://mutualis.example/xmlns/libvirt/1
    for i in $(seq 1 "$DOMAINS"); do
        printf "<domain type='test'><name>mu-%d</name>" "$i"
        printf "<uuid>00000000-0000-4000-8000-%012d</uuid>" "$i"
        printf "<metadata><mu:vm xmlns:mu='%s' vm-id='%d' tenant-id='1'>" "$NS" "$i"
        printf "<mu:name>vm %d</mu:name></mu:vm></metadata>" "$i"
        printf "<memory unit='MiB'>1024</memory><vcpu>2</vcpu>"
        printf "<os><type arch='x86_64'>hvm</type></os><devices>"
        printf "<disk type='file' device='disk'><source file='/guest/%d.qcow2'/>" "$i"
        printf "<target dev='vda' bus='virtio'/></disk><interface type='network'>"
        printf "<source network='default'/><target dev='mu%d'/></interface>" "$i"
        printf "</devices></domain>\n"
    done
    echo "<pool type='dir'><name>default</name><capacity unit='GiB'>1800</capacity>"
    echo "<allocation unit='GiB'>200</allocation><available unit='GiB'>1600</available>"
    echo "<target><path>$TMP</path></target></pool></node>"
} > "$TMP/node.xml"

mkdir -p "$TMP/receiver"
python3 "$SRC/tests/integration/agent_receiver.py" --dir "$TMP/receiver" \
    --port-file "$TMP/port" > "$TMP/receiver.log" 2>&1 &
RPID=$!
for _ in $(seq 300); do [ -s "$TMP/port" ] && break; sleep 0.1; done
PORT=$(cat "$TMP/port")
PKI=$TMP/receiver/pki
cat > "$TMP/agent.json" <<EOF
{"controller_url": "https://127.0.0.1:$PORT", "node_name": "node-1",
 "cert": "$PKI/client.pem", "key": "$PKI/client.key", "ca": "$PKI/ca.pem",
 "libvirt_uri": "test://$TMP/node.xml", "interval_s": 1, "spool_dir": "$TMP/spool",
 "spool_max_reports": 8640, "log_level": "warn"}
EOF

field() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$2/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

stored() { grep -c '"stored": true' "$TMP/receiver/events.jsonl" 2>/dev/null || true; }

# Samples RssAnon once a second for SECONDS_RUN seconds; prints first, max, last (kB), and
# the CPU ticks and reports delivered at the first sample (start-up excluded).
sample() {
    local pid=$1 first= max=0 last=0 v t0= r0=
    for _ in $(seq "$SECONDS_RUN"); do
        sleep 1
        v=$(field RssAnon "$pid")
        if [ -z "$first" ]; then
            first=$v
            t0=$(cpu_ticks "$pid")
            r0=$(stored)
        fi
        [ "$v" -gt "$max" ] && max=$v
        last=$v
    done
    echo "$first $max $last $t0 $r0"
}

"$AGENT" --config "$TMP/agent.json" 2> "$TMP/agent.log" &
APID=$!
read -r FIRST MAX LAST T0 R0 < <(sample $APID)
TICKS=$(cpu_ticks $APID)
RSS=$(field VmRSS $APID)
HWM=$(field VmHWM $APID)
FILE=$(field RssFile $APID)
THREADS=$(field Threads $APID)
REPORTS=$(stored)
SIZE=$(ls -l "$TMP/spool" | awk '/state.json/ {next} {s += $5} END {print s + 0}')
kill -TERM $APID
wait $APID || true
APID=
BYTES=$("$AGENT" --once --node node-1 --libvirt-uri "test://$TMP/node.xml" | wc -c)

echo "mutualis-agent: ${SECONDS_RUN} s at interval 1 s, test driver with $DOMAINS domains + 1 pool"
echo "  report size           $BYTES bytes"
echo "  reports delivered     $REPORTS"
echo "  RssAnon               ${LAST} kB (first sample ${FIRST} kB, max ${MAX} kB)"
echo "  VmRSS                 ${RSS} kB (RssFile ${FILE} kB: shared libraries), VmHWM ${HWM} kB"
echo "  threads               $THREADS"
awk -v t="$TICKS" -v hz="$TCK" -v n="$REPORTS" -v t0="$T0" -v r0="$R0" 'BEGIN {
    printf "  CPU time              %.0f ms total, %.2f ms per report (start-up included)\n",
           1000 * t / hz, n ? 1000 * t / hz / n : 0
    printf "                        %.2f ms per report after the first second (%d reports)\n",
           (n > r0 ? 1000 * (t - t0) / hz / (n - r0) : 0), n - r0 }'
[ "$SIZE" -eq 0 ] || echo "  (spool left: $SIZE bytes)"

NE=$(command -v prometheus-node-exporter || command -v node_exporter || true)
if [ -z "$NE" ]; then
    echo "node_exporter: not installed (apt-get install prometheus-node-exporter) - skipped"
    exit 0
fi
NPORT=$((PORT + 1))
"$NE" --web.listen-address="127.0.0.1:$NPORT" > "$TMP/ne.log" 2>&1 &
NPID=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$NPORT/metrics" -o /dev/null && break
    sleep 0.1
done
T0=$(cpu_ticks $NPID)
SCRAPES=0
NFIRST=
NMAX=0
for _ in $(seq "$SECONDS_RUN"); do
    curl -sf "http://127.0.0.1:$NPORT/metrics" -o /dev/null && SCRAPES=$((SCRAPES + 1))
    sleep 1
    v=$(field RssAnon $NPID)
    [ -z "$NFIRST" ] && NFIRST=$v
    [ "$v" -gt "$NMAX" ] && NMAX=$v
done
T1=$(cpu_ticks $NPID)
NEV=$("$NE" --version 2>&1 | head -1 | awk '{print $3}')
echo "node_exporter ($NEV): $SCRAPES scrapes, one a second"
echo "  RssAnon               $(field RssAnon $NPID) kB (first sample $NFIRST kB, max $NMAX kB)"
echo "  VmRSS                 $(field VmRSS $NPID) kB, VmHWM $(field VmHWM $NPID) kB"
echo "  threads               $(field Threads $NPID)"
awk -v t="$((T1 - T0))" -v hz="$TCK" -v n="$SCRAPES" 'BEGIN {
    printf "  CPU time              %.0f ms total, %.2f ms per scrape\n", 1000 * t / hz,
           n ? 1000 * t / hz / n : 0 }'
