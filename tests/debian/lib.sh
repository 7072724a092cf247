# Booting the Debian image (image.sh) with systemd-nspawn, and running
# things in it. Sourced by suite.sh.
#
# The image is never changed: each boot runs on an overlay whose writes
# are thrown away. The container shares the host's network, so the host
# talks to its daemons on loopback (their ports are in image.sh), and the
# host's load generators (curl, ssh) are not processes of the server.

DEBIAN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$DEBIAN_DIR/../.." && pwd)
PSDIFF_BIN=${PSDIFF_BIN:-$REPO/target/debug/psdiff}
# The server's init: systemd, or sysvinit on the `sysv` image.
INIT=systemd
[ "${PSDIFF_DEBIAN_RELEASE:-12}" = sysv ] && INIT=sysvinit

# Starts the server; sets ROOT (the image), RUN (this boot's folder),
# LEADER (the container's pid 1, as the host numbers it) and SSH_KEY.
boot() {
    ROOT=$("$DEBIAN_DIR/image.sh")
    SSH_KEY="$(dirname "$ROOT")/id_ed25519"
    RUN=$(mktemp -d /var/tmp/psdiff-debian-run.XXXXXX)
    mkdir -p "$RUN/upper" "$RUN/work" "$RUN/merged"
    mount -t overlay overlay \
        -o "lowerdir=$ROOT,upperdir=$RUN/upper,workdir=$RUN/work" "$RUN/merged"
    install_psdiff "$RUN/merged"
    # Without systemd on the host, nspawn cannot register the machine or
    # make it a unit of its own, and wants a tmpfs for its bookkeeping.
    mkdir -p /run/systemd/nspawn
    mountpoint -q /run/systemd/nspawn || mount -t tmpfs tmpfs /run/systemd/nspawn
    local register=()
    [ -d /run/systemd/system ] || register=(--register=no --keep-unit)
    # A server's root may load eBPF (psdiff-watch): nspawn keeps neither
    # the capabilities nor the system call from its containers.
    systemd-nspawn "${register[@]}" -q -b -D "$RUN/merged" -M psdiff-debian \
        --capability=CAP_BPF,CAP_PERFMON --system-call-filter=bpf \
        --console=pipe --resolv-conf=off --timezone=off </dev/null \
        >"$RUN/console.log" 2>&1 &
    NSPAWN=$!
    LEADER=""
    local init_name=systemd
    [ "$INIT" = sysvinit ] && init_name=init
    for _ in $(seq 1 100); do
        LEADER=$(pgrep -P "$NSPAWN" -x "$init_name" || true)
        [ -n "$LEADER" ] && break
        sleep 0.1
    done
    [ -n "$LEADER" ] || { echo "the container did not start:"; cat "$RUN/console.log"; return 1; }
    local state=""
    for _ in $(seq 1 120); do
        state=$(booted_state)
        case "$state" in running | degraded) break ;; esac
        sleep 1
    done
    echo "booted: $state (container pid 1 is host pid $LEADER)"
    if [ "$state" = degraded ]; then
        in_vm systemctl --failed --no-legend --plain | sed 's/^/  failed: /'
    fi
    case "$state" in running | degraded) ;; *) cat "$RUN/console.log"; return 1 ;; esac
    wait_for_port 10050 && wait_for_port 8080 && wait_for_port 8081 && wait_for_port 2222
}

# systemd's word for the boot (running, degraded, starting); sysvinit's
# boot is running once runlevel 2 is reached and its rc script is done.
booted_state() {
    if [ "$INIT" = systemd ]; then
        in_vm systemctl is-system-running 2>/dev/null || true
    elif in_vm sh -c 'runlevel | grep -q " 2$" && ! pgrep -f "^/bin/sh /etc/init.d/rc" >/dev/null'; then
        echo running
    else
        echo starting
    fi
}

# Runs ACTION (start, stop, restart, reload) on each service NAME, as the
# server's init does it: `svc ACTION NAME...`.
svc() {
    local action=$1
    shift
    if [ "$INIT" = systemd ]; then
        in_vm systemctl "$action" "$@"
    else
        local name
        for name in "$@"; do in_vm service "$name" "$action" >/dev/null; done
    fi
}

# psdiff as the Debian package installs it, with the shipped agent files.
install_psdiff() {
    local m=$1
    install -m 755 "$PSDIFF_BIN" "$m/usr/bin/psdiff"
    install -m 644 "$REPO/etc/zabbix/userparameter_psdiff.conf" \
        "$m/etc/zabbix/zabbix_agentd.conf.d/userparameter_psdiff.conf"
    # zabbix_agent2 is not on the sysvinit image.
    [ -d "$m/etc/zabbix/zabbix_agent2.d" ] && install -m 644 "$REPO/etc/zabbix/userparameter_psdiff.conf" \
        "$m/etc/zabbix/zabbix_agent2.d/userparameter_psdiff.conf"
    install -m 644 "$REPO/etc/nagios/nrpe_psdiff.cfg" "$m/etc/nagios/nrpe.d/psdiff.cfg"
    install -m 440 "$REPO/etc/sudoers/psdiff" "$m/etc/sudoers.d/psdiff"
    for unit in psdiff-textfile.service psdiff-textfile.timer psdiff-watch.service; do
        install -D -m 644 "$REPO/etc/systemd/$unit" "$m/lib/systemd/system/$unit"
    done
    mkdir -p "$m/var/lib/prometheus/node-exporter"
}

# systemd powers off when nspawn asks; sysvinit does not know nspawn's
# signal, and its namespace ends with its init.
shutdown_vm() {
    [ -n "${NSPAWN:-}" ] && kill "$NSPAWN" 2>/dev/null
    [ "$INIT" = sysvinit ] && [ -n "${LEADER:-}" ] && kill -9 "$LEADER" 2>/dev/null
    for _ in $(seq 1 100); do
        kill -0 "${NSPAWN:-0}" 2>/dev/null || break
        sleep 0.1
    done
    if [ -n "${NSPAWN:-}" ] && kill -0 "$NSPAWN" 2>/dev/null; then
        kill -9 "$LEADER" "$NSPAWN" 2>/dev/null
    fi
    [ -n "${RUN:-}" ] && { umount -l "$RUN/merged" 2>/dev/null; rm -rf "$RUN"; }
    NSPAWN=""
}

# Runs a command in the server, as root, outside any of its units (as an
# operator's `nsenter` would): psdiff hides its own invocation, and the
# other commands run this way are done before any check.
in_vm() {
    nsenter -t "$LEADER" -a -r -w /usr/bin/env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

wait_for_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.2
    done
    echo "port $1 never opened"
    return 1
}

# Asks the server's Zabbix agent (zabbix_agentd, or zabbix_agent2 with
# AGENT=2) for an item, as the Zabbix server does.
zbx() {
    local port=10050
    [ "${AGENT:-1}" = 2 ] && port=10049
    python3 "$DEBIAN_DIR/zabbix_get.py" 127.0.0.1 "$port" "$1"
}

# ssh into the server as USER from the host.
ssh_as() {
    local user=$1
    shift
    ssh -p 2222 -i "$SSH_KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o LogLevel=ERROR -o BatchMode=yes "$user@127.0.0.1" "$@"
}
