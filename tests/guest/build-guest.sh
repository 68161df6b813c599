#!/usr/bin/env bash
# Builds the Mutualis test guest from Debian packages only (apt-get download + dpkg -x):
#   OUTDIR/vmlinuz     the kernel of linux-image-6.1.0-N-cloud-amd64 (the version that the
#                      linux-image-cloud-amd64 metapackage currently depends on)
#   OUTDIR/initrd.gz   gzip'd newc cpio: busybox-static, /init, virtio/ACPI/CD-ROM modules
#   OUTDIR/stamp       the inputs (package versions + checksums of these sources)
#   OUTDIR/cmdline     the recommended kernel command line
# Idempotent: if OUTDIR/stamp matches the current inputs, nothing is rebuilt.
# The output is deterministic (fixed mtimes, sorted cpio, gzip -n).
# Must run as root (apt-get, files owned by root in the archive). See README.md in this folder.
set -euo pipefail
umask 022

usage() { echo "usage: $0 OUTDIR" >&2; exit 2; }
[ $# -eq 1 ] || usage
OUT=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KMETA=linux-image-cloud-amd64
# Modules the guest loads. Their dependencies are added (and ordered) automatically from
# each module's .modinfo "depends=" field; built-in ones are skipped.
WANT_MODULES=(
    virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
    failover net_failover virtio_net
    evdev button
    virtio_blk scsi_common scsi_mod virtio_scsi sd_mod libata ata_piix cdrom sr_mod isofs
)
SOURCES=(build-guest.sh init netcfg.awk cgi-info cgi-ping cgi-netset)
EPOCH=1700000000 # fixed mtime of every file in the initramfs

log() { echo "build-guest: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
for t in apt-get apt-cache dpkg dpkg-deb gzip sha256sum find sort; do
    command -v "$t" >/dev/null || die "missing tool $t"
done

candidate() { apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p' | head -n 1; }
kernel_pkg() {
    apt-cache depends "$KMETA" 2>/dev/null |
        sed -n 's/^ *Depends: *\(linux-image-6\.1\.0-[0-9]*-cloud-amd64\)$/\1/p' | head -n 1
}

KPKG=$(kernel_pkg || true)
BBVER=$(candidate busybox-static || true)
if [ -z "$KPKG" ] || [ -z "$BBVER" ] || [ "$BBVER" = "(none)" ]; then
    log "apt lists lack $KMETA or busybox-static: running apt-get update"
    apt-get update -qq >/dev/null
    KPKG=$(kernel_pkg || true)
    BBVER=$(candidate busybox-static || true)
fi
[ -n "$KPKG" ] || die "apt offers no linux-image-6.1.0-*-cloud-amd64 (through $KMETA)"
if [ -z "$BBVER" ] || [ "$BBVER" = "(none)" ]; then die "apt offers no busybox-static"; fi
KVER=$(candidate "$KPKG")
if [ -z "$KVER" ] || [ "$KVER" = "(none)" ]; then die "no candidate version for $KPKG"; fi
KREL=${KPKG#linux-image-}

STAMP_TEXT="mutualis-guest 1
kernel $KPKG $KVER
busybox-static $BBVER
modules ${WANT_MODULES[*]}
$(cd "$HERE" && sha256sum "${SOURCES[@]}")"

if [ -f "$OUT/stamp" ] && [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.gz" ] &&
    [ "$(cat "$OUT/stamp")" = "$STAMP_TEXT" ]; then
    log "up to date ($KPKG $KVER, busybox $BBVER)"
    echo "kernel: $OUT/vmlinuz"
    echo "initrd: $OUT/initrd.gz"
    echo "cmdline: $(cat "$OUT/cmdline")"
    exit 0
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"

# --- fetch (apt's own cache first) and unpack ----------------------------------------
fetch() { # PKG VERSION -> path of the .deb
    local pkg=$1 ver=$2 f
    f=/var/cache/apt/archives/${pkg}_${ver//:/%3a}_amd64.deb
    if [ -f "$f" ] && dpkg-deb -W "$f" >/dev/null 2>&1; then
        echo "$f"
        return
    fi
    (cd "$WORK" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >/dev/null) ||
        die "apt-get download $pkg=$ver failed"
    for f in "$WORK/${pkg}_"*.deb; do
        [ -f "$f" ] && { echo "$f"; return; }
    done
    die "apt-get download $pkg=$ver left no .deb"
}
log "using $KPKG $KVER and busybox-static $BBVER"
KDEB=$(fetch "$KPKG" "$KVER")
BDEB=$(fetch busybox-static "$BBVER")
mkdir -p "$WORK/k" "$WORK/b"
dpkg -x "$KDEB" "$WORK/k"
dpkg -x "$BDEB" "$WORK/b"
MODDIR=$WORK/k/lib/modules/$KREL
[ -f "$WORK/k/boot/vmlinuz-$KREL" ] || die "no /boot/vmlinuz-$KREL in $KDEB"
[ -d "$MODDIR" ] || die "no modules for $KREL"
[ -x "$WORK/b/bin/busybox" ] || die "no /bin/busybox in $BDEB"

# --- resolve module dependencies -------------------------------------------------------
declare -A MODPATH=() SEEN=()
while IFS= read -r p; do
    n=$(basename "$p" .ko)
    MODPATH[${n//-/_}]=$p
done < <(cd "$MODDIR" && find kernel -name '*.ko' | LC_ALL=C sort)
[ ${#MODPATH[@]} -gt 0 ] || die "no uncompressed .ko modules found (compressed modules are not supported)"
ORDER=()
builtin_mod() { grep -q "/$1\.ko\$" "$MODDIR/modules.builtin" 2>/dev/null ||
    grep -q "/${1//_/-}\.ko\$" "$MODDIR/modules.builtin" 2>/dev/null; }
mod_deps() { tr '\0' '\n' <"$MODDIR/${MODPATH[$1]}" | sed -n 's/^depends=//p' | head -n 1 | tr ',' ' '; }
visit() {
    local m=${1//-/_} d
    [ -z "${SEEN[$m]:-}" ] || return 0
    SEEN[$m]=1
    if [ -z "${MODPATH[$m]:-}" ]; then
        if builtin_mod "$m"; then
            log "module $m is built in"
            return 0
        fi
        die "module $m is neither modular nor built in for $KREL"
    fi
    for d in $(mod_deps "$m"); do visit "$d"; done
    ORDER+=("$m")
}
for m in "${WANT_MODULES[@]}"; do visit "$m"; done

# --- the initramfs tree ------------------------------------------------------------------
R=$WORK/root
mkdir -p "$R"/{bin,sbin,dev,proc,sys,tmp,run,mnt/seed,etc/mutualis,etc/acpi/PWRF,lib/modules,var/log,var/run,root}
cp "$WORK/b/bin/busybox" "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do
    [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"
done
ln -s ../bin/busybox "$R/sbin/busybox"
for m in "${ORDER[@]}"; do cp "$MODDIR/${MODPATH[$m]}" "$R/lib/modules/$m.ko"; done
printf '%s\n' "${ORDER[@]}" >"$R/etc/mutualis/modules"
install -m 755 "$HERE/init" "$R/init"
install -m 644 "$HERE/netcfg.awk" "$R/etc/mutualis/netcfg.awk"
install -m 755 "$HERE/cgi-info" "$R/etc/mutualis/cgi-info"
install -m 755 "$HERE/cgi-ping" "$R/etc/mutualis/cgi-ping"
install -m 755 "$HERE/cgi-netset" "$R/etc/mutualis/cgi-netset"
echo "PWRF PWRF/00000080" >"$R/etc/acpid.conf"
cat >"$R/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "MUTUALIS-GUEST-POWEROFF" >/dev/console
sync
/bin/poweroff -f
EOF
chmod 755 "$R/etc/acpi/PWRF/00000080"
echo "root:x:0:0:root:/root:/bin/sh" >"$R/etc/passwd"
echo "root:x:0:" >"$R/etc/group"
echo "mutualis-guest" >"$R/etc/hostname"
printf '%s %s\nbusybox-static %s\n' "$KPKG" "$KVER" "$BBVER" >"$R/etc/mutualis/versions"
# No device nodes in the archive (busybox cpio --ignore-devno would zero their numbers):
# /init mounts devtmpfs first and takes its console from there.
find "$R" -exec touch -h -d "@$EPOCH" {} +

(cd "$R" && find . -mindepth 1 | LC_ALL=C sort |
    "$WORK/b/bin/busybox" cpio -o -H newc -R 0:0 --ignore-devno --renumber-inodes 2>/dev/null) |
    gzip -n -9 >"$WORK/initrd.gz"
install -m 644 "$WORK/k/boot/vmlinuz-$KREL" "$WORK/vmlinuz"
echo "console=ttyS0 quiet" >"$WORK/cmdline"
chmod 644 "$WORK/initrd.gz" "$WORK/cmdline"
mv -f "$WORK/vmlinuz" "$OUT/vmlinuz"
mv -f "$WORK/initrd.gz" "$OUT/initrd.gz"
mv -f "$WORK/cmdline" "$OUT/cmdline"
printf '%s\n' "$STAMP_TEXT" >"$OUT/stamp"
chmod 755 "$OUT"
log "built from $KPKG $KVER, busybox-static $BBVER; modules: ${ORDER[*]}"
echo "kernel: $OUT/vmlinuz"
echo "initrd: $OUT/initrd.gz ($(stat -c %s "$OUT/initrd.gz") bytes, sha256 $(sha256sum "$OUT/initrd.gz" | cut -c1-16))"
echo "cmdline: $(cat "$OUT/cmdline")"
