#!/usr/bin/env bash
# Installs the Debian 12 packages that building, running and testing Mutualis need.
# Idempotent: installs only what is missing. Must run as root (or via sudo).
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config clang-format
    libvirt-dev libcurl4-gnutls-dev libcjson-dev libsqlite3-dev libssh-dev
    libmicrohttpd-dev libgnutls28-dev libxml2-dev libargon2-dev libcmocka-dev
    libisofs-dev)
RUN_PKGS=(gnutls-bin sqlite3 curl ca-certificates openssh-server openssh-client genisoimage
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils
    libvirt-daemon-config-nwfilter ebtables iptables nftables)
TEST_PKGS=(python3 nginx-light wrk procps iproute2 jq prometheus) # prometheus: promtool
# Browser tests (tests/e2e, 'all' only): Debian's chromium driven by playwright-core, whose
# node modules (pinned by tests/e2e/package-lock.json) npm ci installs in tests/e2e.
E2E_PKGS=(chromium nodejs)
e2e_node_modules() {
    [ "${1:-all}" = all ] || return 0
    local dir sudo=""
    dir="$(cd "$(dirname "$0")/.." && pwd)/tests/e2e"
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    if ! command -v npm >/dev/null; then
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends npm >/dev/null
    fi
    # npm writes node_modules/.package-lock.json: newer than the lock file means up to date.
    if [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
        return 0
    fi
    echo "install-deps: npm ci in tests/e2e" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

want=("${BUILD_PKGS[@]}" "${RUN_PKGS[@]}")
case "${1:-all}" in
    all | test) want+=("${TEST_PKGS[@]}") ;;
    run) ;;
    *) echo "usage: $0 [all|run|test]" >&2; exit 2 ;;
esac
if [ "${1:-all}" = all ]; then want+=("${E2E_PKGS[@]}"); fi

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    e2e_node_modules "${1:-all}"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
e2e_node_modules "${1:-all}"
