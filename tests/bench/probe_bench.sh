#!/usr/bin/env bash
# probe_bench.sh: throughput benchmark of `certmon check` against local openssl s_server
# instances, with `openssl s_time` full handshakes against the same servers as a yardstick.
# It measures and prints; it is not part of ctest.
#
# Usage: tests/bench/probe_bench.sh [--build DIR] [--probes N] [--seconds S] [--silent K]
#   --build DIR   directory holding the certmon binary (default: build-bench in the repo);
#                 configured and built (Release, certmon target only) if the binary is missing
#   --probes N    certmon probes, spread round-robin over the servers (default 3000)
#   --seconds S   duration of each openssl s_time client (default 10)
#   --silent K    also probe K listeners that accept but never answer, with --timeout 3, to
#                 show that stuck probes share the loop instead of serialising it (default 0)
#
# One s_server per core (nproc) on distinct 127.0.0.1 ports keeps the single-threaded server
# from being the only bottleneck; certmon and the nproc s_time clients use that same set.
# Everything runs on 127.0.0.1; every process started is recorded and stopped by PID on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

build_dir=$repo/build-bench
probes=3000
seconds=10
silent=0

usage() {
    sed -n '5,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
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
    --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
    --silent) silent=${2:?--silent needs a number}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
need_uint --probes "$probes" 1 1000000
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

