#!/usr/bin/env bash
# probe_bench.sh: throughput benchmark of `certmon check` against local openssl s_server
# instances, with `openssl s_time` full handshakes against the same servers as a yardstick,
# and prometheus-blackbox-exporter (tcp prober, TLS, chain verified) as the tool to beat.
# It measures and prints; it is not part of ctest.
#
# Usage: tests/bench/probe_bench.sh [--build DIR] [--probes N] [--rounds R] [--seconds S]
#                                   [--silent K] [--no-blackbox]
#   --build DIR    directory holding the certmon binary (default: build-bench in the repo);
#                  configured and built (Release, certmon target only) if the binary is missing
#   --probes N     probes per round, certmon's and blackbox's, spread round-robin over the
#                  servers (default 3000)
#   --rounds R     rounds, each a certmon run, a blackbox run and an s_time run against the
#                  same servers; the summary gives medians over the rounds (default 3)
#   --seconds S    duration of each openssl s_time client in each round (default 5)
#   --silent K     also give certmon K listeners that accept but never answer, with --timeout 3,
#                  to show that stuck probes share the loop instead of serialising it (default 0)
#   --no-blackbox  skip the prometheus-blackbox-exporter comparison
#
# One s_server per core (nproc) on distinct 127.0.0.1 ports keeps the single-threaded server
# from being the only bottleneck; certmon, blackbox and the nproc s_time clients use that same
# set. On a small noisy machine one run of each says little, so the phases alternate over
# --rounds rounds and the summary reports medians, including the median of the per-round
# ratios (each ratio compares phases that ran seconds apart under similar noise).
#
# prometheus-blackbox-exporter: taken from PATH or /usr/bin; when missing and running as root,
# installed with apt-get (Debian package prometheus-blackbox-exporter; note that on a machine
# booted with systemd the package's postinst also enables and starts its own service on
# :9115, which this script neither uses nor touches). When it cannot be had, the comparison is
# skipped with a message. Our own exporter listens on 127.0.0.1 only.
#
# Everything runs on 127.0.0.1; every process started is recorded and stopped by PID on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

build_dir=$repo/build-bench
probes=3000
rounds=3
seconds=5
silent=0
use_blackbox=1

usage() {
    sed -n '7,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

die() {
    echo "probe_bench: $*" >&2
    exit 1
}

# need_uint OPTION VALUE MIN MAX: VALUE must be an integer in [MIN, MAX].
need_uint() {
    if [[ ! $2 =~ ^[0-9]{1,9}$ ]] || (($2 < $3 || $2 > $4)); then
        die "$1 must be an integer from $3 to $4, not '$2'"
    fi
}

while (($#)); do
    case $1 in
    --build) build_dir=${2:?--build needs a directory}; shift 2 ;;
    --probes) probes=${2:?--probes needs a number}; shift 2 ;;
    --rounds) rounds=${2:?--rounds needs a number}; shift 2 ;;
    --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
    --silent) silent=${2:?--silent needs a number}; shift 2 ;;
    --no-blackbox) use_blackbox=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
need_uint --probes "$probes" 1 1000000
need_uint --rounds "$rounds" 1 100
need_uint --seconds "$seconds" 1 3600
need_uint --silent "$silent" 0 1000

for tool in openssl certtool python3 /usr/bin/time timeout; do
    command -v "$tool" >/dev/null || die "needs $tool"
done

ncpu=$(nproc)
clk_tck=$(getconf CLK_TCK)
certmon=$build_dir/certmon

# --- certmon binary: use what is there, build only when it is missing ---------------------
if [[ ! -x $certmon ]]; then
    echo "probe_bench: $certmon missing; building it (Release)" >&2
    # BUILD_TESTING=OFF: the benchmark needs only the certmon target, and skipping tests/
    # keeps the configure step independent of test sources being edited at the same time.
    cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
    cmake --build "$build_dir" -j"$ncpu" --target certmon >/dev/null
    [[ -x $certmon ]] || die "build did not produce $certmon"
fi

# --- scratch directory and process bookkeeping --------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/probe_bench.XXXXXX")
declare -A pids=() # background processes we started and have not reaped yet

# forget PID: a process that was reaped; its PID may be reused, so never signal it again.
forget() { unset "pids[$1]"; }

# running PID: true while PID (one of our unreaped children) has not exited; an exited but
# unreaped child is a zombie (state Z), which kill -0 would still report as alive.
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*")"} # after the command name: " STATE PPID ..."
    [[ $stat != " Z"* ]]
}

