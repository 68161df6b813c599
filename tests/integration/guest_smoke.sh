#!/usr/bin/env bash
# Smoke test of the Mutualis test guest on a real libvirt node reached over SSH:
# a session libvirtd of a throw-away Unix user, through a loopback sshd (qemu+ssh).
#   build (cached in $MU_GUEST_DIR) -> define -> start -> boot marker -> seed markers
#   -> virsh shutdown (ACPI, must reach "shut off" without destroy within 30 s)
#   -> start -> virsh reboot (default mode) -> second boot marker
#   -> virsh reboot --mode acpi -> virsh reset -> undefine.
# Prints the timings. Exit status non-zero on any failure; always cleans up.
# Env: MU_GUEST_DIR (default /var/cache/mutualis-guest), MU_SMOKE_SSH_PORT (default: a free
# port from 22200), MU_SMOKE_KEEP=1 keeps the console log, MU_SMOKE_NO_SEED=1 skips the seed.
# Needs root, libvirt-daemon-driver-qemu, qemu-system-x86, openssh-server; the seed part
# needs genisoimage (or xorriso) and is skipped with a notice when neither is installed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../../scripts/node-env.sh
. "$ROOT/scripts/node-env.sh"

GUEST_DIR=${MU_GUEST_DIR:-/var/cache/mutualis-guest}
NODE=mu-gs-$$
DOM=mu-guest-smoke
TMP=$(mktemp -d /tmp/mu-guest-smoke.XXXXXX)
chmod 755 "$TMP" # the node user's sshd session reads $TMP/sshd/authorized_keys/USER
SSHDIR=$TMP/sshd
MAC=52:54:00:4d:55:01
IID=$(cat /proc/sys/kernel/random/uuid)
FAILED=0
URI=""
HOMEDIR=""

