#!/usr/bin/env bash
# Installs what is missing, builds, and starts mutualisd on its embedded SQLite under ./var,
# then prints the URL and the operator token. `./scripts/run.sh stop` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VAR=${MU_DATA_DIR:-$ROOT/var}
LISTEN=${MU_LISTEN:-127.0.0.1:8443}
PIDFILE=$VAR/mutualisd.pid

stop_agent() {
    local pf=$VAR/agent/agent.pid
    if [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null; then
        kill -TERM "$(cat "$pf")"
        for _ in $(seq 1 50); do
            kill -0 "$(cat "$pf")" 2>/dev/null || break
            sleep 0.1
        done
        echo "mutualis-agent stopped"
    fi
    rm -f "$pf"
}

stop() {
    stop_agent
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        kill -TERM "$(cat "$PIDFILE")"
        for _ in $(seq 1 100); do
            kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
            sleep 0.1
        done
        echo "mutualisd stopped"
    fi
    rm -f "$PIDFILE"
}

# The local node: the machine's own privileged libvirtd (started here if none runs).
# shellcheck source=scripts/node-env.sh
. "$ROOT/scripts/node-env.sh"

if [ "${1:-}" = "stop" ]; then
    stop
    mu_node_system_stop || true
    exit 0
fi

./scripts/install-deps.sh run
cmake -S . -B build/run -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMU_WERROR=OFF >/dev/null
cmake --build build/run -j"$(nproc)" --target mutualisd mutualis mutualis-agent

stop
mkdir -p "$VAR"
"$ROOT/build/run/mutualisd" --data-dir "$VAR" --listen "$LISTEN" --policies "$ROOT/policies" \
    >>"$VAR/mutualisd.log" 2>&1 &
echo $! >"$PIDFILE"
for _ in $(seq 1 100); do
    [ -s "$VAR/bootstrap-token" ] && break
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { tail -5 "$VAR/mutualisd.log"; exit 1; }
    sleep 0.1
done
sleep 0.3
kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { tail -5 "$VAR/mutualisd.log"; exit 1; }

HOSTPORT=${LISTEN/#0.0.0.0/127.0.0.1}
export MUTUALIS_URL=https://$HOSTPORT MUTUALIS_TOKEN=$(cat "$VAR/bootstrap-token") \
    MUTUALIS_CA=$VAR/pki/ca.pem
NODE_NOTE="local node: not started (see $VAR/node-env.log)"
if mu_node_system_start >"$VAR/node-env.log" 2>&1; then
    mkdir -p /var/lib/mutualis/pool
    if ! "$ROOT/build/run/mutualis" node show 1 >/dev/null 2>&1; then
        "$ROOT/build/run/mutualis" node create --name local --uri qemu:///system \
            --pool mutualis --pool-path /var/lib/mutualis/pool --label site=local \
            >>"$VAR/node-env.log" 2>&1 || true
    fi
    # The local agent: its key and certificate are made here, on the node (which is this
    # machine), signed by the controller's CA; remote nodes get theirs through
    # `mutualis node enroll`, where the key never leaves the node.
    A=$VAR/agent
    mkdir -p "$A/spool" && chmod 700 "$A"
    if [ ! -s "$A/agent.pem" ]; then
        certtool --generate-privkey --key-type ecdsa --curve secp256r1 --outfile "$A/agent.key" \
            >/dev/null 2>&1
        printf 'cn = "local"\nexpiration_days = 90\ntls_www_client\nsigning_key\n' >"$A/tmpl"
        certtool --generate-certificate --load-privkey "$A/agent.key" \
            --load-ca-certificate "$VAR/pki/ca.pem" --load-ca-privkey "$VAR/pki/ca.key" \
            --template "$A/tmpl" --outfile "$A/agent.pem" >/dev/null 2>&1
        chmod 600 "$A/agent.key" "$A/agent.pem"
    fi
    cat >"$A/agent.json" <<EOC
{"controller_url": "https://$HOSTPORT", "node_name": "local", "cert": "$A/agent.pem",
 "key": "$A/agent.key", "ca": "$VAR/pki/ca.pem", "libvirt_uri": "qemu:///system",
 "interval_s": 10, "spool_dir": "$A/spool"}
EOC
    stop_agent
    "$ROOT/build/run/mutualis-agent" --config "$A/agent.json" >>"$A/agent.log" 2>&1 &
    echo $! >"$A/agent.pid"
    for _ in $(seq 1 50); do
        [ "$("$ROOT/build/run/mutualis" node show 1 --json 2>/dev/null |
            python3 -c 'import json,sys; print(json.load(sys.stdin).get("last_report_at") or "")' \
            2>/dev/null)" != "" ] && break
        sleep 0.2
    done
    NODE_NOTE="local node: $("$ROOT/build/run/mutualis" node list 2>/dev/null | sed -n '2p')
  local agent:    pid $(cat "$A/agent.pid"), log $A/agent.log"
fi
cat <<EOT
mutualisd is running (pid $(cat "$PIDFILE"), log $VAR/mutualisd.log)

  URL:            https://$HOSTPORT
  operator token: $(cat "$VAR/bootstrap-token")
  CA certificate: $VAR/pki/ca.pem
  $NODE_NOTE

Use the CLI:
  export MUTUALIS_URL=https://$HOSTPORT
  export MUTUALIS_TOKEN=\$(cat $VAR/bootstrap-token)
  export MUTUALIS_CA=$VAR/pki/ca.pem
  $ROOT/build/run/mutualis whoami

Stop it with: ./scripts/run.sh stop
EOT