cleanup() {
    local pid tries left
    for pid in "${!pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    # Give them ~5 s to exit, then SIGKILL what is left, so that the wait below is bounded.
    for ((tries = 0; tries < 50; tries++)); do
        left=0
        for pid in "${!pids[@]}"; do
            if running "$pid"; then
                left=1
                break
            fi
        done
        ((left)) || break
        sleep 0.1
    done
    for pid in "${!pids[@]}"; do
        if running "$pid"; then
            echo "probe_bench: PID $pid ignored SIGTERM; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${!pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# now: wall-clock seconds with microseconds (bash 5 EPOCHREALTIME).
now() { echo "${EPOCHREALTIME/,/.}"; }

# calc EXPR: floating-point arithmetic via python3 (bash has integers only).
calc() { python3 -c "print($1)"; }

# median X...: the median of the numbers (mean of the middle two for an even count).
median() { python3 -c 'import statistics, sys; print(statistics.median(map(float, sys.argv[1:])))' "$@"; }

# range X...: "min-max" of the numbers, formatted with FMT (first argument).
range() {
    python3 -c 'import sys; f, xs = sys.argv[1], [float(x) for x in sys.argv[2:]]
print(f"{f % min(xs)}-{f % max(xs)}")' "$@"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# port_open PORT: true once something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# cpu_ticks PID...: user+system CPU of the given live processes, in clock ticks.
cpu_ticks() {
    local pid total=0 f
    for pid in "$@"; do
        # Fields after the ")" that ends the command name: state is f[0], utime f[11],
        # stime f[12] (fields 3, 14 and 15 of proc(5)).
        read -ra f < <(sed 's/.*) //' "/proc/$pid/stat")
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# --- prometheus-blackbox-exporter: find it, or install it, or skip the comparison ---------
bb_bin=
bb_skip=
if ((use_blackbox)); then
    bb_bin=$(command -v prometheus-blackbox-exporter || true)
    if [[ -z $bb_bin && -x /usr/bin/prometheus-blackbox-exporter ]]; then
        bb_bin=/usr/bin/prometheus-blackbox-exporter
    fi
    if [[ -z $bb_bin ]]; then
        if ((EUID == 0)) && command -v apt-get >/dev/null; then
            echo "probe_bench: installing prometheus-blackbox-exporter with apt-get" >&2
            # Try with the package lists as they are, then once more after refreshing them.
            apt_install() {
                DEBIAN_FRONTEND=noninteractive timeout --kill-after=10 600 \
                    apt-get install -y -q --no-install-recommends prometheus-blackbox-exporter
            }
            { apt_install || { timeout --kill-after=10 300 apt-get update -q && apt_install; }; } \
                >"$work/apt.log" 2>&1 || true
            if [[ -x /usr/bin/prometheus-blackbox-exporter ]]; then
                bb_bin=/usr/bin/prometheus-blackbox-exporter
            else
                bb_skip="apt-get install prometheus-blackbox-exporter failed: $(tail -n 1 "$work/apt.log")"
            fi
        else
            bb_skip="prometheus-blackbox-exporter is not installed (and apt-get is not usable here)"
        fi
    fi
else
    bb_skip="--no-blackbox"
fi

# --- test PKI -----------------------------------------------------------------------------
pki=$work/pki
sh "$repo/tests/integration/mkpki.sh" "$pki" >/dev/null

# --- one s_server per core ----------------------------------------------------------------
server_ports=()
server_pids=()

# start_server I: start s_server number I on a free port; retries if the port was taken
# between choosing and binding it.
start_server() {
    local i=$1 attempt port pid tries
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        openssl s_server -accept "127.0.0.1:$port" -cert "$pki/valid.pem" -key "$pki/leaf.key" \
            -cert_chain "$pki/inter.pem" -www -quiet </dev/null >"$work/server$i.log" 2>&1 &
        pid=$!
        pids[$pid]=1
        for ((tries = 0; tries < 100; tries++)); do # at most ~10 s
            if ! kill -0 "$pid" 2>/dev/null; then
                break # died, most likely the port was taken: try another
            fi
            if port_open "$port"; then
                server_ports+=("$port")
                server_pids+=("$pid")
                return 0
            fi
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        forget "$pid"
        echo "probe_bench: s_server $i attempt $attempt on port $port failed:" >&2
        cat "$work/server$i.log" >&2
    done
    die "could not start s_server $i"
}

for ((i = 0; i < ncpu; i++)); do
    start_server "$i"
done
nsrv=${#server_ports[@]}

# --- optional silent listeners: accept, then never answer ---------------------------------
silent_ports=()
if ((silent > 0)); then
    # One python3 process holds K listening sockets on ephemeral ports, accepts every
    # connection and keeps it open without a byte sent. It writes its ports to a file
    # (atomically, via rename) and exits by itself after 1 hour should cleanup fail.
    python3 -c '
import os, selectors, socket, sys, time
k, out = int(sys.argv[1]), sys.argv[2]
sel, held, ports = selectors.DefaultSelector(), [], []
for _ in range(k):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1024)
    sel.register(s, selectors.EVENT_READ)
    ports.append(s.getsockname()[1])
with open(out + ".tmp", "w") as f:
    f.write("".join(f"{p}\n" for p in ports))
os.rename(out + ".tmp", out)
deadline = time.monotonic() + 3600
while time.monotonic() < deadline:
    for key, _ in sel.select(timeout=1):
        held.append(key.fileobj.accept()[0])
' "$silent" "$work/silent.ports" &
    pids[$!]=1
    for ((tries = 0; tries < 100; tries++)); do # at most ~10 s
        [[ ! -e $work/silent.ports ]] || break
        sleep 0.1
    done
    [[ -e $work/silent.ports ]] || die "silent listeners did not start"
    mapfile -t silent_ports <"$work/silent.ports"
fi

# --- blackbox exporter: one process for all rounds ----------------------------------------
# Module bb_module: the tcp prober with TLS and our root as the only trust anchor, so it
# verifies the whole chain like certmon does. It sets the TLS server name to the target's host,
# 127.0.0.1, and Go's crypto/tls then checks that against the leaf's IP SANs (valid.pem has
# 127.0.0.1). No query_response: it handshakes, records the chain's expiry and closes.
bb_module=tls_chain
bb_concurrency=64
bb_port=
bb_pid=
bb_cfg=$work/blackbox.yml
cat >"$bb_cfg" <<EOF
modules:
  $bb_module:
    prober: tcp
    timeout: 10s
    tcp:
      tls: true
      tls_config:
        ca_file: $pki/root.pem
EOF

# The load driver: bb_concurrency threads, each with its own keep-alive HTTP connection to
# the exporter, GET /probe?module=...&target=127.0.0.1:PORT until N probes are done, the
# ports round-robin like certmon's targets. A probe counts as ok only with HTTP 200 and a
# "probe_success 1" line. Prints: ok failed wall_seconds driver_cpu_seconds. The first failed
# probe's answer, and the exporter's debug log for that target, go to FAILFILE.
cat >"$work/bb_driver.py" <<'EOF'
import http.client, os, re, sys, threading, time

port, module, n, conc = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
targets, fail_path = sys.argv[5].split(), sys.argv[6]
success = re.compile(r"^probe_success 1$", re.M)
local = threading.local()
lock = threading.Lock()
todo = iter(range(n))
counts = {"ok": 0, "failed": 0}
first_failure = []

def get(path):
    """GET over this thread's keep-alive connection: (status, body) or (None, error)."""
    for attempt in range(2):
        conn = getattr(local, "conn", None)
        reused = conn is not None
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            local.conn = None
            # Retry once only when a reused keep-alive connection was closed under us.
            stale = isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError,
                                   BrokenPipeError))
            if not (reused and stale) or attempt:
                return None, repr(e)

def worker():
    while True:
        with lock:
            i = next(todo, None)
        if i is None:
            return
        target = f"127.0.0.1:{targets[i % len(targets)]}"
        status, body = get(f"/probe?module={module}&target={target}")
        good = status == 200 and success.search(body) is not None
        with lock:
            counts["ok" if good else "failed"] += 1
            keep = not good and not first_failure
            if keep:
                first_failure.append(None)
        if keep:
            dstatus, dbody = get(f"/probe?module={module}&target={target}&debug=true")
            with open(fail_path, "w") as f:
                f.write(f"target {target}: HTTP status {status}\n{body}\n"
                        f"--- debug probe: HTTP status {dstatus}\n{dbody}\n")

c0, t0 = os.times(), time.monotonic()
threads = [threading.Thread(target=worker) for _ in range(min(conc, n))]
for t in threads:
    t.start()
for t in threads:
    t.join()
t1, c1 = time.monotonic(), os.times()
cpu = (c1.user - c0.user) + (c1.system - c0.system)
print(counts["ok"], counts["failed"], f"{t1 - t0:.6f}", f"{cpu:.3f}")
EOF

# bb_drive N OUTPREFIX: run the driver for N probes; sets bb_ok bb_failed bb_wall bb_drv_cpu.
bb_drive() {
    local n=$1 out=$2 rc=0 batches limit
    # Bound: every probe hitting the module's 10 s timeout, batch after batch, plus slack.
    batches=$(((n + bb_concurrency - 1) / bb_concurrency))
    limit=$((60 + batches * 10))
    timeout --kill-after=5 "$limit" python3 "$work/bb_driver.py" "$bb_port" "$bb_module" "$n" \
        "$bb_concurrency" "${server_ports[*]}" "$out.fail" >"$out.out" 2>"$out.err" || rc=$?
    ((rc != 124 && rc != 137)) || die "blackbox load driver did not finish within ${limit}s"
    bb_ok='' bb_failed='' bb_wall='' bb_drv_cpu=''
    read -r bb_ok bb_failed bb_wall bb_drv_cpu <"$out.out" || true
    if ((rc != 0)) || [[ -z $bb_drv_cpu ]]; then
        cat "$out.err" >&2
        die "blackbox load driver failed (exit $rc)"
    fi
}

# bb_failure_detail OUTPREFIX: print the first failed probe's answer and the exporter's log.
bb_failure_detail() {
    echo "first failed blackbox probe (first lines):" >&2
    head -n 40 "$1.fail" >&2 2>/dev/null || true
    echo "exporter log (last lines):" >&2
    tail -n 20 "$work/blackbox.log" >&2
}

if [[ -n $bb_bin ]]; then
    for attempt in 1 2 3 4 5; do
        bb_port=$(free_port)
        "$bb_bin" --config.file="$bb_cfg" --web.listen-address="127.0.0.1:$bb_port" \
            </dev/null >"$work/blackbox.log" 2>&1 &
        bb_pid=$!
        pids[$bb_pid]=1
        for ((tries = 0; tries < 100; tries++)); do # at most ~10 s
            kill -0 "$bb_pid" 2>/dev/null || break
            port_open "$bb_port" && break
            sleep 0.1
        done
        port_open "$bb_port" && break
        kill "$bb_pid" 2>/dev/null || true
        wait "$bb_pid" 2>/dev/null || true
        forget "$bb_pid"
        echo "probe_bench: blackbox exporter attempt $attempt on port $bb_port failed:" >&2
        tail -n 20 "$work/blackbox.log" >&2
        bb_pid=
    done
    if [[ -z $bb_pid ]]; then
        bb_skip="the exporter did not start (see above)"
        bb_bin=
    else
        # Warm-up, and a check of the setup: a misconfigured module must fail here, loudly,
        # not show up as a fast or slow rate later.
        bb_drive "$bb_concurrency" "$work/bbwarm"
        if ((bb_ok != bb_concurrency)); then
            bb_failure_detail "$work/bbwarm"
            die "blackbox warm-up: $bb_failed of $bb_concurrency probes failed"
        fi
    fi
fi

bb_version=
[[ -z $bb_bin ]] || bb_version=$("$bb_bin" --version 2>&1 | head -n 1)
echo "probe_bench: $ncpu cores, $nsrv s_server processes on 127.0.0.1 ports ${server_ports[*]}"
((silent == 0)) || echo "probe_bench: $silent silent listeners on ports ${silent_ports[*]}"
echo "probe_bench: certmon $("$certmon" version)"
echo "probe_bench: $(openssl version)"
if [[ -n $bb_bin ]]; then
    echo "probe_bench: $bb_version, on 127.0.0.1:$bb_port"
else
    echo "probe_bench: blackbox comparison skipped: $bb_skip"
fi
echo "probe_bench: $rounds round(s) of certmon ($probes probes)$([[ -z $bb_bin ]] || echo ", blackbox ($probes probes)"), s_time (${seconds}s)"
echo

# --- certmon ------------------------------------------------------------------------------
# Silent targets go first, so they occupy loop slots from the start while the real probes
# keep flowing through the other slots.
targets=$work/targets
{
    for port in "${silent_ports[@]}"; do
        echo "127.0.0.1:$port"
    done
    for ((i = 0; i < probes; i++)); do
        echo "127.0.0.1:${server_ports[i % nsrv]}"
    done
} >"$targets"

concurrency=64
probe_timeout=10
((silent == 0)) || probe_timeout=3
total_targets=$((probes + silent))
# Hard bound on the whole run: every probe timing out, batch after batch, plus slack.
batches=$(((total_targets + concurrency - 1) / concurrency))
run_limit=$((60 + batches * probe_timeout))

failures=() # correctness failures, by round; reported (and fatal) after the summary

# run_certmon R: one certmon run; sets cm_rate cm_cpu_ms cm_rss_mib cm_wall ok_count
# silent_timeouts and appends to failures.
run_certmon() {
    local r=$1 t0 t1 srv_ticks0 srv_ticks1 certmon_rc=0 cm_user cm_sys cm_rss_kb
    local others hs_p50 hs_p99 max_total srv_cpu_cm out=$work/out$r.json
    echo "certmon: $total_targets targets, --concurrency $concurrency --timeout $probe_timeout"
    srv_ticks0=$(cpu_ticks "${server_pids[@]}")
    t0=$(now)
    # --quick: the budget is one full handshake per probe; the posture pass (about 11 more
    # handshakes per target) is not what s_time and blackbox_exporter are compared with.
    timeout --kill-after=5 "$run_limit" /usr/bin/time -v -o "$work/time$r.txt" \
        "$certmon" check --quick --ca "$pki/root.pem" --targets "$targets" \
        --concurrency "$concurrency" --timeout "$probe_timeout" --json >"$out" \
        2>"$work/certmon$r.err" ||
        certmon_rc=$?
    t1=$(now)
    srv_ticks1=$(cpu_ticks "${server_pids[@]}")
    if [[ -s $work/certmon$r.err ]]; then
        echo "certmon stderr (first lines):"
        head -n 20 "$work/certmon$r.err"
    fi
    ((certmon_rc != 124 && certmon_rc != 137)) ||
        die "certmon did not finish within ${run_limit}s (round $r)"

    # From /usr/bin/time -v: user and system CPU seconds, peak RSS in KiB.
    cm_user='' cm_sys='' cm_rss_kb=''
    read -r cm_user cm_sys cm_rss_kb < <(awk -F': ' '
        /User time \(seconds\)/ { u = $2 }
        /System time \(seconds\)/ { s = $2 }
        /Maximum resident set size/ { r = $2 }
        END { print u, s, r }' "$work/time$r.txt")
    [[ -n $cm_rss_kb ]] || die "could not parse /usr/bin/time output: $(cat "$work/time$r.txt")"

    # Check the JSON: the N real probes must all be "ok"; the silent ones should have timed
    # out. Prints: ok-count, silent-timeouts, other-statuses, handshake median ms, p99 ms,
    # slowest total.
    read -r ok_count silent_timeouts others hs_p50 hs_p99 max_total < <(python3 -c '
import collections, json, sys
data = json.load(open(sys.argv[1]))
silent = set(sys.argv[2].split())
ok, stimeouts, other, hs, totals = 0, 0, collections.Counter(), [], []
for r in data:
    t = r.get("timing_ms") or {}
    if t.get("total") is not None:
        totals.append(t["total"])
    if str(r.get("port")) in silent:
        stimeouts += (r.get("error") or {}).get("kind") == "timeout"
    elif r.get("status") == "ok":
        ok += 1
        hs.append(t["handshake"])
    else:
        other[(r.get("status"), (r.get("error") or {}).get("kind"))] += 1
hs.sort()
q = lambda p: hs[min(len(hs) - 1, int(p * len(hs)))] if hs else float("nan")
desc = ",".join(f"{s}/{k}:{n}" for (s, k), n in other.items()) or "-"
print(ok, stimeouts, desc, f"{q(0.5):.1f}", f"{q(0.99):.1f}", f"{max(totals, default=0):.0f}")
' "$out" "${silent_ports[*]}") || die "could not parse certmon JSON output (round $r)"

    cm_wall=$(calc "$t1 - $t0")
    cm_rate=$(calc "$probes / $cm_wall")
    cm_cpu_ms=$(calc "($cm_user + $cm_sys) * 1000 / $total_targets")
    cm_rss_mib=$(calc "$cm_rss_kb / 1024")
    srv_cpu_cm=$(calc "($srv_ticks1 - $srv_ticks0) / $clk_tck")

    printf '  exit status %d; wall %.2f s; certmon CPU user %s s + sys %s s; servers CPU %.2f s (%.2f ms/probe)\n' \
        "$certmon_rc" "$cm_wall" "$cm_user" "$cm_sys" "$srv_cpu_cm" \
        "$(calc "$srv_cpu_cm * 1000 / $probes")"
    # certmon runs one loop thread: near 100% of one core means certmon itself is the limit.
    printf '  certmon used %.0f%% of one core; machine busy %.0f%% of %d cores; peak RSS %.1f MiB\n' \
        "$(calc "($cm_user + $cm_sys) / $cm_wall * 100")" \
        "$(calc "($cm_user + $cm_sys + $srv_cpu_cm) / $cm_wall / $ncpu * 100")" "$ncpu" \
        "$cm_rss_mib"
    printf '  handshake latency of ok probes: median %s ms, p99 %s ms\n' "$hs_p50" "$hs_p99"
    if ((silent > 0)); then
        printf '  silent targets: %d/%d timed out; slowest probe %s ms\n' \
            "$silent_timeouts" "$silent" "$max_total"
    fi
    [[ $others == - ]] || echo "  non-ok results among real probes (status/error:count): $others"

    # The correctness checks, every round.
    if ((ok_count != probes)); then
        failures+=("round $r: only $ok_count of $probes probes were ok (certmon exit $certmon_rc)")
    fi
    if ((silent > 0 && silent_timeouts != silent)); then
        failures+=("round $r: only $silent_timeouts of $silent silent targets timed out")
    fi
    if ((silent == 0 && certmon_rc != 0)); then
        failures+=("round $r: certmon exited $certmon_rc although every probe was ok")
    fi
}

# --- blackbox exporter --------------------------------------------------------------------
# run_blackbox R: N probes through the exporter's /probe endpoint, bb_concurrency at a time;
# sets bb_rate bb_cpu_ms bb_drv_ms and appends to failures.
run_blackbox() {
    local r=$1 ticks0 ticks1 srv0 srv1 bb_cpu srv_cpu
    echo "blackbox: $probes probes via /probe?module=$bb_module, $bb_concurrency concurrent requests (keep-alive)"
    ticks0=$(cpu_ticks "$bb_pid")
    srv0=$(cpu_ticks "${server_pids[@]}")
    bb_drive "$probes" "$work/bb$r"
    ticks1=$(cpu_ticks "$bb_pid")
    srv1=$(cpu_ticks "${server_pids[@]}")
    bb_cpu=$(calc "($ticks1 - $ticks0) / $clk_tck")
    srv_cpu=$(calc "($srv1 - $srv0) / $clk_tck")
    bb_rate=$(calc "$probes / $bb_wall")
    bb_cpu_ms=$(calc "$bb_cpu * 1000 / $probes")
    bb_drv_ms=$(calc "$bb_drv_cpu * 1000 / $probes")
    printf '  %d/%d probe_success 1 (%d failed); wall %.2f s; exporter CPU %.2f s; load driver CPU %.2f s; servers CPU %.2f s (%.2f ms/probe)\n' \
        "$bb_ok" "$probes" "$bb_failed" "$bb_wall" "$bb_cpu" "$bb_drv_cpu" "$srv_cpu" \
        "$(calc "$srv_cpu * 1000 / $probes")"
    # The exporter is multi-threaded (Go, GOMAXPROCS = cores): it may use more than one core.
    printf '  exporter used %.0f%% of one core; machine busy %.0f%% of %d cores\n' \
        "$(calc "$bb_cpu / $bb_wall * 100")" \
        "$(calc "($bb_cpu + $bb_drv_cpu + $srv_cpu) / $bb_wall / $ncpu * 100")" "$ncpu"
    if ((bb_ok != probes)); then
        bb_failure_detail "$work/bb$r"
        failures+=("round $r: only $bb_ok of $probes blackbox probes had probe_success 1 (comparison invalid)")
    fi
}

# --- openssl s_time: one client per core, each against its own server ---------------------
# Without -www, s_time sends no request ("bytes read 0"): like certmon it times only full
# handshakes and a close. -CAfile gives it the same trust anchor, so its (non-fatal) chain
# verification succeeds and does the same work as certmon's.
nclients=$ncpu

# run_stime R: sets st_rate_wall st_rate_real st_cpu_ms.
run_stime() {
    local r=$1 i pid finished srv_ticks0 srv_ticks1 st_t0 log conns real user sys wall
    local st_total=0 st_cpu=0 srv_cpu_st
    local -A client_of_pid=() client_end=() left=()
    echo "s_time: $nclients clients x ${seconds}s, -new (full handshakes)"
    srv_ticks0=$(cpu_ticks "${server_pids[@]}")
    st_t0=$(now)
    for ((i = 0; i < nclients; i++)); do
        timeout --kill-after=5 $((seconds + 60)) /usr/bin/time -f '%U %S' -o "$work/stime$r.$i.cpu" \
            openssl s_time -connect "127.0.0.1:${server_ports[i % nsrv]}" -new -time "$seconds" \
            -CAfile "$pki/root.pem" </dev/null >"$work/stime$r.$i.log" 2>&1 &
        pids[$!]=1
        client_of_pid[$!]=$i
        left[$!]=1
    done
    # Reap the clients in whatever order they finish, recording each one's end time.
    while ((${#left[@]} > 0)); do # each pass reaps one client, so at most nclients passes
        finished=
        wait -n -p finished "${!left[@]}" || true
        [[ -n $finished ]] || die "lost track of the s_time clients"
        client_end[${client_of_pid[$finished]}]=$(now)
        unset "left[$finished]"
        forget "$finished"
    done
    srv_ticks1=$(cpu_ticks "${server_pids[@]}")

    # openssl 3.0 prints, for -new:
    #   1711 connections in 1.43s; 1196.50 connections/user sec, bytes read 0
    #   1711 connections in 4 real seconds, 0 bytes read per connection
    # "real seconds" is whole seconds from time(), typically S+1 for -time S, so the rate by
    # our own wall clock per client is reported next to the one from that figure.
    st_rate_real=0 st_rate_wall=0
    for ((i = 0; i < nclients; i++)); do
        log=$work/stime$r.$i.log
        conns='' real='' user='' sys=''
        read -r conns real < <(sed -n 's/^\([0-9]*\) connections in \([0-9]*\) real seconds.*/\1 \2/p' "$log") || true
        read -r user sys <"$work/stime$r.$i.cpu" || true
        if [[ -z $conns || -z $real || $conns == 0 || $real == 0 ]]; then
            echo "s_time client $i output:" >&2
            tail -n 20 "$log" >&2
            die "s_time client $i made no connections (round $r)"
        fi
        wall=$(calc "${client_end[$i]} - $st_t0")
        printf '  client %d -> port %s: %d handshakes, %s real s (s_time), %.2f s wall, CPU %s s user + %s s sys\n' \
            "$i" "${server_ports[i % nsrv]}" "$conns" "$real" "$wall" "$user" "$sys"
        st_total=$((st_total + conns))
        st_rate_real=$(calc "$st_rate_real + $conns / $real")
        st_rate_wall=$(calc "$st_rate_wall + $conns / $wall")
        st_cpu=$(calc "$st_cpu + $user + $sys")
    done
    srv_cpu_st=$(calc "($srv_ticks1 - $srv_ticks0) / $clk_tck")
    st_cpu_ms=$(calc "$st_cpu * 1000 / $st_total")
    printf '  sum: %.0f handshakes/s by s_time real seconds, %.0f/s by wall clock\n' \
        "$st_rate_real" "$st_rate_wall"
    printf '  s_time CPU %.2f ms/handshake; servers CPU %.2f s = %.2f ms/handshake\n' \
        "$st_cpu_ms" "$srv_cpu_st" "$(calc "$srv_cpu_st * 1000 / $st_total")"
}

# --- the rounds ---------------------------------------------------------------------------
declare -a R_cm_rate=() R_cm_cpu=() R_cm_rss=() R_cm_wall=() R_ok=() R_stimeouts=()
declare -a R_st_rate=() R_st_real=() R_st_cpu=() R_ratio_st=()
declare -a R_bb_rate=() R_bb_cpu=() R_bb_drv=() R_ratio_bb=()
round_lines=()

for ((r = 1; r <= rounds; r++)); do
    echo "=== round $r/$rounds ==="
    run_certmon "$r"
    if [[ -n $bb_bin ]]; then
        run_blackbox "$r"
    fi
    run_stime "$r"

    R_cm_rate+=("$cm_rate") R_cm_cpu+=("$cm_cpu_ms") R_cm_rss+=("$cm_rss_mib")
    R_cm_wall+=("$cm_wall") R_ok+=("$ok_count") R_stimeouts+=("$silent_timeouts")
    R_st_rate+=("$st_rate_wall") R_st_real+=("$st_rate_real") R_st_cpu+=("$st_cpu_ms")
    ratio_st=$(calc "$cm_rate / $st_rate_wall")
    R_ratio_st+=("$ratio_st")
    line=$(printf 'round %d/%d: certmon %.0f probes/s, CPU %.2f ms/probe | s_time %.0f handshakes/s | certmon/s_time %.2f' \
        "$r" "$rounds" "$cm_rate" "$cm_cpu_ms" "$st_rate_wall" "$ratio_st")
    if [[ -n $bb_bin ]]; then
        ratio_bb=$(calc "$cm_rate / $bb_rate")
        R_bb_rate+=("$bb_rate") R_bb_cpu+=("$bb_cpu_ms") R_bb_drv+=("$bb_drv_ms")
        R_ratio_bb+=("$ratio_bb")
        line+=$(printf ' | blackbox %.0f probes/s, CPU %.2f ms/probe | certmon/blackbox %.2f' \
            "$bb_rate" "$bb_cpu_ms" "$ratio_bb")
    fi
    round_lines+=("$line")
    echo "$line"
    echo
done

# --- summary ------------------------------------------------------------------------------
echo "=== summary: $rounds round(s); rates and ratios are medians over the rounds (range in brackets) ==="
for line in "${round_lines[@]}"; do
    echo "  $line"
done
ok_desc="all $probes ok in every round"
for n in "${R_ok[@]}"; do
    if ((n != probes)); then
        ok_desc="ok per round: $(IFS=,; echo "${R_ok[*]}") of $probes"
    fi
done
printf 'certmon:   %d probes/round, %.0f probes/s [%s], CPU %.2f ms/probe [%s], peak RSS %.1f MiB (max over rounds), %s\n' \
    "$probes" "$(median "${R_cm_rate[@]}")" "$(range %.0f "${R_cm_rate[@]}")" \
    "$(median "${R_cm_cpu[@]}")" "$(range %.2f "${R_cm_cpu[@]}")" \
    "$(python3 -c 'import sys; print(max(map(float, sys.argv[1:])))' "${R_cm_rss[@]}")" \
    "$ok_desc"
if ((silent > 0)); then
    printf 'silent:    %d never-answering targets (--timeout %d) in each certmon run: runs took %s s, timed out %s/%d (one after another they would take %d s)\n' \
        "$silent" "$probe_timeout" "$(range %.1f "${R_cm_wall[@]}")" \
        "$(IFS=,; echo "${R_stimeouts[*]}")" "$silent" $((silent * probe_timeout))
fi
printf 's_time:    %d clients x %ds, %.0f handshakes/s [%s] (%.0f/s by its whole "real seconds"), CPU %.2f ms/handshake\n' \
    "$nclients" "$seconds" "$(median "${R_st_rate[@]}")" "$(range %.0f "${R_st_rate[@]}")" \
    "$(median "${R_st_real[@]}")" "$(median "${R_st_cpu[@]}")"
if [[ -n $bb_bin ]]; then
    printf 'blackbox:  %d probes/round, %d concurrent, %.0f probes/s [%s], exporter CPU %.2f ms/probe [%s] (+ load driver %.2f ms/probe)\n' \
        "$probes" "$bb_concurrency" "$(median "${R_bb_rate[@]}")" "$(range %.0f "${R_bb_rate[@]}")" \
        "$(median "${R_bb_cpu[@]}")" "$(range %.2f "${R_bb_cpu[@]}")" "$(median "${R_bb_drv[@]}")"
else
    echo "blackbox:  comparison skipped: $bb_skip"
fi
not_comparable=
if ((silent > 0)); then
    not_comparable=$(printf ' (not comparable: each certmon run includes the %d s wait for the silent targets)' \
        "$probe_timeout")
fi
printf 'ratio:     certmon / s_time   = %.2f [%s]%s\n' \
    "$(median "${R_ratio_st[@]}")" "$(range %.2f "${R_ratio_st[@]}")" "$not_comparable"
if [[ -n $bb_bin ]]; then
    ratio_bb=$(median "${R_ratio_bb[@]}")
    if [[ -n $not_comparable ]]; then
        verdict="not comparable: each certmon run includes the $probe_timeout s wait for the silent targets"
    else
        verdict="DESIGN target >= 1.50: $(python3 -c "print('met' if $ratio_bb >= 1.5 else 'NOT met')")"
    fi
    printf 'ratio:     certmon / blackbox = %.2f [%s] (%s)\n' \
        "$ratio_bb" "$(range %.2f "${R_ratio_bb[@]}")" "$verdict"
fi

# Fail loudly (after printing) if certmon did not verify every real probe as OK, or the
# comparison run was not valid, in any round.
if ((${#failures[@]} > 0)); then
    for f in "${failures[@]}"; do
        echo "probe_bench: FAILED: $f" >&2
    done
    exit 1
fi
