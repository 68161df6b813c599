#!/usr/bin/env bash
# virt/ against real libvirt daemons running QEMU (software emulation): runs the cmocka
# program tests/unit/virt/test_virt_real.c (skipped when run without a node) against a
# throw-away user's session libvirtd, reached over a loopback sshd, once through qemu+ssh
# and once through qemu+libssh. What it checks: a domain defined from hostile VM and tenant
# names shows, in `virsh dumpxml`, exactly the devices Mutualis meant and the names as text;
# hostile paths and command lines never reach the node; a qcow2 base image is uploaded and
# verified by SHA-256 (re-uploaded when damaged on the node, refused when it names a backing
# file); an overlay's `qemu-img info` names the base; a firmware-only guest starts and is
# stopped by a forced destroy; a killed ssh transport is reopened on the next call.
#
# Usage: tests/integration/test_virt_injection.sh [PATH/TO/unit_virt_test_virt_real]
# (default: $MU_BINARY_DIR/tests/unit_virt_test_virt_real, MU_BINARY_DIR defaulting to
# ./build). Needs root, libvirt-daemon-driver-qemu, qemu-system-x86, qemu-utils,
# openssh-server. Env: MU_VIRT_SSH_PORT (default: the first free port from 22300),
# MU_TEST_VERBOSE=1 prints the domain XML. Always removes the user, sshd and files it made.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../../scripts/node-env.sh
. "$ROOT/scripts/node-env.sh"

BIN=${1:-${MU_BINARY_DIR:-$ROOT/build}/tests/unit_virt_test_virt_real}
NODE=mu-vi-$$
TMP=$(mktemp -d /tmp/mu-virt-injection.XXXXXX)
chmod 755 "$TMP" # the node user's sshd session reads $TMP/sshd/authorized_keys/USER
SSHDIR=$TMP/sshd

say() { echo "test_virt_injection: $*"; }

cleanup() {
    local rc=$?
    set +e
    mu_sshd_stop "$SSHDIR" >/dev/null 2>&1
    mu_node_user_delete "$NODE" >/dev/null 2>&1
    rm -rf "$TMP"
    [ $rc -eq 0 ] && say "PASS" || say "FAIL (exit $rc)"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || { say "must run as root"; exit 1; }
[ -x "$BIN" ] || { say "no test program $BIN (build target unit_virt_test_virt_real)"; exit 1; }
for t in virsh qemu-img qemu-system-x86_64 /usr/sbin/sshd ssh-keygen ss; do
    command -v "$t" >/dev/null || { say "missing $t"; exit 1; }
done

port=${MU_VIRT_SSH_PORT:-}
if [ -z "$port" ]; then
    port=22300
    while ss -Hltn "sport = :$port" | grep -q .; do port=$((port + 1)); done
fi
mu_node_user_create "$NODE"
HOMEDIR=$(getent passwd "$NODE" | cut -d: -f6)
mu_sshd_start "$SSHDIR" "$port" "$NODE"

run() { # TRANSPORT
    local uri out rc=0
    uri=$(mu_sshd_uri "$SSHDIR" "$NODE" "$1")
    say "node $NODE over $1: $uri"
    # Bounded: libvirt 9.0's qemu+libssh client was seen here (once in six runs) waiting
    # forever for a reply on a channel whose remote end had closed. That is libvirt's, not
    # ours: for libssh a hang is reported and skipped; the qemu+ssh run must pass in full.
    out=$(MU_TEST_LIBVIRT_URI="$uri" MU_TEST_LIBVIRT_POOL_PATH="$HOMEDIR/mu-virttest-pool" \
        timeout -k 10 240 "$BIN" 2>&1) || rc=$?
    echo "$out" | sed 's/^/  | /'
    if { [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && [ "$1" = libssh ]; then
        say "libssh: the libvirt client hung (timeout 240 s): known libvirt libssh-transport issue, skipped"
        return 0
    fi
    [ $rc -eq 0 ] || { say "$1: test program failed"; return 1; }
    # A program that skipped everything would exit 0: insist that the node was used.
    if echo "$out" | grep -q "not set: skipped"; then
        say "$1: the test program did not see the node"
        return 1
    fi
    echo "$out" | grep -q "OK \] test_domain_injection_and_lifecycle" ||
        { say "$1: injection test did not run"; return 1; }
}
run ssh
run libssh