say() { echo "guest_smoke: $*"; }
fail() { say "FAIL: $*"; FAILED=1; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

cleanup() {
    local rc=$?
    set +e
    if [ -n "$URI" ]; then
        virsh -q -c "$URI" destroy "$DOM" >/dev/null 2>&1
        virsh -q -c "$URI" undefine "$DOM" >/dev/null 2>&1
    fi
    if [ "${MU_SMOKE_KEEP:-0}" = 1 ] && [ -n "$HOMEDIR" ] && [ -f "$HOMEDIR/console.log" ]; then
        cp "$HOMEDIR/console.log" "$TMP/../mu-guest-smoke-console.log" &&
            say "console log kept in $TMP/../mu-guest-smoke-console.log"
    fi
    mu_sshd_stop "$SSHDIR" >/dev/null 2>&1
    mu_node_user_delete "$NODE" >/dev/null 2>&1
    rm -rf "$TMP"
    if [ $rc -ne 0 ] || [ $FAILED -ne 0 ]; then
        say "FAILED (exit $rc)"
        [ $rc -ne 0 ] || rc=1
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || fail "must run as root"
for t in virsh qemu-system-x86_64 /usr/sbin/sshd ssh-keygen ss; do
    command -v "$t" >/dev/null || fail "missing $t"
done

# ---- guest --------------------------------------------------------------------------------
t=$(now)
"$ROOT/tests/guest/build-guest.sh" "$GUEST_DIR" >"$TMP/build.out" || fail "build-guest.sh failed"
say "guest ready in $(since "$t") s ($GUEST_DIR)"
KERNEL=$GUEST_DIR/vmlinuz
INITRD=$GUEST_DIR/initrd.gz
CMDLINE=$(cat "$GUEST_DIR/cmdline")

# ---- node: a user's session libvirtd behind a loopback sshd ---------------------------------
port=${MU_SMOKE_SSH_PORT:-}
if [ -z "$port" ]; then
    port=22200
    while ss -Hltn "sport = :$port" | grep -q .; do port=$((port + 1)); done
fi
mu_node_user_create "$NODE" || fail "cannot create node user $NODE"
HOMEDIR=$(getent passwd "$NODE" | cut -d: -f6)
mu_sshd_start "$SSHDIR" "$port" "$NODE" || fail "cannot start sshd"
URI=$(mu_sshd_uri "$SSHDIR" "$NODE" ssh)
say "node $NODE at $URI"
V() { virsh -q -c "$URI" "$@"; }
V list --all >/dev/null || fail "virsh -c $URI list failed"
LIBSSH_URI=$(mu_sshd_uri "$SSHDIR" "$NODE" libssh)
virsh -q -c "$LIBSSH_URI" list --all >/dev/null || fail "virsh -c $LIBSSH_URI list failed"

# ---- seed (NoCloud, cidata) -------------------------------------------------------------------
SEED_XML=""
ISO_TOOL=""
for c in genisoimage xorrisofs mkisofs; do
    command -v "$c" >/dev/null && { ISO_TOOL=$c; break; }
done
if [ "${MU_SMOKE_NO_SEED:-0}" != 1 ] && [ -n "$ISO_TOOL" ]; then
    mkdir -p "$TMP/seed"
    printf 'instance-id: %s\nlocal-hostname: smoke-guest\n' "$IID" >"$TMP/seed/meta-data"
    printf '#cloud-config\nmutualis_http_port: 8080\n' >"$TMP/seed/user-data"
    cat >"$TMP/seed/network-config" <<EOF
version: 2
ethernets:
  nic0:
    match:
      macaddress: "$MAC"
    set-name: eth0
    mtu: 1400
    addresses: [10.0.2.15/24]
    gateway4: 10.0.2.2
EOF
    "$ISO_TOOL" -quiet -output "$HOMEDIR/seed.iso" -volid cidata -joliet -rock \
        "$TMP/seed/user-data" "$TMP/seed/meta-data" "$TMP/seed/network-config" ||
        fail "cannot build seed ISO"
    chown "$NODE:" "$HOMEDIR/seed.iso"
    SEED_XML="<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>
      <source file='$HOMEDIR/seed.iso'/><target dev='hdc' bus='ide'/><readonly/></disk>"
else
    say "NOTICE: seed part skipped (no genisoimage/xorriso, or MU_SMOKE_NO_SEED=1)"
fi

# ---- define -----------------------------------------------------------------------------------
LOG=$HOMEDIR/console.log
cat >"$TMP/dom.xml" <<EOF
<domain type='qemu'>
  <name>$DOM</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$KERNEL</kernel>
    <initrd>$INITRD</initrd>
    <cmdline>$CMDLINE</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <controller type='usb' model='none'/>
    <interface type='user'>
      <mac address='$MAC'/>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>
    $SEED_XML
    <serial type='file'>
      <source path='$LOG' append='on'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
V define "$TMP/dom.xml" >/dev/null || fail "define failed"

state() { V domstate "$DOM" 2>/dev/null | awk "NR == 1"; }
# The console file is appended to across starts (virtlogd): count markers past an offset.
offset() { stat -c %s "$LOG" 2>/dev/null || echo 0; }
count() { # MARKER [OFFSET]
    tail -c +$((${2:-0} + 1)) "$LOG" 2>/dev/null | grep -ac "$1" || true
}
wait_count() { # MARKER N TIMEOUT_S [OFFSET]: until MARKER appears N times past OFFSET
    local end
    end=$(awk -v t="$3" -v n="$(now)" 'BEGIN { printf "%d", n + t }')
    while [ "$(count "$1" "${4:-0}")" -lt "$2" ]; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        [ "$(state)" = running ] || { say "domain is '$(state)' while waiting for $1"; return 1; }
        sleep 0.2
    done
}
wait_state() { # STATE TIMEOUT_S
    local end
    end=$(awk -v t="$2" -v n="$(now)" 'BEGIN { printf "%d", n + t }')
    while [ "$(state)" != "$1" ]; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.2
    done
}
show_log() { say "console log:"; sed 's/^/  | /' "$LOG" 2>/dev/null | tr -d '\r' | tail -n 30; }

# ---- start, boot marker, seed ------------------------------------------------------------------
t=$(now)
V start "$DOM" >/dev/null || fail "start failed"
wait_count MUTUALIS-GUEST-BOOT 1 60 || { show_log; fail "no boot marker within 60 s"; }
BOOT1=$(since "$t")
wait_count MUTUALIS-GUEST-READY 1 30 || { show_log; fail "no ready marker"; }
READY1=$(since "$t")
say "first boot: boot marker after ${BOOT1} s, ready after ${READY1} s (from virsh start)"
grep -a -m1 MUTUALIS-GUEST-BOOT "$LOG" | tr -d '\r' | sed 's/^/  /'
if [ -n "$SEED_XML" ]; then
    grep -aq "MUTUALIS-SEED instance-id=$IID hostname=smoke-guest" "$LOG" || { show_log; fail "seed marker missing"; }
    grep -aq "MUTUALIS-NET dev=eth0 mac=$MAC addr=10.0.2.15/24 mtu=1400 gw=10.0.2.2" "$LOG" ||
        { show_log; fail "network-config not applied"; }
    grep -aq "MUTUALIS-HTTP port=8080 ok" "$LOG" || { show_log; fail "user-data listener not up"; }
    say "seed: instance-id, static address, MTU 1400 and the HTTP listener all applied"
fi

# ---- graceful shutdown (ACPI power button) -----------------------------------------------------
t=$(now)
V shutdown "$DOM" >/dev/null || fail "virsh shutdown failed"
wait_state "shut off" 30 || { show_log; fail "not shut off 30 s after virsh shutdown (state: $(state))"; }
SHUT=$(since "$t")
reason=$(virsh -c "$URI" domstate --reason "$DOM" 2>/dev/null | awk "NR == 1")
case "$reason" in *"(shutdown)"*) ;; *) fail "unexpected state after shutdown: $reason" ;; esac
grep -aq MUTUALIS-GUEST-POWEROFF "$LOG" || { show_log; fail "guest did not log its poweroff"; }
say "virsh shutdown -> '$reason' in ${SHUT} s (no destroy)"

