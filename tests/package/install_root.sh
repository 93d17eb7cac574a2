#!/bin/sh
# Installs the certmon package into a fresh Debian 12 root, as `apt-get install ./certmon.deb`
# on a new machine would: dependencies from the Debian mirror, maintainer scripts run in the
# root (chroot). Then checks what the postinst made (the certmon system user, /var/lib/certmon,
# the configuration's owner and mode, the service enabled), runs certmon there as that user,
# purges the package and checks what is left. Also measures the disk space of the lean
# quick start (contrib/install-deps.sh) and of the --tests set on the same fresh root.
#
# Needs root, debootstrap and a reachable Debian mirror; takes a few minutes the first time
# (the base root is cached in ROOT_CACHE). Not part of ctest; docs/packaging.md has its last
# results.
#
# usage: install_root.sh DEB [ROOT_CACHE]   (default /var/tmp/certmon-bookworm-root)
set -eu

deb=$(readlink -f "$1")
cache=${2:-/var/tmp/certmon-bookworm-root}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
here=$(cd "$(dirname "$0")" && pwd)
fails=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}
ok() {
    echo "ok: $*"
}

[ "$(id -u)" -eq 0 ] || { echo "install_root.sh: needs root (chroot, debootstrap)" >&2; exit 2; }
if [ ! -x "$cache/bin/sh" ]; then
    echo "== debootstrap --variant=minbase bookworm $cache"
    debootstrap --variant=minbase bookworm "$cache" "$mirror" >/dev/null
fi

root=$(mktemp -d /var/tmp/certmon-root-XXXXXX)
cleanup() {
    umount "$root/proc" 2>/dev/null || true
    rm -rf --one-file-system "$root"
}
trap cleanup EXIT
cp -a "$cache/." "$root/"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

in_root apt-get update -q >/dev/null

# ---- What the quick start and the test set would install on this fresh system ----
space() {
    # shellcheck disable=SC2046
    in_root apt-get install --no-install-recommends --assume-no $("$here/../../contrib/install-deps.sh" "$@" --print) 2>/dev/null |
        sed -n 's/^After this operation, \(.*\) of additional disk space will be used\./\1/p'
}
ok "install-deps.sh would add $(space) to a fresh Debian 12 root"
ok "install-deps.sh --tests would add $(space --tests)"

# ---- Install ----
cp "$deb" "$root/tmp/certmon.deb"
before=$(in_root df -k --output=used / | tail -1)
if in_root apt-get install -y -q --no-install-recommends /tmp/certmon.deb >"$root/tmp/apt.log" 2>&1; then
    after=$(in_root df -k --output=used / | tail -1)
    ok "apt-get install ./certmon.deb: $(grep -c '^Setting up' "$root/tmp/apt.log") packages set up, about $(((after - before) / 1024)) MiB"
else
    cat "$root/tmp/apt.log" >&2
    fail "apt-get install ./certmon.deb failed"
    exit 1
fi
in_root dpkg -s certmon | grep -q '^Status: install ok installed$' || fail "certmon is not installed"
# The unit's ExecReload runs /bin/kill, which a minimal Debian lacks without procps.
in_root test -x /bin/kill || fail "/bin/kill (procps) is missing: systemctl reload would fail"

# ---- What the postinst made ----
pw=$(in_root getent passwd certmon || true)
case "$pw" in
certmon:x:*:*:*:/var/lib/certmon:/usr/sbin/nologin) ok "user: $pw" ;;
*) fail "certmon user: '$pw'" ;;
esac
uid=$(echo "$pw" | cut -d: -f3)
if [ -z "$uid" ] || [ "$uid" -ge 1000 ]; then
    fail "certmon is not a system user (uid $uid)"
fi
[ "$(in_root stat -c '%U:%G %a' /var/lib/certmon)" = "certmon:certmon 750" ] ||
    fail "/var/lib/certmon: $(in_root stat -c '%U:%G %a' /var/lib/certmon)"
[ "$(in_root stat -c '%U:%G %a' /etc/certmon/certmon.conf)" = "root:certmon 640" ] ||
    fail "/etc/certmon/certmon.conf: $(in_root stat -c '%U:%G %a' /etc/certmon/certmon.conf)"
[ -L "$root/etc/systemd/system/multi-user.target.wants/certmon.service" ] ||
    fail "the service is not enabled (no multi-user.target.wants link)"
ok "postinst: user, state directory, configuration mode, service enabled"

# ---- certmon runs there, as its user ----
in_root certmon version || fail "certmon version"
if out=$(chroot --userspec=certmon:certmon "$root" /usr/bin/certmon config-check -c /etc/certmon/certmon.conf 2>&1); then
    ok "config-check as certmon: $out"
else
    fail "config-check as certmon: $out"
fi
in_root man -w certmon >/dev/null 2>&1 || in_root test -f /usr/share/man/man1/certmon.1.gz ||
    fail "no man page"

# ---- Purge ----
in_root apt-get purge -y -q certmon >/dev/null 2>&1 || fail "apt-get purge certmon"
for p in /var/lib/certmon /etc/certmon/certmon.conf /usr/bin/certmon; do
    [ ! -e "$root$p" ] || fail "$p is left after the purge"
done
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/certmon.service" ] ||
    fail "the service's enable link is left after the purge"
ok "purge removes the state, the configuration and the enable link"

if [ "$fails" -gt 0 ]; then
    echo "$fails checks failed" >&2
    exit 1
fi
echo "all install checks passed"
