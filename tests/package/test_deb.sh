#!/bin/sh
# The Debian package as a user and a Debian developer would check it: build it with the
# package target, then read it with dpkg-deb (control fields, runtime Depends against the
# libraries the binary really links, files, conffiles, maintainer scripts), check the packaged
# configuration with `certmon config-check`, verify the systemd unit and its exposure, run
# lintian (no error, no warning), and unpack it into an empty dpkg root with `dpkg --root`.
# The full install with maintainer scripts into a Debian 12 root is
# tests/package/install_root.sh (needs debootstrap and a mirror; not part of ctest).
#
# usage: test_deb.sh BUILD_DIR VERSION
set -eu

build=$1
version=$2
fails=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}
ok() {
    echo "ok: $*"
}

tmp=$(mktemp -d /tmp/certmon-deb-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# ---- Build ----
rm -f "$build"/certmon_*.deb
if ! cmake --build "$build" --target package >"$tmp/cpack.log" 2>&1; then
    cat "$tmp/cpack.log" >&2
    fail "the package target failed"
    exit 1
fi
arch=$(dpkg --print-architecture)
deb="$build/certmon_${version}-1_${arch}.deb"
[ -f "$deb" ] || { fail "no $deb"; exit 1; }
ok "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"

# ---- Control fields ----
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = certmon ] || fail "Package is '$(field Package)'"
[ "$(field Version)" = "${version}-1" ] || fail "Version is '$(field Version)'"
[ "$(field Architecture)" = "$arch" ] || fail "Architecture is '$(field Architecture)'"
depends=$(field Depends)
echo "Depends: $depends"
for p in adduser ca-certificates procps; do
    echo "$depends" | grep -Eq "(^|, )$p( |,|$)" || fail "Depends lacks $p"
done
# Every shared library the binary needs comes from a package named in Depends.
dpkg-deb -x "$deb" "$tmp/root"
needed=$(objdump -p "$tmp/root/usr/bin/certmon" | awk '/NEEDED/ {print $2}')
[ -n "$needed" ] || fail "objdump found no NEEDED libraries"
for lib in $needed; do
    path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|,/ {print $NF; exit}')
    # dpkg knows a file by the path its package ships it at: /lib/... or /usr/lib/... (merged /usr).
    pkg=$({ dpkg -S "$path" || dpkg -S "$(readlink -f "$path")"; } 2>/dev/null | head -1 | cut -d: -f1)
    [ -n "$pkg" ] || { fail "no package owns $lib ($path)"; continue; }
    if echo "$depends" | grep -Eq "(^|, )$pkg( |,|$)"; then
        ok "$lib -> $pkg in Depends"
    else
        fail "$lib comes from $pkg, which Depends does not name"
    fi
done

# ---- Files ----
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/files"
for f in /usr/bin/certmon /etc/certmon/certmon.conf /lib/systemd/system/certmon.service \
    /usr/share/man/man1/certmon.1.gz /usr/share/man/man5/certmon.conf.5.gz \
    /usr/share/bash-completion/completions/certmon /usr/share/doc/certmon/copyright \
    /usr/share/doc/certmon/changelog.Debian.gz /usr/share/doc/certmon/README.md \
    /usr/share/doc/certmon/configuration.md /usr/share/doc/certmon/findings.md; do
    grep -qx "$f" "$tmp/files" || fail "the package lacks $f"
done
# Nothing outside the Debian layout (no /usr/local, no build paths, no test programs).
if grep -Ev '^/(etc/certmon|lib/systemd/system|usr/bin|usr/share/(man|doc|bash-completion|lintian))(/|$)' \
    "$tmp/files" | grep -Ev '^/(etc|lib|lib/systemd|usr|usr/share)/?$'; then
    fail "files outside the expected directories (above)"
fi
[ "$(grep -c '^/usr/bin/.' "$tmp/files")" -eq 1 ] || fail "more than certmon in /usr/bin"
listing=$(dpkg-deb -c "$deb")
echo "$listing" | grep -q '^-rwxr-xr-x root/root .* ./usr/bin/certmon$' ||
    fail "/usr/bin/certmon is not root-owned 0755"
if objdump -h "$tmp/root/usr/bin/certmon" | grep -q '\.debug_info'; then
    fail "/usr/bin/certmon is not stripped"
fi
zcat "$tmp/root/usr/share/man/man1/certmon.1.gz" | grep -q '^\.SH CHECK OPTIONS' ||
    fail "certmon.1.gz is not the built man page"
"$tmp/root/usr/bin/certmon" version | grep -q "^certmon $version " ||
    fail "the packaged binary does not print its version"
ok "files in place"

