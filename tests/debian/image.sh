#!/usr/bin/env bash
# Builds (once) the root file system of a Debian server for the live
# suite, as PSDIFF_DEBIAN_RELEASE says: Debian 12 (bookworm, the default)
# or 13 (trixie) with systemd, or `sysv`, Debian 12 with sysvinit-core and
# no systemd at all (no units, no logind: psdiff has only exe, uid and the
# parent chain there). On it the daemons a real server runs, from Debian's
# own packages, with their own units or init scripts and default
# configurations, plus what the suite needs (two users, a web site with
# PHP, a scheduled job, the monitoring agents listening on loopback).
# Prints the root's path.
#
# The image is cached under /var/tmp/psdiff-debian/KEY/root, where KEY is a
# hash of this script and the release: change the script and a new image
# is made. The Debian mirror is the one apt uses on this machine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
release=${PSDIFF_DEBIAN_RELEASE:-12}
init=systemd
case "$release" in
    12) suite=bookworm ;;
    13) suite=trixie ;;
    sysv) suite=bookworm init=sysvinit ;;
    *) echo "image.sh: no Debian release '$release' (12, 13 or sysv)" >&2; exit 2 ;;
esac
key=$( (cat "$here/image.sh"; echo "$release") | sha256sum | cut -c1-12)
cache=${PSDIFF_DEBIAN_CACHE:-/var/tmp/psdiff-debian}
root="$cache/$key/root"
if [ -e "$root/.complete" ]; then
    echo "$root"
    exit 0
fi

mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || { echo "image.sh: no Debian mirror in apt's sources" >&2; exit 1; }

PACKAGES=(
    openssh-server openssh-client cron rsyslog logrotate sudo procps
    iproute2 netcat-openbsd curl python3 ca-certificates
    nginx apache2 libapache2-mod-php php-fpm
    postgresql postfix redis-server
    zabbix-agent zabbix-agent2 nagios-nrpe-server
)

tmp="$cache/$key/root.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
echo "image.sh: debootstrap $suite from $mirror into $tmp" >&2
if [ "$init" = systemd ]; then
    include=systemd,systemd-sysv,dbus,libpam-systemd
else
    # orphan-sysvinit-scripts: the init scripts Debian keeps for packages
    # that ship only a unit.
    include=sysvinit-core,sysv-rc,initscripts,orphan-sysvinit-scripts
    # zabbix-agent2 has no init script in Debian 12.
    kept=()
    for p in "${PACKAGES[@]}"; do [ "$p" = zabbix-agent2 ] || kept+=("$p"); done
    PACKAGES=("${kept[@]}")
fi
debootstrap --variant=minbase --include="$include" "$suite" "$tmp" "$mirror" >&2
if [ "$init" = sysvinit ]; then
    # systemd never comes in by a dependency.
    printf 'Package: systemd-sysv systemd\nPin: release *\nPin-Priority: -1\n' \
        > "$tmp/etc/apt/preferences.d/no-systemd"
    # A container has no virtual terminals: no gettys, which would only
    # respawn and fail.
    sed -i 's/^\([0-9]\+:[0-9]\+:respawn:\/sbin\/getty\)/#\1/' "$tmp/etc/inittab"
fi

mounts=()
cleanup() {
    for m in "${mounts[@]}"; do umount -l "$m" 2>/dev/null || true; done
}
trap cleanup EXIT
for fs in proc sys dev dev/pts; do
    mount --bind "/$fs" "$tmp/$fs"
    mounts=("$tmp/$fs" "${mounts[@]}")
done

