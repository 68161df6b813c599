# shellcheck shell=bash
# Real libvirt "nodes" on one machine without systemd, for integration tests.
# Source it:  . scripts/node-env.sh   (bash; needs root). See ../shared/env-notes.md.
#
# System daemon (qemu:///system, privileged):
#   mu_node_system_start            prepare dirs/users/qemu.conf, start virtlogd + libvirtd
#                                   unless already running
#   mu_node_system_stop             stop only the daemons mu_node_system_start started
#                                   (destroying their running domains) and restore qemu.conf
# Session "nodes" (qemu:///session of one Unix user each):
#   mu_node_user_create NAME        user NAME + storage pool "$MU_NODE_POOL" (dir ~/pool)
#   mu_node_user_delete NAME        destroys/undefines its domains and pool, ends its
#                                   processes, deletes the user (only users this file made)
#   mu_node_virsh NAME ARGS...      virsh -c qemu:///session as NAME (local, no SSH)
# Loopback sshd reaching those users:
#   mu_sshd_start DIR PORT [USER...] host key, client key, sshd on 127.0.0.1:PORT
#   mu_sshd_authorize DIR USER      let the client key log in as USER
#   mu_sshd_stop DIR                stop that sshd and its sessions, remove what it made
#   mu_sshd_uri DIR USER [ssh|libssh] prints qemu+ssh:// or qemu+libssh:// session URI
# Variables set by mu_sshd_start: MU_SSHD_DIR MU_SSHD_PORT MU_SSH_KEY MU_SSH_KNOWN_HOSTS
# Other variables: MU_NODE_STATE (state dir, default /run/mutualis-node-env),
#   MU_NODE_POOL (pool name, default "default"), MU_SYSTEM_URI (qemu:///system).
# Every function is idempotent and returns non-zero with a message on stderr on failure.

: "${MU_NODE_STATE:=/run/mutualis-node-env}"
: "${MU_NODE_POOL:=default}"
MU_SYSTEM_URI=qemu:///system
export MU_NODE_STATE MU_NODE_POOL MU_SYSTEM_URI

_mu_log() { echo "node-env: $*" >&2; }
_mu_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
_mu_pidfile_alive() { [ -s "$1" ] && _mu_alive "$(cat "$1")"; }
_mu_valid_user() {
    case "$1" in
    [a-z]*) ;;
    *) _mu_log "bad user name '$1'"; return 1 ;;
    esac
    case "$1" in
    *[!a-z0-9-]*) _mu_log "bad user name '$1' (allowed: a-z 0-9 -)"; return 1 ;;
    esac
    [ ${#1} -le 31 ] || { _mu_log "user name too long"; return 1; }
}
_mu_wait() { # TIMEOUT_DECISECONDS COMMAND... : retry until it succeeds
    local n=$1 i=0
    shift
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt "$n" ] || return 1
        sleep 0.1
    done
}
_mu_kill_pid() { # PID: TERM, wait up to 5 s, then KILL
    local p=$1 i=0
    _mu_alive "$p" || return 0
    kill "$p" 2>/dev/null || true
    while _mu_alive "$p" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    _mu_alive "$p" && kill -9 "$p" 2>/dev/null
    return 0
}

# ---------------------------------------------------------------- system daemon --------
_MU_QEMU_CONF=/etc/libvirt/qemu.conf
_MU_SYS_DIRS=(/var/log/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt /etc/libvirt
    /etc/libvirt/qemu /etc/libvirt/nwfilter /etc/libvirt/secrets /etc/libvirt/storage)
_MU_QEMU_SETTINGS=(
    'user = "root"' 'group = "root"' 'swtpm_user = "root"' 'swtpm_group = "root"'
    'dynamic_ownership = 0' 'security_driver = "none"'
)

