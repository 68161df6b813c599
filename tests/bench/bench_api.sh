#!/usr/bin/env bash
# Benchmarks of the controller foundation (issue 2), on a release build:
#  1. authenticated GET /v1/tenants/{id} over keep-alive HTTPS, and nginx serving a static
#     JSON file of the same size over HTTPS in the same run (target >= 0.5x nginx);
#  2. import of national-scale COG files (1,255 EPCI, ~35,000 communes): time (<= 10 s) and
#     controller RSS after it (<= 50 MB);
#  3. a page of 100 tenants out of 35,000 with a name search: p99 (<= 10 ms).
# Usage: tests/bench/bench_api.sh BUILD_DIR   (scripts/bench.sh builds and calls it)
set -euo pipefail
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/mu-bench.XXXXXX)
DURATION=${MU_BENCH_SECONDS:-10}
CONNS=${MU_BENCH_CONNS:-32}
THREADS=${MU_BENCH_WRK_THREADS:-1}
NGINX_PID=""
CTL_PID=""
cleanup() {
    [ -n "$CTL_PID" ] && kill "$CTL_PID" 2>/dev/null && wait "$CTL_PID" 2>/dev/null || true
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BUILD/mutualisd" --data-dir "$WORK/var" --listen 127.0.0.1:0 --port-file "$WORK/port" \
    --policies "$SRC/policies" --log-level warn >"$WORK/ctl.log" 2>&1 &
CTL_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
PORT=$(cat "$WORK/port")
TOKEN=$(cat "$WORK/var/bootstrap-token")
CA="$WORK/var/pki/ca.pem"
URL="https://127.0.0.1:$PORT"
export MUTUALIS_URL=$URL MUTUALIS_TOKEN=$TOKEN MUTUALIS_CA=$CA
CLI="$BUILD/mutualis"

$CLI tenant create --name "Syndicat Mixte Numérique du Bench" --kind syndicat \
    --siren 200046977 >/dev/null
BODY=$(curl -s --cacert "$CA" -H "Authorization: Bearer $TOKEN" "$URL/v1/tenants/1")
SIZE=${#BODY}

echo "== 1. GET /v1/tenants/1 (${SIZE} bytes) vs nginx static file, keep-alive HTTPS," \
    "wrk -t$THREADS -c$CONNS -d${DURATION}s"
R_MU=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -H "Authorization: Bearer $TOKEN" \
    "$URL/v1/tenants/1" | awk '/Requests\/sec/ {print $2}')
mkdir -p "$WORK/nginx/html" "$WORK/nginx/tmp"
printf '%s' "$BODY" >"$WORK/nginx/html/tenant.json"
cat >"$WORK/nginx/nginx.conf" <<EOT
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp; proxy_temp_path $WORK/nginx/tmp;
  fastcgi_temp_path $WORK/nginx/tmp; uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:18443 ssl;
    ssl_certificate $WORK/var/pki/server.pem;
    ssl_certificate_key $WORK/var/pki/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $WORK/nginx/html;
    default_type application/json;
  }
}
EOT
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
sleep 0.5
R_NG=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "https://127.0.0.1:18443/tenant.json" |
    awk '/Requests\/sec/ {print $2}')
kill "$NGINX_PID"; NGINX_PID=""
echo "mutualisd: $R_MU req/s   nginx (1 worker): $R_NG req/s   ratio: $(python3 -c "print(round($R_MU/$R_NG, 2))")"

echo "== 2. import of national-scale COG files"
python3 "$SRC/tests/bench/gen_cog.py" "$WORK/cog" >/dev/null
ls -la "$WORK/cog" | awk 'NR>1 {print "   ", $5, $9}'
START=$(date +%s.%N)
$CLI tenant import --parent 1 --epci "$WORK/cog/epci.json" --communes "$WORK/cog/communes.json" \
    | sed -n '1,3p' # reads it all: no SIGPIPE under pipefail
END=$(date +%s.%N)
RSS=$(awk '/VmRSS/ {print $2}' /proc/$CTL_PID/status)
HWM=$(awk '/VmHWM/ {print $2}' /proc/$CTL_PID/status)
echo "import: $(python3 -c "print(round($END-$START, 2))") s   controller RSS after: $((RSS / 1024)) MB (peak $((HWM / 1024)) MB)"
START=$(date +%s.%N)
$CLI tenant import --parent 1 --epci "$WORK/cog/epci.json" --communes "$WORK/cog/communes.json" \
    | sed -n '1,3p' # reads it all: no SIGPIPE under pipefail
END=$(date +%s.%N)
echo "re-import (all unchanged): $(python3 -c "print(round($END-$START, 2))") s"

count() { python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))'; }
TOTAL=$($CLI tenant list --json --all --limit 1000 | count)
echo "== 3. a page of 100 tenants out of $TOTAL with a name search (q=saint matches" \
    "$($CLI tenant list --json --all --limit 1000 --q saint | count)), single client"
for q in "saint" "sur%20mer" "zzzz"; do
    wrk -t1 -c1 -d5s --latency -H "Authorization: Bearer $TOKEN" \
        "$URL/v1/tenants?limit=100&q=$q" | awk -v q="$q" '
        /Latency Distribution/ {d=1}
        d && /99%/ {p99=$2} d && /50%/ {p50=$2}
        /Requests\/sec/ {rps=$2}
        END {print "   q=" q ": p50 " p50 "  p99 " p99 "  (" rps " req/s)"}'
done