in_root() { chroot "$tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }

# Nothing starts while packages are installed; the booted system starts
# them with their units.
printf '#!/bin/sh\nexit 101\n' > "$tmp/usr/sbin/policy-rc.d"
chmod 755 "$tmp/usr/sbin/policy-rc.d"
echo "psdiff-debian" > "$tmp/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tpsdiff-debian\n::1\tlocalhost ip6-localhost\n' > "$tmp/etc/hosts"
echo "postfix postfix/main_mailer_type select Local only" | in_root debconf-set-selections
echo "postfix postfix/mailname string psdiff-debian" | in_root debconf-set-selections
in_root apt-get update -qq >&2
in_root apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >&2
in_root apt-get clean
rm "$tmp/usr/sbin/policy-rc.d"
# Each release has its PHP (8.2 in 12, 8.4 in 13); the suite reads it here.
php=$(ls "$tmp/etc/php")
echo "$php" > "$tmp/etc/psdiff-test-php"

# Users: alice logs in to work, mallory is the attacker; both by key.
ssh-keygen -q -t ed25519 -N '' -f "$cache/$key/id_ed25519" <<< y >/dev/null 2>&1 || true
for user in alice mallory; do
    uid=$([ $user = alice ] && echo 1000 || echo 1001)
    in_root useradd -m -u "$uid" -s /bin/bash "$user"
    install -d -m 700 -o "$uid" -g "$uid" "$tmp/home/$user/.ssh"
    install -m 600 -o "$uid" -g "$uid" "$cache/$key/id_ed25519.pub" "$tmp/home/$user/.ssh/authorized_keys"
done
echo "alice ALL=(ALL) NOPASSWD: ALL" > "$tmp/etc/sudoers.d/alice"

# Listen on loopback ports of their own: the host shares this network.
sed -i 's/^#\?Port .*/Port 2222/' "$tmp/etc/ssh/sshd_config"
echo "ListenAddress 127.0.0.1" >> "$tmp/etc/ssh/sshd_config"
sed -i 's/^Listen 80$/Listen 127.0.0.1:8080/' "$tmp/etc/apache2/ports.conf"
sed -i 's/<VirtualHost \*:80>/<VirtualHost *:8080>/' "$tmp/etc/apache2/sites-available/000-default.conf"
printf '<?php usleep(200000); echo "apache ", getmypid(), "\\n";\n' > "$tmp/var/www/html/slow.php"
cat > "$tmp/etc/nginx/sites-available/default" <<'NGINX'
server {
    listen 127.0.0.1:8081 default_server;
    root /var/www/html;
    index index.html;
    location ~ \.php$ {
        include snippets/fastcgi-php.conf;
        fastcgi_pass unix:/run/php/phpPHP-fpm.sock;
    }
}
NGINX
sed -i "s/phpPHP-fpm/php$php-fpm/" "$tmp/etc/nginx/sites-available/default"
head -c 50000000 /dev/zero > "$tmp/var/www/html/big.bin"
# php-fpm's pool grows and shrinks with the load.
sed -i 's/^pm.max_children = .*/pm.max_children = 20/' "$tmp/etc/php/$php/fpm/pool.d/www.conf"

# Agents: loopback, remote commands allowed. zabbix_agentd keeps its
# default Timeout of 3 s, which `--retry` must fit in (issue 24).
for conf in "$tmp/etc/zabbix/zabbix_agentd.conf"; do
    sed -i 's/^Server=.*/Server=127.0.0.1/; s/^ServerActive=.*/ServerActive=/' "$conf"
    printf 'ListenIP=127.0.0.1\nTimeout=3\nAllowKey=system.run[*]\n' >> "$conf"
done
conf="$tmp/etc/zabbix/zabbix_agent2.conf"
if [ -e "$conf" ]; then
    sed -i 's/^Server=.*/Server=127.0.0.1/; s/^ServerActive=.*/ServerActive=/' "$conf"
    printf 'ListenIP=127.0.0.1\nListenPort=10049\nTimeout=30\nAllowKey=system.run[*]\n' >> "$conf"
fi
sed -i 's/^allowed_hosts=.*/allowed_hosts=127.0.0.1,::1/' "$tmp/etc/nagios/nrpe.cfg"
sed -i 's/^command_timeout=.*/command_timeout=60/' "$tmp/etc/nagios/nrpe.cfg"

# A scheduled job started by a timer, as backups are (with systemd).
if [ "$init" = systemd ]; then
    cat > "$tmp/etc/systemd/system/backup.service" <<'UNIT'
[Unit]
Description=Nightly backup (psdiff test)
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'tar -cf /var/tmp/backup.tar /etc >/dev/null 2>&1; sleep 20'
UNIT
    cat > "$tmp/etc/systemd/system/backup.timer" <<'UNIT'
[Timer]
OnCalendar=*-*-* 03:00:00
[Install]
WantedBy=timers.target
UNIT
    in_root systemctl enable backup.timer >&2
    # What a container does not need, and what waits on a network.
    in_root systemctl mask systemd-networkd-wait-online.service apt-daily.timer \
        apt-daily-upgrade.timer >&2 || true
fi

touch "$tmp/.complete"
cleanup
trap - EXIT
mv "$tmp" "$root"
echo "$root"