_mu_qemu_conf_ok() {
    local kv key
    [ -f "$_MU_QEMU_CONF" ] || return 1
    for kv in "${_MU_QEMU_SETTINGS[@]}"; do
        key=${kv%% *}
        [ "$(grep -E "^[[:space:]]*${key}[[:space:]]*=" "$_MU_QEMU_CONF" | tail -n 1 |
            sed 's/[[:space:]]//g')" = "${kv// /}" ] || return 1
    done
}

_mu_qemu_conf_edit() {
    local st=$MU_NODE_STATE/system kv key tmp
    _mu_qemu_conf_ok && return 0
    mkdir -p /etc/libvirt
    if [ ! -e "$st/qemu.conf.state" ]; then
        if [ -f "$_MU_QEMU_CONF" ]; then
            cp -p "$_MU_QEMU_CONF" "$st/qemu.conf.orig"
            cp -p "$_MU_QEMU_CONF" "$_MU_QEMU_CONF.mutualis-backup"
            echo present >"$st/qemu.conf.state"
        else
            echo absent >"$st/qemu.conf.state"
        fi
    fi
    tmp=$(mktemp "$_MU_QEMU_CONF.XXXXXX")
    [ -f "$_MU_QEMU_CONF" ] && cat "$_MU_QEMU_CONF" >"$tmp"
    for kv in "${_MU_QEMU_SETTINGS[@]}"; do
        key=${kv%% *}
        sed -i -E "/^[[:space:]]*${key}[[:space:]]*=/d" "$tmp"
    done
    {
        echo "# --- set by Mutualis scripts/node-env.sh (tests without systemd) ---"
        printf '%s\n' "${_MU_QEMU_SETTINGS[@]}"
    } >>"$tmp"
    chmod 644 "$tmp"
    mv -f "$tmp" "$_MU_QEMU_CONF"
}

_mu_qemu_conf_restore() {
    local st=$MU_NODE_STATE/system
    case "$(cat "$st/qemu.conf.state" 2>/dev/null)" in
    present) cp -p "$st/qemu.conf.orig" "$_MU_QEMU_CONF" && rm -f "$_MU_QEMU_CONF.mutualis-backup" ;;
    absent) rm -f "$_MU_QEMU_CONF" ;;
    *) return 0 ;;
    esac
    rm -f "$st/qemu.conf.state" "$st/qemu.conf.orig"
}

_mu_system_running() { # libvirtd answering on the system socket
    [ -S /run/libvirt/libvirt-sock ] && virsh -c qemu:///system version >/dev/null 2>&1
}

mu_node_system_start() {
    local st=$MU_NODE_STATE/system g d
    [ "$(id -u)" -eq 0 ] || { _mu_log "mu_node_system_start needs root"; return 1; }
    mkdir -p "$st"
    if _mu_system_running; then
        _mu_log "system libvirtd already running"
        return 0
    fi
    # Directories the daemon will create or fill: those missing now are removed at stop.
    for d in "${_MU_SYS_DIRS[@]}"; do
        [ -e "$d" ] || echo "$d" >>"$st/dirs"
    done
    mkdir -p /var/log/libvirt/qemu /run/libvirt /var/lib/libvirt/qemu /var/cache/libvirt \
        /etc/libvirt/qemu
    for g in libvirt-qemu kvm libvirt; do
        if ! getent group "$g" >/dev/null; then
            groupadd -r "$g" && echo "$g" >>"$st/groups"
        fi
    done
    if ! getent passwd libvirt-qemu >/dev/null; then
        useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu &&
            echo libvirt-qemu >>"$st/users"
    fi
    _mu_qemu_conf_edit || { _mu_log "cannot edit $_MU_QEMU_CONF"; return 1; }
    if ! _mu_pidfile_alive /run/virtlogd.pid; then
        virtlogd -d -p /run/virtlogd.pid || { _mu_log "virtlogd failed"; return 1; }
        _mu_wait 50 _mu_pidfile_alive /run/virtlogd.pid || { _mu_log "virtlogd did not start"; return 1; }
        cat /run/virtlogd.pid >"$st/virtlogd.pid"
    fi
    if ! _mu_pidfile_alive /run/libvirtd.pid; then
        libvirtd -d -p /run/libvirtd.pid || { _mu_log "libvirtd failed"; return 1; }
        _mu_wait 100 _mu_pidfile_alive /run/libvirtd.pid || { _mu_log "libvirtd did not start"; return 1; }
        cat /run/libvirtd.pid >"$st/libvirtd.pid"
    fi
    _mu_wait 150 _mu_system_running || { _mu_log "qemu:///system does not answer"; return 1; }
    _mu_log "system libvirtd running (pid $(cat /run/libvirtd.pid))"
}

