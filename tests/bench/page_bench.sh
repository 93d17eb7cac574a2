#!/bin/bash
# Status page benchmark (issue 16): the daemon with N endpoint targets (default 10,000) plus 50
# "hot" ones probed every second, against K local openssl s_server endpoints on 127.0.0.1.
# Once every target has a result it prints:
#   - GET / (urgency order, one page of web.page_size rows: default 500), GET / with a text
#     filter, GET / sorted by name, GET /target/NAME and GET /badge/NAME.svg: curl time_total
#     (render and transfer over loopback), 5 requests each, spaced past the render pacing;
#   - the same list with page_size = 10000 (every target on one page: the budget's case,
#     < 100 ms), after a reload;
#   - hot targets' probes done in 10 s, alone and while `wrk -c2` asks for / nonstop (the page
#     must not starve the probes: the renders are paced like /metrics).
# usage: tests/bench/page_bench.sh [--targets N] [--servers K] [--certmon PATH]
# A release build is what the budget is about: cmake -DCMAKE_BUILD_TYPE=Release.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench_lib.sh
. "$here/bench_lib.sh"

bench_fleet_options "$@"
command -v wrk >/dev/null || { echo "needs wrk (Debian: wrk)" >&2; exit 2; }
bench_setup pbench
start_servers "$K"
mport=$(free_port)

write_conf() { # page_size
    {
        echo "global = { interval = \"1h\"; timeout = \"30s\"; concurrency = 64;"
        echo "           startup_spread = \"0s\"; posture_interval = \"off\"; revocation = \"off\"; };"
        echo "log = { level = \"debug\"; };"
        echo "metrics = { listen = \"127.0.0.1:$mport\"; page_size = $1; };"
        echo "targets = ("
        for i in $(seq 1 50); do
            printf '  { name = "hot%02d"; host = "localhost"; port = %s; ca_file = "%s"; interval = "1s"; },\n' \
                "$i" "${ports[$((i % K))]}" "$work/pki/root.pem"
        done
        for i in $(seq 1 "$N"); do
            sep=","
            [ "$i" -eq "$N" ] && sep=""
            printf '  { name = "t%05d"; host = "localhost"; port = %s; ca_file = "%s"; labels = { team = "t%d"; }; }%s\n' \
                "$i" "${ports[$((i % K))]}" "$work/pki/root.pem" $((i % 10)) "$sep"
        done
        echo ");"
    } >"$work/bench.conf.new"
    mv "$work/bench.conf.new" "$work/bench.conf"
}

probes_total() {
    curl -s "http://127.0.0.1:$mport/metrics" |
        awk '/^certmon_probes_total/ { s += $2 } END { printf "%d\n", s }'
}

timed() { # label path
    echo "$1:"
    for _ in 1 2 3 4 5; do
        sleep 0.4
        curl -s -o /dev/null -w '  %{time_total} s, %{size_download} bytes, HTTP %{http_code}\n' \
            "http://127.0.0.1:$mport$2"
    done
}

echo "certmon status page benchmark: $N+50 targets on $K local s_server endpoints, $(nproc) cores"
write_conf 500
log=$work/run.log
"$CERTMON" run -c "$work/bench.conf" 2>"$log" &
pid=$!
pids+=("$pid")
for _ in $(seq 1 600); do grep -q ' started' "$log" && break; sleep 0.05; done
for _ in $(seq 1 1200); do
    [ "$(grep -c 'was=new' "$log")" -ge $((N + 50)) ] && break
    sleep 0.1
done
echo "all $(grep -c 'was=new' "$log") first results in"
timed "GET / (page_size 500, urgency order)" "/"
timed "GET /?q=t0999 (text filter)" "/?q=t0999"
timed "GET /?sort=name&page=3" "/?sort=name&page=3"
timed "GET /target/t00042" "/target/t00042"
timed "GET /badge/t00042.svg" "/badge/t00042.svg"
write_conf 10000
kill -HUP "$pid"
sleep 3
timed "GET / with page_size 10000 (every target on one page)" "/"
a=$(probes_total); sleep 10; b=$(probes_total)
echo "hot probes done in 10 s, nobody reading: $((b - a)) (50 every 1 s: 500 expected)"
wrk -t1 -c2 -d10s --timeout 10s "http://127.0.0.1:$mport/" >"$work/wrk.txt" 2>&1 &
wpid=$!
c=$(probes_total); sleep 10; d=$(probes_total)
wait "$wpid" || true
echo "hot probes done in 10 s while wrk -c2 asks for / (10,050 rows per page) nonstop: $((d - c))"
grep -E 'Latency|Requests/sec|Non-2xx' "$work/wrk.txt" | sed 's/^/  wrk: /'
echo "RSS: $(awk '$1 == "VmRSS:" { print $2 }' /proc/$pid/status) KiB, peak: $(awk '$1 == "VmHWM:" { print $2 }' /proc/$pid/status) KiB"
kill -TERM "$pid"; wait "$pid" || true
