#!/bin/bash
# Alert persistence benchmark (issue 14): the daemon holding N firing alerts of one webhook
# notifier (default: 1000, 10000 and 100000 in turn), reminded every hour
# (repeat_interval = "1h"); 1,000 of them are due within the first minute, evenly, the others
# were just notified: about 16 alert changes per second whatever N (a REPEAT each: the
# alert's row, its notice grouped, the message queued and delivered to a local receiver). The alerts come from a
# STATE_FILE.notify.json of the version before the database (which the daemon imports, or a
# daemon of that version loads and rewrites), so that one script measures both. For each N:
#   - start to "started" (the import of N alerts, or the load of the JSON file);
#   - for WINDOW seconds: notices delivered (alert changes) and bytes written to disk by the
#     daemon (/proc/PID/io write_bytes) per alert change, and the daemon's CPU per change;
#   - SIGTERM to exit (budget < 1 s at 100,000);
#   - then (a daemon with the database) a restart: the load of the N alert rows (its log line)
#     and start to "started", and SIGTERM again.
# A target that refuses connections is configured, probed once a day, so that the daemon has
# something to probe; the alerts belong to targets of their own (not configured, not probed).
#
# usage: tests/bench/alerts_bench.sh [--alerts "N1 N2 ..."] [--window S] [--certmon PATH]
set -euo pipefail

SIZES="1000 10000 100000"
WINDOW=60
CERTMON=
while [ $# -gt 0 ]; do
    case $1 in
    --alerts) SIZES=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    --certmon) CERTMON=$2; shift 2 ;;
    *) echo "usage: $0 [--alerts \"N...\"] [--window S] [--certmon PATH]" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
CERTMON=${CERTMON:-$here/../../build/certmon}
[ -x "$CERTMON" ] || { echo "no certmon binary at $CERTMON (build first)" >&2; exit 2; }

# shellcheck source=bench_lib.sh
. "$here/bench_lib.sh"
bench_setup alerts

# Notices delivered so far, from the daemon's log ("delivered notices=K" per message).
delivered() { grep -o 'delivered notices=[0-9]*' "$1" | awk -F= '{ s += $2 } END { print s + 0 }'; }
tck=$(getconf CLK_TCK)

rx_port=$(free_port)
/usr/bin/python3 "$here/../integration/http_receiver.py" --port "$rx_port" --log /dev/null \
    >/dev/null 2>&1 &
pids+=($!)
dead=$(free_port)
sleep 0.5

echo "certmon alert persistence benchmark: $(nproc) cores, window ${WINDOW}s, $CERTMON"
for N in $SIZES; do
    conf=$work/alerts$N.conf
    db=$work/alerts$N.db
    rm -f "$db" "$db"-* "$db".notify.json*
    {
        echo "global = { interval = \"24h\"; startup_spread = \"24h\"; posture_interval = \"off\";"
        echo "           state_file = \"$db\"; };"
        echo "targets = ( { host = \"127.0.0.1\"; port = $dead; } );"
        echo "notifiers = ( { name = \"hook\"; type = \"webhook\";"
        echo "                url = \"http://127.0.0.1:$rx_port/hook\"; group_wait = \"1s\";"
        echo "                repeat_interval = \"1h\"; } );"
    } >"$conf"
    /usr/bin/python3 - "$db.notify.json" "$N" "$rx_port" <<'EOF'
import json, sys, time
path, n, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
now = int(time.time())
alerts = []
for i in range(n):
    # 1,000 due (notified_at + 1 h) evenly from 10 s after now over a minute; the rest later.
    t = now - 3590 + (i * 7919) % 60 if i < 1000 else now - (i * 7919) % 600
    alerts.append({"target": "host%06d.example.com:443" % i, "id": "cert.expiring",
                   "position": 0, "severity": "warning",
                   "message": "the certificate expires in 12 days (on 2027-01-01T00:00:00Z)",
                   "started_at": now - 86400, "fired_at": now - 3600, "notified_at": t})
json.dump({"hook": {"alerts": alerts, "queue": []}}, open(path, "w"), separators=(",", ":"))
EOF
    echo
    echo "== $N alerts (notify.json $(stat -c %s "$db.notify.json") bytes; ~16 alert changes/s)"
    log=$work/alerts$N.log
    t0=$(now_ms)
    "$CERTMON" run -c "$conf" 2>"$log" &
    pid=$!
    pids+=("$pid")
    wait_started "$log" "$pid"
    echo "[$N] start to 'started' (import of the notify.json, or its load): $(($(now_ms) - t0)) ms"
    sleep 10
    # The import's pages go to the file now (by this sqlite3, not the daemon), not at a
    # checkpoint of the daemon's in the window.
    sqlite3 "$db" 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null 2>&1 || true
    sleep 2
    d0=$(delivered "$log"); c0=$(cpu_ticks "$pid"); w0=$(write_bytes "$pid"); m0=$(now_ms)
    sleep "$WINDOW"
    d1=$(delivered "$log"); c1=$(cpu_ticks "$pid"); w1=$(write_bytes "$pid"); m1=$(now_ms)
    /usr/bin/python3 - "$((d1 - d0))" "$((c1 - c0))" "$((w1 - w0))" "$((m1 - m0))" "$tck" "$N" <<'EOF'
import sys
n, cpu, wb, ms, tck, N = map(int, sys.argv[1:])
sec = ms / 1000.0
print(f"[{N}] {n} alert changes delivered in {sec:.1f} s ({n / sec:.1f}/s)")
if n:
    print(f"[{N}] written to disk: {wb / n:.0f} bytes per alert change ({wb / sec / 1024:.0f} KiB/s);"
          f" daemon CPU {cpu / tck * 1000 / n:.3f} ms per change, {cpu / tck / sec * 100:.1f} % of a core")
EOF
    stop_daemon "$N" "$pid"
    if [ -f "$db.notify.json" ]; then
        echo "[$N] (a daemon of the JSON file: $(stat -c %s "$db.notify.json") bytes rewritten whole)"
        continue
    fi
    # A restart reads the rows.
    log=$work/alerts$N-restart.log
    t0=$(now_ms)
    "$CERTMON" run -c "$conf" 2>"$log" &
    pid=$!
    pids+=("$pid")
    wait_started "$log" "$pid"
    echo "[$N restart] start to 'started' with $N alert rows: $(($(now_ms) - t0)) ms;" \
        "$(grep -o 'alerts=[0-9]* messages=[0-9]* loaded in [0-9.]* s' "$log" || echo 'no load line')"
    sleep 2
    stop_daemon "$N restart" "$pid"
    echo "[$N] database: $(stat -c %s "$db") bytes; rows: $(sqlite3 "$db" 'SELECT count(*) FROM current_alerts') alerts," \
        "$(sqlite3 "$db" 'SELECT count(*) FROM outbox') queued"
done
