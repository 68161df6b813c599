#!/usr/bin/env bash
# Installs the Debian 12 packages that building, running and testing Mutualis need.
# Idempotent: installs only what is missing. Must run as root (or via sudo).
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config clang-format
    libvirt-dev libcurl4-gnutls-dev libcjson-dev libsqlite3-dev libssh-dev
    libmicrohttpd-dev libgnutls28-dev libxml2-dev libargon2-dev libcmocka-dev)
RUN_PKGS=(gnutls-bin sqlite3 curl ca-certificates openssh-server openssh-client genisoimage
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils)
TEST_PKGS=(python3 nginx-light wrk procps iproute2 jq prometheus) # prometheus: promtool

want=("${BUILD_PKGS[@]}" "${RUN_PKGS[@]}")
case "${1:-all}" in
    all | test) want+=("${TEST_PKGS[@]}") ;;
    run) ;;
    *) echo "usage: $0 [all|run|test]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
