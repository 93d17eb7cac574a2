# Shared setup of the benchmark scripts (sourced, not run): their command line and the certmon
# binary, a work directory removed at exit with every process started (pids), a PKI made by
# tests/integration/mkpki.sh, free loopback ports, and K openssl s_server endpoints serving the
# valid chain (ports).
# shellcheck shell=bash

bench_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pids=()
ports=()

# bench_options USAGE SPEC... -- ARGS...: the command line of a benchmark. Each SPEC is
# OPTION=VAR[:KIND]: --OPTION takes a value, stored in VAR; KIND uint wants a whole number
# above 0, uints a space-separated list of them. -h or --help prints USAGE and exits 0; an
# unknown option, a missing value or a value of the wrong kind is named on stderr with USAGE,
# exit status 2.
bench_options() {
    local usage=$1 spec opt val
    local -A var=() kind=()
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        spec=$1
        opt=--${spec%%=*}
        spec=${spec#*=}
        var[$opt]=${spec%%:*}
        kind[$opt]=
        [ "$spec" = "${spec%%:*}" ] || kind[$opt]=${spec#*:}
        shift
    done
    shift
    while [ $# -gt 0 ]; do
        case $1 in
        -h | --help)
            echo "$usage"
            exit 0
            ;;
        esac
        if [ -z "${var[$1]:-}" ]; then
            bench_usage_error "$usage" "unknown option '$1'"
        elif [ $# -lt 2 ]; then
            bench_usage_error "$usage" "$1 needs a value"
        fi
        val=$2
        case ${kind[$1]} in
        uint) [[ $val =~ ^[1-9][0-9]{0,8}$ ]] ||
            bench_usage_error "$usage" "$1 must be a whole number above 0, not '$val'" ;;
        uints) [[ $val =~ ^[1-9][0-9]{0,8}( +[1-9][0-9]{0,8})*$ ]] ||
            bench_usage_error "$usage" "$1 must be whole numbers above 0, not '$val'" ;;
        esac
        printf -v "${var[$1]}" '%s' "$val"
        shift 2
    done
}

# bench_fleet_options ARGS...: the command line of a benchmark of N targets (--targets, default
# 10000) served by K s_server endpoints (--servers, default 4), certmon from --certmon PATH.
# shellcheck disable=SC2034 # N and K are the calling script's
bench_fleet_options() {
    N=10000
    K=4
    CERTMON=
    bench_options "usage: $0 [--targets N] [--servers K] [--certmon PATH]" \
        targets=N:uint servers=K:uint certmon=CERTMON -- "$@"
    bench_certmon
}

bench_usage_error() { # USAGE MESSAGE
    echo "$(basename "$0"): $2" >&2
    echo "$1" >&2
    exit 2
}

# bench_certmon: CERTMON (a --certmon option's value, or empty) defaults to the build tree's
# binary; the script stops, status 2, when there is no executable there.
bench_certmon() {
    CERTMON=${CERTMON:-$bench_lib_dir/../../build/certmon}
    [ -x "$CERTMON" ] || {
        echo "no certmon binary at $CERTMON (build first)" >&2
        exit 2
    }
}

# bench_setup NAME: $work is a new directory /tmp/certmon-NAME.XXXXXX holding the PKI in
# $work/pki; what pids lists is killed and $work removed when the script exits.
bench_setup() {
    work=$(mktemp -d "/tmp/certmon-$1.XXXXXX")
    trap bench_cleanup EXIT
    bash "$bench_lib_dir/../integration/mkpki.sh" "$work/pki" >/dev/null 2>&1
}

bench_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_servers K: K s_server endpoints on 127.0.0.1, their ports appended to ports.
start_servers() {
    local p
    for _ in $(seq 1 "$1"); do
        p=$(free_port)
        openssl s_server -accept "127.0.0.1:$p" -cert "$work/pki/valid.pem" -key "$work/pki/leaf.key" \
            -cert_chain "$work/pki/inter.pem" -www -quiet >/dev/null 2>&1 &
        pids+=($!)
        ports+=("$p")
    done
    sleep 0.5
}

# Measuring a daemon (scripts that run `certmon run` and read /proc).
now_ms() { date +%s%3N; }
# utime + stime of a process (or /proc/PID/task/TID given as a directory), in clock ticks.
cpu_ticks() { local d=$1; [ -d "$d" ] || d=/proc/$1; awk '{ print $14 + $15 }' "$d/stat"; }
write_bytes() { awk '$1 == "write_bytes:" { print $2 }' "/proc/$1/io"; }

# wait_started LOG PID: until the daemon logs "started" (at most 30 s); fails if it exits.
wait_started() {
    for _ in $(seq 1 3000); do
        grep -q ' started' "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

# stop_daemon LABEL PID: SIGTERM, and how long until it exited.
stop_daemon() {
    local s0 rc=0
    s0=$(now_ms)
    kill -TERM "$2"
    wait "$2" || rc=$?
    echo "[$1] SIGTERM to exit: $(($(now_ms) - s0)) ms (exit status $rc)"
}