cleanup() {
    local pid
    for pid in "${!pids[@]}"; do
        kill "$pid" 2>/dev/null || true
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
    # (atomically, via rename) and exits by itself after 15 minutes should cleanup fail.
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
deadline = time.monotonic() + 900
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

echo "probe_bench: $ncpu cores, $nsrv s_server processes on 127.0.0.1 ports ${server_ports[*]}"
((silent == 0)) || echo "probe_bench: $silent silent listeners on ports ${silent_ports[*]}"
echo "probe_bench: certmon $("$certmon" version)"
echo "probe_bench: $(openssl version)"
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

echo "certmon: $total_targets targets, --concurrency $concurrency --timeout $probe_timeout"
srv_ticks0=$(cpu_ticks "${server_pids[@]}")
t0=$(now)
certmon_rc=0
timeout --kill-after=5 "$run_limit" /usr/bin/time -v -o "$work/time.txt" \
    "$certmon" check --ca "$pki/root.pem" --targets "$targets" --concurrency "$concurrency" \
    --timeout "$probe_timeout" --json >"$work/out.json" 2>"$work/certmon.err" ||
    certmon_rc=$?
t1=$(now)
srv_ticks1=$(cpu_ticks "${server_pids[@]}")
if [[ -s $work/certmon.err ]]; then
    echo "certmon stderr (first lines):"
    head -n 20 "$work/certmon.err"
fi
((certmon_rc != 124 && certmon_rc != 137)) || die "certmon did not finish within ${run_limit}s"

# From /usr/bin/time -v: user and system CPU seconds, peak RSS in KiB.
read -r cm_user cm_sys cm_rss_kb < <(awk -F': ' '
    /User time \(seconds\)/ { u = $2 }
    /System time \(seconds\)/ { s = $2 }
    /Maximum resident set size/ { r = $2 }
    END { print u, s, r }' "$work/time.txt")
[[ -n $cm_rss_kb ]] || die "could not parse /usr/bin/time output: $(cat "$work/time.txt")"

# Check the JSON: the N real probes must all be "ok"; the silent ones should have timed out.
# Prints: ok-count, silent-timeouts, other-statuses, handshake median ms, p99 ms, slowest total.
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
' "$work/out.json" "${silent_ports[*]}") || die "could not parse certmon JSON output"

cm_wall=$(calc "$t1 - $t0")
cm_rate=$(calc "$probes / $cm_wall")
cm_cpu_ms=$(calc "($cm_user + $cm_sys) * 1000 / $total_targets")
cm_rss_mib=$(calc "$cm_rss_kb / 1024")
srv_cpu_cm=$(calc "($srv_ticks1 - $srv_ticks0) / $clk_tck")

printf '  exit status %d; wall %.2f s; certmon CPU user %s s + sys %s s; servers CPU %.2f s\n' \
    "$certmon_rc" "$cm_wall" "$cm_user" "$cm_sys" "$srv_cpu_cm"
# certmon runs one loop thread: near 100% of one core means certmon itself is the limit.
printf '  certmon used %.0f%% of one core; machine busy %.0f%% of %d cores\n' \
    "$(calc "($cm_user + $cm_sys) / $cm_wall * 100")" \
    "$(calc "($cm_user + $cm_sys + $srv_cpu_cm) / $cm_wall / $ncpu * 100")" "$ncpu"
printf '  handshake latency of ok probes: median %s ms, p99 %s ms\n' "$hs_p50" "$hs_p99"
if ((silent > 0)); then
    printf '  silent targets: %d/%d timed out; slowest probe %s ms\n' \
        "$silent_timeouts" "$silent" "$max_total"
fi
[[ $others == - ]] || echo "  non-ok results among real probes (status/error:count): $others"
echo

# --- openssl s_time: one client per core, each against its own server ---------------------
# Without -www, s_time sends no request ("bytes read 0"): like certmon it times only full
# handshakes and a close. -CAfile gives it the same trust anchor, so its (non-fatal) chain
# verification succeeds and does the same work as certmon's.
nclients=$ncpu
echo "s_time: $nclients clients x ${seconds}s, -new (full handshakes)"
declare -A client_of_pid=() client_end=()
srv_ticks0=$(cpu_ticks "${server_pids[@]}")
st_t0=$(now)
for ((i = 0; i < nclients; i++)); do
    timeout --kill-after=5 $((seconds + 60)) /usr/bin/time -f '%U %S' -o "$work/stime$i.cpu" \
        openssl s_time -connect "127.0.0.1:${server_ports[i % nsrv]}" -new -time "$seconds" \
        -CAfile "$pki/root.pem" </dev/null >"$work/stime$i.log" 2>&1 &
    pids[$!]=1
    client_of_pid[$!]=$i
done
# Reap the clients in whatever order they finish, recording each one's end time.
declare -A running=()
for pid in "${!client_of_pid[@]}"; do
    running[$pid]=1
done
while ((${#running[@]} > 0)); do # each pass reaps one client, so at most nclients passes
    finished=
    wait -n -p finished "${!running[@]}" || true
    [[ -n $finished ]] || die "lost track of the s_time clients"
    client_end[${client_of_pid[$finished]}]=$(now)
    unset "running[$finished]"
    forget "$finished"
done
srv_ticks1=$(cpu_ticks "${server_pids[@]}")

# openssl 3.0 prints, for -new:
#   1711 connections in 1.43s; 1196.50 connections/user sec, bytes read 0
#   1711 connections in 4 real seconds, 0 bytes read per connection
# "real seconds" is whole seconds from time(), typically S+1 for -time S, so the rate by
# our own wall clock per client is reported next to the one from that figure.
st_total=0 st_rate_real=0 st_rate_wall=0 st_cpu=0
for ((i = 0; i < nclients; i++)); do
    log=$work/stime$i.log
    conns='' real='' user='' sys=''
    read -r conns real < <(sed -n 's/^\([0-9]*\) connections in \([0-9]*\) real seconds.*/\1 \2/p' "$log") || true
    read -r user sys <"$work/stime$i.cpu" || true
    if [[ -z $conns || -z $real || $conns == 0 || $real == 0 ]]; then
        echo "s_time client $i output:" >&2
        tail -n 20 "$log" >&2
        die "s_time client $i made no connections"
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
printf '  sum: %.0f handshakes/s by s_time real seconds, %.0f/s by wall clock\n' \
    "$st_rate_real" "$st_rate_wall"
printf '  s_time CPU %.2f ms/handshake; servers CPU %.2f s = %.2f ms/handshake\n' \
    "$(calc "$st_cpu * 1000 / $st_total")" "$srv_cpu_st" "$(calc "$srv_cpu_st * 1000 / $st_total")"
printf '  for comparison, servers CPU during certmon: %.2f ms/probe\n' \
    "$(calc "$srv_cpu_cm * 1000 / $probes")"
echo

# --- summary ------------------------------------------------------------------------------
printf 'certmon:   %d probes in %.1f s = %.0f probes/s, CPU %.2f ms/probe, peak RSS %.1f MiB, %d/%d ok\n' \
    "$probes" "$cm_wall" "$cm_rate" "$cm_cpu_ms" "$cm_rss_mib" "$ok_count" "$probes"
if ((silent > 0)); then
    printf 'silent:    %d never-answering targets (--timeout %d) in the same run: whole run took %.1f s, %d/%d timed out (one after another they would take %d s)\n' \
        "$silent" "$probe_timeout" "$cm_wall" "$silent_timeouts" "$silent" \
        $((silent * probe_timeout))
fi
printf 's_time:    %d clients, %.0f handshakes/s (%.0f/s by its whole "real seconds"), CPU %.2f ms/handshake\n' \
    "$nclients" "$st_rate_wall" "$st_rate_real" "$(calc "$st_cpu * 1000 / $st_total")"
printf 'ratio:     certmon / s_time = %.2f' "$(calc "$cm_rate / $st_rate_wall")"
if ((silent > 0)); then
    printf ' (not comparable: the run includes the %d s wait for the silent targets)' \
        "$probe_timeout"
fi
echo

# Fail loudly (after printing) if certmon did not verify every real probe as OK.
if ((ok_count != probes)); then
    die "FAILED: only $ok_count of $probes probes were ok (certmon exit $certmon_rc)"
fi
if ((silent > 0 && silent_timeouts != silent)); then
    die "FAILED: only $silent_timeouts of $silent silent targets timed out"
fi
if ((silent == 0 && certmon_rc != 0)); then
    die "FAILED: certmon exited $certmon_rc although every probe was ok"
fi
