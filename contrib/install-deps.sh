#!/bin/sh
# Installs the Debian 12 packages certmon needs.
#
#   contrib/install-deps.sh           what building and running certmon need (the compiler,
#                                     the libraries' -dev packages, scdoc for the man pages)
#   contrib/install-deps.sh --tests   and what the test suite, the fuzzers and the package
#                                     checks need: CUnit, real servers (openssl, gnutls-bin,
#                                     PostgreSQL, Prometheus, Alertmanager, aiosmtpd, dnsmasq
#                                     from dnsmasq-base: the binary, no service), wrk,
#                                     clang, lintian, ...
#
# The servers only the tests use are installed with --tests alone: on a machine that runs
# systemd, Debian's postgresql, prometheus and prometheus-alertmanager packages enable and
# start their services (ports 5432, 9090, 9093) as they install. The tests start their own
# instances on free loopback ports and never need those services.
#
# Idempotent and non-interactive; uses sudo when not run as root.
set -eu

usage() {
    echo "usage: $0 [--tests] [--print]" >&2
    echo "  --tests   also the packages the test suite needs" >&2
    echo "  --print   print the package list and exit" >&2
}

BUILD_PACKAGES="
build-essential cmake pkg-config scdoc
libgnutls28-dev libuv1-dev libcurl4-gnutls-dev libconfig-dev libjansson-dev
libmicrohttpd-dev libc-ares-dev libgmp-dev libsqlite3-dev libyaml-dev zlib1g-dev
ca-certificates
"

TEST_PACKAGES="
libcunit1-dev
gnutls-bin openssl python3 iproute2 procps time curl sqlite3 dnsmasq-base
postgresql prometheus prometheus-alertmanager wrk python3-aiosmtpd python3-jsonschema
clang libclang-rt-14-dev
chromium chromium-driver python3-selenium
dpkg-dev lintian man-db groff-base bsdextrautils bash-completion systemd debootstrap
openjdk-17-jre-headless
"

tests=0
print=0
for arg in "$@"; do
    case "$arg" in
    --tests) tests=1 ;;
    --print) print=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "install-deps.sh: unknown argument '$arg'" >&2
        usage
        exit 2
        ;;
    esac
done

PACKAGES="$BUILD_PACKAGES"
if [ "$tests" -eq 1 ]; then
    PACKAGES="$PACKAGES $TEST_PACKAGES"
fi

if [ "$print" -eq 1 ]; then
    # shellcheck disable=SC2086
    printf '%s\n' $PACKAGES
    exit 0
fi

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