# ---- Conffiles and maintainer scripts ----
dpkg-deb -e "$deb" "$tmp/control"
[ "$(cat "$tmp/control/conffiles")" = /etc/certmon/certmon.conf ] ||
    fail "conffiles is '$(cat "$tmp/control/conffiles" 2>/dev/null)'"
for s in postinst prerm postrm; do
    [ -x "$tmp/control/$s" ] || fail "no executable $s"
    sh -n "$tmp/control/$s" || fail "$s does not parse"
done
grep -q 'adduser --system --group' "$tmp/control/postinst" ||
    fail "postinst does not create the certmon system user"
grep -q 'chown certmon:certmon /var/lib/certmon' "$tmp/control/postinst" ||
    fail "postinst does not make /var/lib/certmon"
grep -q 'deb-systemd-helper enable certmon.service' "$tmp/control/postinst" ||
    fail "postinst does not enable the service"
grep -q 'rm -rf /var/lib/certmon' "$tmp/control/postrm" || fail "postrm does not purge the state"
ok "conffiles and maintainer scripts"

# ---- The packaged configuration ----
conf="$tmp/root/etc/certmon/certmon.conf"
grep -q '^    state_file = "/var/lib/certmon/certmon.db";$' "$conf" ||
    fail "the packaged configuration does not keep its state in /var/lib/certmon"
# Checked as the daemon would load it, with the state directory moved to one that exists.
sed "s|/var/lib/certmon/certmon.db|$tmp/certmon.db|" "$conf" >"$tmp/certmon.conf"
if out=$("$tmp/root/usr/bin/certmon" config-check -c "$tmp/certmon.conf" 2>&1); then
    ok "config-check: $out"
else
    fail "config-check of the packaged configuration: $out"
fi

# ---- The systemd unit ----
unit="$tmp/root/lib/systemd/system/certmon.service"
# shellcheck disable=SC2016 # $MAINPID is systemd's, literally.
for line in Type=notify 'ExecReload=/bin/kill -HUP $MAINPID' StateDirectory=certmon \
    User=certmon ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes \
    CapabilityBoundingSet= SystemCallFilter=@system-service WatchdogSec=60s; do
    grep -qxF "$line" "$unit" || fail "the unit lacks $line"
done
# verify needs the ExecStart binary to exist: the packaged one, at its unpacked path.
mkdir "$tmp/unit"
sed "s|/usr/bin/certmon|$tmp/root/usr/bin/certmon|" "$unit" >"$tmp/unit/certmon.service"
if out=$(cd "$tmp/unit" && systemd-analyze verify --man=no certmon.service 2>&1) && [ -z "$out" ]; then
    ok "systemd-analyze verify: clean"
else
    fail "systemd-analyze verify: $out"
fi
exposure=$(systemd-analyze security --offline=true "$unit" 2>/dev/null |
    sed -n 's/.*Overall exposure level for certmon.service: \([0-9.]*\).*/\1/p')
if [ -n "$exposure" ] && awk -v e="$exposure" 'BEGIN {exit !(e <= 2.0)}'; then
    ok "systemd-analyze security: exposure $exposure"
else
    fail "systemd-analyze security: exposure '$exposure' (want <= 2.0)"
fi

# ---- lintian ----
lintian --no-tag-display-limit "$deb" >"$tmp/lintian" 2>&1 || true
if grep -E '^[EW]: ' "$tmp/lintian"; then
    fail "lintian reports errors or warnings (above)"
else
    ok "lintian: no errors, no warnings ($(grep -c '^[IPX]: ' "$tmp/lintian" || true) info tags)"
fi

# ---- dpkg --root: unpack into an empty dpkg database ----
r="$tmp/dpkgroot"
mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates"
touch "$r/var/lib/dpkg/status" "$r/var/lib/dpkg/available"
if dpkg --root="$r" --force-depends --force-not-root --force-script-chrootless \
    --unpack "$deb" >"$tmp/dpkg.log" 2>&1; then
    dpkg --root="$r" -s certmon >"$tmp/status"
    grep -q '^Status: install ok unpacked$' "$tmp/status" || fail "dpkg status: $(cat "$tmp/status")"
    grep -Eq '^ /etc/certmon/certmon.conf ([0-9a-f]{32}|newconffile)$' "$tmp/status" ||
        fail "dpkg did not register the conffile"
    [ -x "$r/usr/bin/certmon" ] || fail "dpkg --root did not unpack /usr/bin/certmon"
    ok "dpkg --root --unpack"
else
    cat "$tmp/dpkg.log" >&2
    fail "dpkg --root --unpack failed"
fi

if [ "$fails" -gt 0 ]; then
    echo "$fails checks failed" >&2
    exit 1
fi
echo "all package checks passed"
