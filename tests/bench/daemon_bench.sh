#!/bin/bash
# Daemon benchmark: N configured targets (default 10000) against local openssl s_server
# endpoints on 127.0.0.1. Measures and prints: config load time (config-check and the
# daemon's own start), time until every target has a result, resident memory (now and peak)
# once every result is in, state file size and write, shutdown time, and the same after a
# restart that loads the state back. Then /metrics: render time and size with N targets in
# the state, and wrk against /metrics while 50 targets are probed every second, comparing the
# probes done in 10 s with and without that load (wrk is the Debian package).
#
# usage: tests/bench/daemon_bench.sh [--targets N] [--servers K] [--certmon PATH]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench_lib.sh
. "$here/bench_lib.sh"

bench_fleet_options "$@"
bench_setup dbench
start_servers "$K"
mport=$(free_port)

# Ten thousand targets, each its own name, spread over the K servers; posture passes off so
# that the run measures the daemon, not s_server's accept loop.
{
    echo "global = { interval = \"1h\"; timeout = \"30s\"; concurrency = 64;"
    echo "           startup_spread = \"0s\"; posture_interval = \"off\";"
    echo "           state_file = \"$work/state.json\"; };"
    echo "log = { level = \"debug\"; };"
    echo "metrics = { listen = \"127.0.0.1:$mport\"; };"
    echo "targets = ("
    # Fifty hot targets probed every second, for the /metrics-under-load phase.
    for i in $(seq 1 50); do
        printf '  { name = "hot%02d"; host = "localhost"; port = %s; ca_file = "%s"; interval = "1s"; },\n' \
            "$i" "${ports[$((i % K))]}" "$work/pki/root.pem"
    done
    for i in $(seq 1 "$N"); do
        p=${ports[$((i % K))]}
        sep=","
        [ "$i" -eq "$N" ] && sep=""
        printf '  { name = "t%05d"; host = "localhost"; port = %s; ca_file = "%s"; labels = { team = "t%d"; }; }%s\n' \
            "$i" "$p" "$work/pki/root.pem" $((i % 10)) "$sep"
    done
    echo ");"
} >"$work/bench.conf"

now_ms() { date +%s%3N; }
rss_kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

echo "certmon daemon benchmark: $N targets on $K local s_server endpoints, $(nproc) cores"
echo "config: $(wc -c <"$work/bench.conf") bytes"

t0=$(now_ms)
"$CERTMON" config-check -c "$work/bench.conf" >/dev/null
t1=$(now_ms)
echo "config-check (whole process, credentials included): $((t1 - t0)) ms"

run_daemon() { # label
    local label=$1 log=$work/$1.log
    : >"$log"
    local start
    start=$(now_ms)
    "$CERTMON" run -c "$work/bench.conf" 2>"$log" &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 600); do grep -q ' started' "$log" && break; sleep 0.05; done
    local started
    started=$(now_ms)
    echo "[$label] process start to 'started' (config, credentials, state load): $((started - start)) ms"
    echo "[$label] RSS after start: $(rss_kib "$pid" VmRSS) KiB"
    # Every target's first result logs one "was=new" line (first start) - on a restart the
    # targets keep their schedule and are not probed again, so only the state is measured.
    if [ "$label" = first ]; then
        for _ in $(seq 1 1200); do
            [ "$(grep -c 'was=new' "$log")" -ge $((N + 50)) ] && break
            sleep 0.1
        done
        local done_at
        done_at=$(now_ms)
        echo "[$label] all $(grep -c 'was=new' "$log") results in after $((done_at - started)) ms" \
            "($(( N * 1000 / (done_at - started + 1) )) probes/s)"
        sleep 3 # the debounced state write
    fi
    echo "[$label] RSS now: $(rss_kib "$pid" VmRSS) KiB, peak: $(rss_kib "$pid" VmHWM) KiB"
    echo "[$label] state file: $(wc -c <"$work/state.json" 2>/dev/null || echo 0) bytes"
    local s0
    s0=$(now_ms)
    kill -TERM "$pid"
    wait "$pid" || echo "[$label] exit status $?"
    echo "[$label] SIGTERM to exit: $(($(now_ms) - s0)) ms"
    grep -E 'level=(error|warning)' "$log" | grep -v 'was=' | head -5 || true
    # The state writes: time on the loop (snapshot) and on the thread pool (write + fsync).
    grep -o 'snapshot_ms=[0-9.]* write_ms=[0-9.]*' "$log" | tail -3 | sed "s/^/[$label] state write: /" || true
}

probes_total() {
    curl -s "http://127.0.0.1:$mport/metrics" | awk '/^certmon_probes_total/ { s += $2 } END { print s + 0 }'
}

metrics_phase() {
    local log=$work/metrics.log
    "$CERTMON" run -c "$work/bench.conf" 2>"$log" &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 600); do grep -q ' started' "$log" && break; sleep 0.05; done
    sleep 3
    echo "[metrics] /metrics with $N+50 targets in the state (5 scrapes 0.3 s apart, past the"
    echo "          250 ms pacing; curl time_total: render and transfer over loopback):"
    for _ in 1 2 3 4 5; do
        sleep 0.3
        curl -s -o /dev/null -w '  %{time_total} s, %{size_download} bytes, HTTP %{http_code}\n' \
            "http://127.0.0.1:$mport/metrics"
    done
    echo "[metrics] RSS after the scrapes: $(rss_kib "$pid" VmRSS) KiB, peak: $(rss_kib "$pid" VmHWM) KiB"
    local a b c d
    a=$(probes_total); sleep 10; b=$(probes_total)
    echo "[metrics] probes done in 10 s without scrapes: $((b - a)) (50 targets every 1 s: 500 expected)"
    wrk -t1 -c2 -d10s --timeout 10s "http://127.0.0.1:$mport/metrics" >"$work/wrk.txt" 2>&1 &
    local wpid=$!
    c=$(probes_total); sleep 10; d=$(probes_total)
    wait "$wpid" || true
    echo "[metrics] probes done in 10 s while wrk -c2 scrapes /metrics nonstop: $((d - c))"
    grep -E 'Latency|Requests/sec|Transfer/sec' "$work/wrk.txt" | sed 's/^/[metrics] wrk: /'
    echo "[metrics] RSS after wrk: $(rss_kib "$pid" VmRSS) KiB, peak: $(rss_kib "$pid" VmHWM) KiB"
    kill -TERM "$pid"; wait "$pid" || true
}

run_daemon first
run_daemon restart
metrics_phase
