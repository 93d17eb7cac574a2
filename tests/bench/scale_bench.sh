#!/bin/bash
# Scale benchmark (issue 14, part 5): the daemon with N endpoint targets (default: 1000,
# 20000 and 100000 in turn) against K local openssl s_server endpoints on 127.0.0.1, its
# state in SQLite. For each N it measures and prints:
#   - config-check time (whole process) and the config file's size;
#   - a first run from an empty database: time to "started", time until every target has a
#     result (everything due at once), RSS then (budget: < 200 MiB at 100,000), database
#     size, SIGTERM-to-exit time;
#   - the schedule is then spread (last_probe rewritten in a scattered order with sqlite3, so that
#     targets come due evenly at about 100 per second: interval = N / 100 s), and a second
#     run measures: start to "started" with the full database (budget < 1 s), RSS, then for
#     WINDOW seconds of steady state: results per second, daemon CPU per result and as a share
#     of a core, the CPU of the store's writer thread alone ("certmon-store"), and bytes
#     written to disk per result (/proc/PID/io write_bytes: WAL appends and checkpoints;
#     budget < 4 KiB), then SIGTERM to exit (budget < 1 s) and PRAGMA integrity_check.
# Results are counted from the daemon's debug log (one "sub=probe target=... status=" line
# each), so that nothing scrapes /metrics during the window; the log file's growth is part
# of write_bytes and is shown apart.
#
# With --leaves distinct, the 100,000 database gives every target a leaf of its own (the
# intermediate and root shared), as a real fleet has: for the memory; the steady window's
# bytes and CPU are then not a steady state (each probed target's leaf "changes" to the one
# s_server serves, a history row and a cert.changed each).
#
# usage: tests/bench/scale_bench.sh [--targets "N1 N2 ..."] [--servers K] [--window S]
#                                   [--leaves shared|distinct] [--certmon PATH]
set -euo pipefail
# As the shipped systemd unit runs the daemon (contrib/systemd/certmon.service); set
# GLIBC_TUNABLES= (empty) to measure without.
export GLIBC_TUNABLES=${GLIBC_TUNABLES-glibc.malloc.hugetlb=1}

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench_lib.sh
. "$here/bench_lib.sh"

SIZES="1000 20000 100000"
K=4
WINDOW=60
CERTMON=
LEAVES=shared
bench_options "usage: $0 [--targets \"N...\"] [--servers K] [--window S] [--leaves shared|distinct] [--certmon PATH]" \
    targets=SIZES:uints servers=K:uint window=WINDOW:uint leaves=LEAVES certmon=CERTMON -- "$@"
case $LEAVES in
shared | distinct) ;;
*) echo "--leaves is shared or distinct, not '$LEAVES'" >&2; exit 2 ;;
esac
bench_certmon
command -v sqlite3 >/dev/null || { echo "needs the sqlite3 command (Debian: sqlite3)" >&2; exit 2; }
bench_setup scale
start_servers "$K"

# One s_server on 127.0.0.1:443 for the large configurations (started once).
p443=
port443() {
    [ -n "$p443" ] && return
    if ss -ltn | grep -q '127.0.0.1:443 \|\*:443 \|0.0.0.0:443 '; then
        echo "port 443 is taken: cannot run the largest sizes" >&2
        exit 2
    fi
    openssl s_server -accept "127.0.0.1:443" -cert "$work/pki/valid.pem" -key "$work/pki/leaf.key" \
        -cert_chain "$work/pki/inter.pem" -www -quiet >/dev/null 2>&1 &
    pids+=($!)
    p443=$!
    sleep 0.5
}

