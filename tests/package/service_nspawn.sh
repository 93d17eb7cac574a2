#!/bin/sh
# certmon.service under a real systemd: boots a Debian 12 root with the package installed in a
# systemd-nspawn container (systemd 252 as its PID 1) and checks, as an operator would with
# systemctl: the service starts and reaches "active (running)" only through READY=1, with
# certmon's status line; /healthz answers inside the sandbox; `systemctl reload` waits for the
# reload (RELOADING=1 ... READY=1); a daemon whose loop stops (SIGSTOP) is killed by the
# watchdog and restarted; `systemctl stop` ends it cleanly (exit 0); the live exposure figure.
#
# Needs root, systemd-container (systemd-nspawn), debootstrap and a Debian mirror; about a
# minute with a cached base root. Not part of ctest; docs/packaging.md has its last results.
#
# usage: service_nspawn.sh DEB [ROOT_CACHE]   (default /var/tmp/certmon-bookworm-root)
set -eu

deb=$(readlink -f "$1")
cache=${2:-/var/tmp/certmon-bookworm-root}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
fails=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}
ok() {
    echo "ok: $*"
}

[ "$(id -u)" -eq 0 ] || { echo "service_nspawn.sh: needs root" >&2; exit 2; }
command -v systemd-nspawn >/dev/null || { echo "service_nspawn.sh: needs systemd-nspawn (systemd-container)" >&2; exit 2; }
if [ ! -x "$cache/bin/sh" ]; then
    echo "== debootstrap --variant=minbase bookworm $cache"
    debootstrap --variant=minbase bookworm "$cache" "$mirror" >/dev/null
fi

root=$(mktemp -d /var/tmp/certmon-nspawn-XXXXXX)
nspawn=""
cleanup() {
    if [ -n "$nspawn" ]; then
        kill "$nspawn" 2>/dev/null || true
        wait "$nspawn" 2>/dev/null || true
    fi
    umount "$root/proc" 2>/dev/null || true
    rm -rf --one-file-system "$root" "$root.boot.log"
}
trap cleanup EXIT
cp -a "$cache/." "$root/"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/"
mount -t proc proc "$root/proc"
chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends systemd systemd-sysv dbus /tmp/$(basename "$deb")" \
    >"$root/tmp/apt.log" 2>&1 || { cat "$root/tmp/apt.log" >&2; exit 1; }
umount "$root/proc"

# Boot it. Without machined (no system bus here) the container is not registered; commands run
# in it through nsenter on its PID 1.
systemd-nspawn --register=no --keep-unit --quiet -D "$root" -b >"$root.boot.log" 2>&1 &
nspawn=$!
pid1=""
for _ in $(seq 1 100); do
    pid1=$(pgrep -x systemd -P "$nspawn" || true)
    [ -n "$pid1" ] && break
    sleep 0.2
done
[ -n "$pid1" ] || { cat "$root.boot.log" >&2; fail "the container did not boot"; exit 1; }
in_ct() { nsenter -t "$pid1" -a "$@"; }
prop() { in_ct systemctl show certmon -p "$1" --value; }

# The service comes up (Type=notify: active only after READY=1).
state=""
for _ in $(seq 1 150); do
    state=$(prop ActiveState 2>/dev/null || true)
    [ "$state" = active ] && break
    sleep 0.2
done
[ "$state" = active ] || fail "certmon.service is '$state', not active"
[ "$(prop SubState)" = running ] || fail "SubState is $(prop SubState)"
status=$(prop StatusText)
case "$status" in
"running; 3 targets from /etc/certmon/certmon.conf") ok "active (running), status: $status" ;;
*) fail "status text: '$status'" ;;
esac
[ "$(prop User)" = certmon ] || fail "User is $(prop User)"
# shellcheck disable=SC2016 # the script runs in the container's bash
if out=$(in_ct bash -c 'exec 3<>/dev/tcp/127.0.0.1/9799 && printf "GET /healthz HTTP/1.0\r\n\r\n" >&3 && head -1 <&3'); then
    case "$out" in
    "HTTP/1.1 200"*) ok "/healthz: $out" ;;
    *) fail "/healthz: $out" ;;
    esac
else
    fail "nothing listens on 127.0.0.1:9799"
fi
in_ct test -f /var/lib/certmon/state.json || sleep 3
in_ct test -f /var/lib/certmon/state.json || fail "no state written to /var/lib/certmon"
exposure=$(in_ct systemd-analyze security certmon.service 2>/dev/null |
    sed -n 's/.*Overall exposure level for certmon.service: \([0-9.]*\).*/\1/p')
ok "live systemd-analyze security: exposure $exposure"

# Reload: systemctl returns once certmon says READY=1 again.
if in_ct systemctl reload certmon; then
    log=$(in_ct journalctl -u certmon --no-pager -o cat)
    reloaded=$(echo "$log" | grep -n 'reloaded targets=3' | tail -1 | cut -d: -f1)
    done_at=$(echo "$log" | grep -n '^Reloaded certmon.service' | tail -1 | cut -d: -f1)
    if [ -n "$reloaded" ] && [ -n "$done_at" ] && [ "$reloaded" -lt "$done_at" ]; then
        ok "systemctl reload: certmon reloaded before systemd called it done"
    else
        fail "reload order in the journal (certmon line $reloaded, systemd line $done_at)"
    fi
else
    fail "systemctl reload certmon"
fi
[ "$(prop ActiveState)" = active ] || fail "not active after the reload"

# The watchdog: a loop that stops turning is killed and restarted (a 2 s watchdog for the test).
mkdir -p "$root/etc/systemd/system/certmon.service.d"
printf '[Service]\nWatchdogSec=2s\nTimeoutAbortSec=2s\nRestartSec=1s\n' \
    >"$root/etc/systemd/system/certmon.service.d/test-watchdog.conf"
in_ct systemctl daemon-reload
in_ct systemctl restart certmon
sleep 3 # several pings at 1 s: it stays up
[ "$(prop NRestarts)" = 0 ] || fail "restarted while healthy (NRestarts $(prop NRestarts))"
main=$(prop MainPID)
in_ct kill -STOP "$main"
for _ in $(seq 1 50); do
    [ "$(prop NRestarts)" = 1 ] && [ "$(prop ActiveState)" = active ] && break
    sleep 0.2
done
if [ "$(prop NRestarts)" = 1 ] && [ "$(prop MainPID)" != "$main" ]; then
    ok "watchdog: the stopped daemon was killed and restarted"
else
    fail "watchdog: NRestarts $(prop NRestarts), MainPID $(prop MainPID) (was $main)"
fi
in_ct journalctl -u certmon --no-pager -o cat | grep -q "Failed with result 'watchdog'" ||
    fail "no watchdog failure in the journal"
rm -r "$root/etc/systemd/system/certmon.service.d"
in_ct systemctl daemon-reload

# Stop: STOPPING=1, exit 0.
in_ct systemctl restart certmon
in_ct systemctl stop certmon
if [ "$(prop ActiveState)" = inactive ] && [ "$(prop ExecMainStatus)" = 0 ] && [ "$(prop Result)" = success ]; then
    ok "systemctl stop: exit 0"
else
    fail "stop: $(prop ActiveState), status $(prop ExecMainStatus), result $(prop Result)"
fi

if [ "$fails" -gt 0 ]; then
    echo "$fails checks failed" >&2
    exit 1
fi
echo "all service checks passed"