# ---- start again, reboots ------------------------------------------------------------------------
# A power-button press before the guest's acpid runs is lost: wait for READY each time.
t=$(now)
off=$(offset)
V start "$DOM" >/dev/null || fail "second start failed"
wait_count MUTUALIS-GUEST-READY 1 60 "$off" || { show_log; fail "no ready marker after second start"; }
say "second start: ready after $(since "$t") s"

reboot_check() { # LABEL POWEROFF-EXPECTED(yes|no) VIRSH-ARGS...
    local label=$1 acpi=$2 t off bt
    shift 2
    off=$(offset)
    t=$(now)
    V "$@" "$DOM" >/dev/null || fail "virsh $* failed"
    wait_count MUTUALIS-GUEST-BOOT 1 60 "$off" || { show_log; fail "$label: no new boot marker within 60 s"; }
    bt=$(since "$t")
    wait_count MUTUALIS-GUEST-READY 1 30 "$off" || { show_log; fail "$label: no ready marker"; }
    [ "$(state)" = running ] || fail "$label: domain not running"
    if [ "$acpi" = yes ] && [ "$(count MUTUALIS-GUEST-POWEROFF "$off")" -ne 1 ]; then
        show_log
        fail "$label: the guest did not go through its ACPI power-off"
    fi
    say "$label: new boot marker after ${bt} s, ready after $(since "$t") s"
}
boots_before=$(count MUTUALIS-GUEST-BOOT)
reboot_check "virsh reboot (default mode)" yes reboot
reboot_check "virsh reboot --mode acpi" yes reboot --mode acpi
reboot_check "virsh reset (hard reset, no ACPI)" no reset
[ "$(count MUTUALIS-GUEST-BOOT)" -eq $((boots_before + 3)) ] ||
    fail "expected $((boots_before + 3)) boot markers, found $(count MUTUALIS-GUEST-BOOT)"

# ---- undefine -------------------------------------------------------------------------------------
V destroy "$DOM" >/dev/null || fail "destroy failed"
V undefine "$DOM" >/dev/null || fail "undefine failed"
if V list --all --name | grep -qx "$DOM"; then fail "domain still defined"; fi
say "PASS (first boot marker ${BOOT1} s, ready ${READY1} s, ACPI shutdown ${SHUT} s)"