# (now_ms, cpu_ticks, write_bytes, wait_started and stop_daemon: bench_lib.sh)
rss_kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
results() { grep -c 'sub=probe target=.* status=' "$1" || true; }
store_task() {
    local t
    for t in /proc/"$1"/task/*; do
        [ "$(cat "$t/comm")" = certmon-store ] && { echo "$t"; return; }
    done
}
tck=$(getconf CLK_TCK)

echo "certmon scale benchmark: $(nproc) cores, $K s_server endpoints, window ${WINDOW}s"
for N in $SIZES; do
    interval=$((N / 100))
    [ "$interval" -ge 1 ] || interval=1
    conf=$work/scale$N.conf
    db=$work/scale$N.db
    mport=$(free_port)
    if [ "$N" -le 50000 ]; then
        {
            echo "global = { interval = \"${interval}s\"; timeout = \"30s\"; concurrency = 64;"
            echo "           startup_spread = \"0s\"; posture_interval = \"off\";"
            echo "           state_file = \"$db\"; };"
            echo "log = { level = \"debug\"; };"
            echo "metrics = { listen = \"127.0.0.1:$mport\"; };"
            echo "targets = ("
            for i in $(seq 1 "$N"); do
                sep=","
                [ "$i" -eq "$N" ] && sep=""
                printf '  { name = "t%06d"; host = "localhost"; port = %s; ca_file = "%s"; labels = { team = "t%d"; }; }%s\n' \
                    "$i" "${ports[$((i % K))]}" "$work/pki/root.pem" $((i % 10)) "$sep"
            done
            echo ");"
        } >"$conf"
    else
        # The configuration files together may hold 4 MiB: 100,000 targets fit only in the
        # shortest form (no port: 443, one s_server there; no ca_file: chain.untrusted).
        port443
        {
            echo "global = { interval = \"${interval}s\"; timeout = \"30s\"; concurrency = 64;"
            echo "           startup_spread = \"0s\"; posture_interval = \"off\";"
            echo "           state_file = \"$db\"; };"
            echo "log = { level = \"debug\"; };"
            echo "metrics = { listen = \"127.0.0.1:$mport\"; };"
            echo "targets = ("
            awk -v n="$N" 'BEGIN { for (i = 1; i <= n; i++) printf "{host=\"127.0.0.1\";name=\"t%06d\";}%s\n", i, (i < n ? "," : "") }'
            echo ");"
        } >"$conf"
    fi
    echo
    echo "== $N targets (interval ${interval}s: ~100 results/s once spread; config $(wc -c <"$conf") bytes)"
    t0=$(now_ms)
    cc_cpu=$( { /usr/bin/time -f "%U %S" "$CERTMON" config-check -c "$conf" >/dev/null; } 2>&1 | tail -1)
    echo "[$N] config-check (whole process): $(($(now_ms) - t0)) ms wall, $(echo "$cc_cpu" | awk '{ printf "%d", ($1 + $2) * 1000 }') ms CPU"

    if [ "$N" -le 50000 ]; then
        # First run: an empty database filled by one round of everything due at once.
        log=$work/first$N.log
        t0=$(now_ms)
        "$CERTMON" run -c "$conf" 2>"$log" &
        pid=$!
        pids+=("$pid")
        wait_started "$log" "$pid"
        t1=$(now_ms)
        echo "[$N first] start to 'started' (empty database): $((t1 - t0)) ms"
        for _ in $(seq 1 36000); do
            [ "$(grep -c 'was=new' "$log")" -ge "$N" ] && break
            sleep 0.1
        done
        t2=$(now_ms)
        echo "[$N first] all $(grep -c 'was=new' "$log") first results in after $((t2 - t1)) ms"
        sleep 1
        echo "[$N first] RSS with every target's result: $(rss_kib "$pid" VmRSS) KiB, peak $(rss_kib "$pid" VmHWM) KiB"
        stop_daemon "$N first" "$pid"
        grep -o 'rows_written=[0-9]* commits=[0-9]*[ a-z=0-9]*' "$log" | sed "s/^/[$N first] store: /" || true
        echo "[$N first] database: $(stat -c %s "$db") bytes ($(( $(stat -c %s "$db") / N )) per target)"
    else
        # A first round of 100,000 handshakes against one s_server takes many minutes: a
        # short run probes 200 targets, and their rows are copied to every other target.
        log=$work/first$N.log
        "$CERTMON" run -c "$conf" 2>"$log" &
        pid=$!
        pids+=("$pid")
        wait_started "$log" "$pid"
        for _ in $(seq 1 600); do
            [ "$(grep -c 'was=new' "$log")" -ge 200 ] && break
            sleep 0.1
        done
        stop_daemon "$N first" "$pid"
        /usr/bin/python3 "$here/fill_state.py" "$db" "$N" "$LEAVES"
        echo "[$N first] synthetic fill: $(sqlite3 "$db" 'SELECT count(*) FROM targets') rows"
        echo "[$N first] database: $(stat -c %s "$db") bytes ($(( $(stat -c %s "$db") / N )) per target)"
    fi

    # Spread the schedule: due times evenly over one interval, in random order (as the
    # scheduler's jitter leaves them after a few rounds).
    now=$(date +%s)
    # (Both tables of schema 3: a target's newest result may still be in the log; the offset is
    # a function of the name, so that both rows of a target agree.)
    for table in targets results_a results_b; do
        sqlite3 "$db" "UPDATE $table SET last_probe = $now - $interval + 1 +
            (CAST(substr(name, 2) AS INTEGER) * 7919) % $interval;" >/dev/null
    done

    # Second run: start with the full database, then the steady state.
    log=$work/steady$N.log
    t0=$(now_ms)
    "$CERTMON" run -c "$conf" 2>"$log" &
    pid=$!
    pids+=("$pid")
    wait_started "$log" "$pid"
    t1=$(now_ms)
    echo "[$N steady] start to 'started' with the full database: $((t1 - t0)) ms wall, $(($(cpu_ticks "/proc/$pid") * 1000 / tck)) ms CPU ($(grep -o 'entries=[0-9]* loaded' "$log"))"
    echo "[$N steady] RSS after start: $(rss_kib "$pid" VmRSS) KiB"
    sleep 5
    task=$(store_task "$pid")
    r0=$(results "$log"); c0=$(cpu_ticks "/proc/$pid"); s0=$(cpu_ticks "$task"); w0=$(write_bytes "$pid")
    l0=$(stat -c %s "$log")
    m0=$(now_ms)
    sleep "$WINDOW"
    r1=$(results "$log"); c1=$(cpu_ticks "/proc/$pid"); s1=$(cpu_ticks "$task"); w1=$(write_bytes "$pid")
    l1=$(stat -c %s "$log")
    m1=$(now_ms)
    n=$((r1 - r0))
    [ "$n" -gt 0 ] || n=1
    /usr/bin/python3 - "$n" "$((c1 - c0))" "$((s1 - s0))" "$((w1 - w0))" "$((m1 - m0))" "$tck" "$N" \
        "$((l1 - l0))" <<'EOF'
import sys
n, cpu, store, wb, ms, tck, N, logb = map(int, sys.argv[1:])
sec = ms / 1000.0
print(f"[{N} steady] {n} results in {sec:.1f} s ({n / sec:.1f}/s)")
print(f"[{N} steady] daemon CPU: {cpu / tck * 1000 / n:.3f} ms per result, {cpu / tck / sec * 100:.1f} % of a core"
      " (handshakes and chain verification included)")
print(f"[{N} steady] store writer thread CPU: {store / tck * 1000 / n:.3f} ms per result, {store / tck / sec * 100:.2f} % of a core")
print(f"[{N} steady] written to disk: {wb / n / 1024:.2f} KiB per result ({wb / sec / 1024:.0f} KiB/s);"
      f" the daemon's debug log (stderr to a file, how results are counted) was {logb / n / 1024:.2f}"
      f" KiB of it: the state {(wb - logb) / n / 1024:.2f} KiB per result")
EOF
    echo "[$N steady] RSS: $(rss_kib "$pid" VmRSS) KiB, peak $(rss_kib "$pid" VmHWM) KiB"
    stop_daemon "$N steady" "$pid"
    grep -o 'rows_written=[0-9]* commits=[0-9]*[ a-z=0-9]*' "$log" | sed "s/^/[$N steady] store: /" || true
    echo "[$N steady] integrity_check: $(sqlite3 "$db" 'PRAGMA integrity_check')"
    grep -E 'level=(error|warning)' "$log" | head -3 || true
    rm -f "$db" "$db"-* "$db".notify.json "$work"/first"$N".log
done