mu_node_system_stop() {
    local st=$MU_NODE_STATE/system d p u g
    [ -d "$st" ] || return 0
    if [ -s "$st/libvirtd.pid" ]; then
        p=$(cat "$st/libvirtd.pid")
        if _mu_alive "$p"; then
            # Guests of a daemon we started are test guests: do not leave QEMU running.
            for d in $(virsh -c qemu:///system list --name 2>/dev/null); do
                virsh -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
            done
            _mu_kill_pid "$p"
        fi
        rm -f "$st/libvirtd.pid"
    fi
    if [ -s "$st/virtlogd.pid" ]; then
        _mu_kill_pid "$(cat "$st/virtlogd.pid")"
        rm -f "$st/virtlogd.pid"
    fi
    _mu_qemu_conf_restore
    if [ -f "$st/users" ]; then
        while read -r u; do userdel "$u" 2>/dev/null || true; done <"$st/users"
        rm -f "$st/users"
    fi
    if [ -f "$st/groups" ]; then
        while read -r g; do groupdel "$g" 2>/dev/null || true; done <"$st/groups"
        rm -f "$st/groups"
    fi
    if [ -f "$st/dirs" ]; then
        # Only directories that did not exist before mu_node_system_start (reverse order).
        tac "$st/dirs" | while read -r d; do
            case "$d" in /var/log/libvirt | /run/libvirt | /var/lib/libvirt | /var/cache/libvirt | /etc/libvirt/*)
                rm -rf "$d" ;;
            /etc/libvirt) rmdir "$d" 2>/dev/null || true ;;
            esac
        done
        rm -f "$st/dirs"
    fi
    rmdir "$st" "$MU_NODE_STATE" 2>/dev/null || true
    return 0
}

# ---------------------------------------------------------------- session nodes --------
_mu_home() { getent passwd "$1" | cut -d: -f6; }

mu_node_virsh() { # NAME ARGS...: virsh on NAME's session daemon, run as NAME
    local u=$1 a q=""
    shift
    for a in "$@"; do q+=" $(printf '%q' "$a")"; done
    su -s /bin/sh - "$u" -c "virsh -q -c qemu:///session$q"
}

mu_node_user_create() {
    local u=${1:-} h
    [ "$(id -u)" -eq 0 ] || { _mu_log "mu_node_user_create needs root"; return 1; }
    _mu_valid_user "$u" || return 1
    if ! getent passwd "$u" >/dev/null; then
        # '*' (not the default '!'): sshd refuses locked accounts when UsePAM is off.
        useradd -m -s /bin/bash -p '*' -c "Mutualis test node" "$u" ||
            { _mu_log "useradd $u failed"; return 1; }
        h=$(_mu_home "$u")
        echo "created by scripts/node-env.sh" >"$h/.mutualis-node"
    fi
    h=$(_mu_home "$u")
    su -s /bin/sh - "$u" -c "mkdir -p ~/pool ~/.cache" || return 1
    if ! mu_node_virsh "$u" pool-info "$MU_NODE_POOL" >/dev/null 2>&1; then
        mu_node_virsh "$u" pool-define-as "$MU_NODE_POOL" dir --target "$h/pool" >/dev/null ||
            { _mu_log "pool-define-as failed for $u"; return 1; }
    fi
    if [ "$(mu_node_virsh "$u" pool-info "$MU_NODE_POOL" 2>/dev/null | awk '/^State:/ {print $2}')" != running ]; then
        mu_node_virsh "$u" pool-start "$MU_NODE_POOL" >/dev/null ||
            { _mu_log "pool-start failed for $u"; return 1; }
    fi
    mu_node_virsh "$u" pool-autostart "$MU_NODE_POOL" >/dev/null 2>&1 || true
    _mu_log "node $u ready (qemu:///session, pool $MU_NODE_POOL at $h/pool)"
}

mu_node_user_delete() {
    local u=${1:-} h d p i sig
    _mu_valid_user "$u" || return 1
    getent passwd "$u" >/dev/null || return 0
    h=$(_mu_home "$u")
    if [ ! -f "$h/.mutualis-node" ]; then
        _mu_log "refusing to delete $u: not created by node-env.sh"
        return 1
    fi
    if [ -S "$h/.cache/libvirt/libvirt-sock" ]; then
        for d in $(mu_node_virsh "$u" list --all --name 2>/dev/null); do
            mu_node_virsh "$u" destroy "$d" >/dev/null 2>&1 || true
            mu_node_virsh "$u" undefine --nvram "$d" >/dev/null 2>&1 ||
                mu_node_virsh "$u" undefine "$d" >/dev/null 2>&1 || true
        done
        mu_node_virsh "$u" pool-destroy "$MU_NODE_POOL" >/dev/null 2>&1 || true
        mu_node_virsh "$u" pool-undefine "$MU_NODE_POOL" >/dev/null 2>&1 || true
    fi
    # End the user's processes (its session libvirtd, virtlogd, QEMU, SSH sessions), by pid.
    for i in 1 2 3; do
        p=$(ps -o pid= -u "$u" 2>/dev/null | tr -d ' ')
        [ -n "$p" ] || break
        sig=TERM
        [ $i -lt 3 ] || sig=KILL
        # shellcheck disable=SC2086 # one pid per word
        kill -s $sig $p 2>/dev/null || true
        _mu_wait 30 sh -c "[ -z \"\$(ps -o pid= -u $u)\" ]" || true
    done
    userdel -r "$u" 2>/dev/null || userdel "$u" 2>/dev/null ||
        { _mu_log "userdel $u failed"; return 1; }
    rm -rf "$h"
    return 0
}

# ---------------------------------------------------------------- loopback sshd --------
mu_sshd_authorize() { # DIR USER
    local dir=$1 u=$2
    _mu_valid_user "$u" || return 1
    [ -f "$dir/client_key.pub" ] || { _mu_log "no sshd in $dir"; return 1; }
    getent passwd "$u" >/dev/null || { _mu_log "no user $u"; return 1; }
    install -m 644 "$dir/client_key.pub" "$dir/authorized_keys/$u"
    # sshd reads the file with the user's rights: every parent directory must let them in.
    su -s /bin/sh "$u" -c "test -r '$dir/authorized_keys/$u'" || {
        _mu_log "user $u cannot read $dir/authorized_keys/$u: make the parents of $dir traversable (e.g. chmod 755)"
        return 1
    }
}

mu_sshd_start() { # DIR PORT [USER...]
    local dir=${1:-} port=${2:-} u
    if [ -z "$dir" ] || [ -z "$port" ]; then
        _mu_log "usage: mu_sshd_start DIR PORT [USER...]"
        return 1
    fi
    case "$port" in *[!0-9]*) _mu_log "bad port $port"; return 1 ;; esac
    shift 2
    [ -x /usr/sbin/sshd ] || { _mu_log "no /usr/sbin/sshd (openssh-server)"; return 1; }
    mkdir -p "$dir" /run/sshd
    dir=$(cd "$dir" && pwd)
    chmod 755 "$dir"
    [ -e "$dir/.mutualis-sshd" ] || echo "$port" >"$dir/.mutualis-sshd"
    mkdir -p "$dir/authorized_keys"
    chmod 755 "$dir/authorized_keys"
    [ -f "$dir/hostkey" ] || ssh-keygen -q -t ed25519 -N '' -C mutualis-test-host -f "$dir/hostkey" || return 1
    [ -f "$dir/client_key" ] || ssh-keygen -q -t ed25519 -N '' -C mutualis-test-client -f "$dir/client_key" || return 1
    chmod 600 "$dir/hostkey" "$dir/client_key"
    echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/hostkey.pub")" >"$dir/known_hosts"
    for u in "$@"; do mu_sshd_authorize "$dir" "$u" || return 1; done
    cat >"$dir/sshd_config" <<EOF
# Loopback sshd for Mutualis tests (scripts/node-env.sh)
Port $port
ListenAddress 127.0.0.1
HostKey $dir/hostkey
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys/%u
# The key files live outside the users' homes, in a root-owned directory.
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
MaxStartups 64:30:128
MaxSessions 64
LogLevel VERBOSE
Subsystem sftp internal-sftp
EOF
    if _mu_pidfile_alive "$dir/sshd.pid"; then
        kill -HUP "$(cat "$dir/sshd.pid")" # reread config (new users)
    else
        /usr/sbin/sshd -t -f "$dir/sshd_config" || { _mu_log "sshd config test failed"; return 1; }
        /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" ||
            { _mu_log "sshd failed, see $dir/sshd.log"; return 1; }
        _mu_wait 50 _mu_pidfile_alive "$dir/sshd.pid" ||
            { _mu_log "sshd did not start, see $dir/sshd.log"; return 1; }
    fi
    # qemu+ssh (no_verify=1 passes StrictHostKeyChecking=no) still records the host key
    # in root's ~/.ssh/known_hosts: put the right one there now, remove it at stop.
    mkdir -p ~/.ssh && chmod 700 ~/.ssh
    ssh-keygen -q -R "[127.0.0.1]:$port" -f ~/.ssh/known_hosts >/dev/null 2>&1 || true
    rm -f ~/.ssh/known_hosts.old
    cat "$dir/known_hosts" >>~/.ssh/known_hosts
    MU_SSHD_DIR=$dir
    MU_SSHD_PORT=$port
    MU_SSH_KEY=$dir/client_key
    MU_SSH_KNOWN_HOSTS=$dir/known_hosts
    export MU_SSHD_DIR MU_SSHD_PORT MU_SSH_KEY MU_SSH_KNOWN_HOSTS
    _mu_log "sshd on 127.0.0.1:$port (pid $(cat "$dir/sshd.pid")), client key $dir/client_key"
}

mu_sshd_uri() { # DIR USER [ssh|libssh]
    local dir=$1 u=$2 kind=${3:-ssh} port
    port=$(cat "$dir/.mutualis-sshd" 2>/dev/null) || { _mu_log "no sshd in $dir"; return 1; }
    case "$kind" in
    ssh) echo "qemu+ssh://$u@127.0.0.1:$port/session?keyfile=$dir/client_key&no_verify=1" ;;
    libssh) echo "qemu+libssh://$u@127.0.0.1:$port/session?keyfile=$dir/client_key&known_hosts=$dir/known_hosts&sshauth=privkey" ;;
    *) _mu_log "unknown transport $kind"; return 1 ;;
    esac
}

mu_sshd_stop() { # DIR
    local dir=${1:-} p port c
    if [ -z "$dir" ] || [ ! -d "$dir" ]; then return 0; fi
    [ -e "$dir/.mutualis-sshd" ] || { _mu_log "refusing: $dir was not set up by mu_sshd_start"; return 1; }
    port=$(cat "$dir/.mutualis-sshd")
    if [ -s "$dir/sshd.pid" ]; then
        p=$(cat "$dir/sshd.pid")
        if _mu_alive "$p"; then
            # The listener's children are the open sessions: end them too.
            c=$(ps -o pid= --ppid "$p" 2>/dev/null | tr -d ' ')
            _mu_kill_pid "$p"
            for p in $c; do _mu_kill_pid "$p"; done
        fi
    fi
    if [ -f ~/.ssh/known_hosts ]; then
        ssh-keygen -q -R "[127.0.0.1]:$port" -f ~/.ssh/known_hosts >/dev/null 2>&1 || true
        rm -f ~/.ssh/known_hosts.old
    fi
    rm -rf "$dir/authorized_keys"
    rm -f "$dir"/{hostkey,hostkey.pub,client_key,client_key.pub,known_hosts,sshd_config,sshd.pid,sshd.log,.mutualis-sshd}
    rmdir "$dir" 2>/dev/null || true
    if [ "${MU_SSHD_DIR:-}" = "$dir" ]; then unset MU_SSHD_DIR MU_SSHD_PORT MU_SSH_KEY MU_SSH_KNOWN_HOSTS; fi
    return 0
}
