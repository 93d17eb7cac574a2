# Shared setup of the benchmark scripts (sourced, not run): a work directory removed at exit
# with every process started (pids), a PKI made by tests/integration/mkpki.sh, free loopback
# ports, and K openssl s_server endpoints serving the valid chain (ports).
# shellcheck shell=bash

bench_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pids=()
ports=()

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
