#!/bin/sh
# Installs every Debian 12 package that certmon's build and test suite need.
# Idempotent and non-interactive; uses sudo when not run as root.
set -eu

PACKAGES="
build-essential cmake pkg-config
libgnutls28-dev libuv1-dev libcurl4-gnutls-dev libconfig-dev libjansson-dev
libmicrohttpd-dev libcunit1-dev libc-ares-dev libgmp-dev libsqlite3-dev
ca-certificates gnutls-bin openssl python3 iproute2 procps time postgresql
prometheus prometheus-alertmanager wrk curl python3-aiosmtpd
clang libclang-rt-14-dev
"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "install-deps.sh: all packages present"
    exit 0
fi

# Root is needed only to install what is missing.
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-deps.sh: missing:$missing; run as root or install sudo" >&2
    exit 1
fi

echo "install-deps.sh: installing:$missing"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
