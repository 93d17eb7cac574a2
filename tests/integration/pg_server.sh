#!/bin/sh
# Runs a real PostgreSQL server on 127.0.0.1 for tests/integration/test_postgres.c.
#
#   pg_server.sh start DIR PORT [CERT KEY]
#       Makes a cluster in DIR with initdb unless DIR already holds one (DIR must then be
#       missing or empty), configures it to listen on 127.0.0.1:PORT only, with its Unix
#       socket in DIR and fsync off, with ssl=on serving CERT (a PEM chain) and KEY (copied
#       into DIR, the key mode 0600) or with ssl=off when they are not given, and starts it
#       (pg_ctl -w, bounded). Prints nothing on success; on failure, the server log.
#       Starting an existing cluster again reconfigures it: stop, then start with another
#       certificate or port.
#   pg_server.sh stop DIR
#       Stops the server (pg_ctl stop -m immediate, bounded); succeeds when none runs.
#
# The server binaries are the newest under /usr/lib/postgresql/*/bin (Debian's postgresql
# package), or those in $PG_BINDIR. PostgreSQL refuses to run as root: as root, DIR is given
# to the postgres user (nobody when there is none) and initdb and pg_ctl run as that user.
set -eu

me=pg_server.sh
wait_s=30 # bound on initdb and on each pg_ctl wait

die() {
    echo "$me: $*" >&2
    exit 1
}

usage() {
    die "usage: $me start DIR PORT [CERT KEY] | $me stop DIR"
}

find_bindir() {
    if [ -n "${PG_BINDIR:-}" ]; then
        bindir=$PG_BINDIR
    else
        bindir="" best=-1
        for d in /usr/lib/postgresql/*/bin; do
            if [ ! -x "$d/initdb" ] || [ ! -x "$d/pg_ctl" ] || [ ! -x "$d/postgres" ]; then
                continue
            fi
            v=${d#/usr/lib/postgresql/}
            v=${v%%/*}
            v=${v%%.*}
            case $v in '' | *[!0-9]*) continue ;; esac
            if [ "$v" -gt "$best" ]; then
                best=$v bindir=$d
            fi
        done
    fi
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/pg_ctl" ] ||
        [ ! -x "$bindir/postgres" ]; then
        die "no PostgreSQL server binaries (initdb, pg_ctl, postgres) under" \
            "${PG_BINDIR:-/usr/lib/postgresql/*/bin}: install Debian's postgresql package" \
            "(contrib/install-deps.sh installs it)"
    fi
}

# as_server CMD...: runs CMD as the user the server runs as.
if [ "$(id -u)" -eq 0 ]; then
    if id -u postgres >/dev/null 2>&1; then
        server_user=postgres
    else
        server_user=nobody
    fi
    as_server() {
        if command -v runuser >/dev/null 2>&1; then
            runuser -u "$server_user" -- "$@"
        else
            setpriv --reuid="$server_user" --regid="$(id -g "$server_user")" --init-groups -- "$@"
        fi
    }
else
    server_user=""
    as_server() { "$@"; }
fi

# pg_ctl CMD...: pg_ctl as the server user, from a directory that user can enter.
pg_ctl() {
    (cd "$dir" && as_server "$bindir/pg_ctl" "$@")
}

start() {
    [ $# -eq 1 ] || [ $# -eq 3 ] || usage
    port=$1 cert=${2:-} key=${3:-}
    case $port in '' | *[!0-9]*) die "bad port '$port'" ;; esac
    if [ -n "$cert" ]; then
        [ -r "$cert" ] || die "cannot read $cert"
        [ -r "$key" ] || die "cannot read $key"
    fi
    find_bindir
    mkdir -p "$dir"
    [ -z "$server_user" ] || chown "$server_user" "$dir"

    if [ ! -f "$dir/PG_VERSION" ]; then
        if ! out=$(cd "$dir" && as_server timeout "$wait_s" "$bindir/initdb" -D "$dir" \
            --no-sync --auth-local=peer --auth-host=reject --locale=C --encoding=UTF8 2>&1); then
            printf '%s\n' "$out" >&2
            die "initdb failed in $dir"
        fi
        # Later settings win: the file written at each start overrides the defaults.
        printf "\ninclude_if_exists = 'certmon.conf'\n" >>"$dir/postgresql.conf"
    fi

    {
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = '$dir'"
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
        echo "max_connections = 10"
        echo "shared_buffers = 16MB"
        if [ -n "$cert" ]; then
            echo "ssl = on"
            echo "ssl_cert_file = 'server.crt'"
            echo "ssl_key_file = 'server.key'"
        else
            echo "ssl = off"
        fi
    } >"$dir/certmon.conf"
    rm -f "$dir/server.crt" "$dir/server.key"
    if [ -n "$cert" ]; then
        cp "$cert" "$dir/server.crt"
        # The server refuses a key that others can read; it must be its own and 0600.
        (umask 077 && cp "$key" "$dir/server.key")
        chmod 0600 "$dir/server.key"
    fi
    if [ -n "$server_user" ]; then
        chown "$server_user" "$dir/certmon.conf"
        [ -z "$cert" ] || chown "$server_user" "$dir/server.crt" "$dir/server.key"
    fi

    if ! out=$(pg_ctl start -D "$dir" -l "$dir/server.log" -w -t "$wait_s" -s 2>&1); then
        printf '%s\n' "$out" >&2
        echo "$me: the server in $dir did not start on 127.0.0.1:$port; its log:" >&2
        cat "$dir/server.log" >&2 || true
        exit 1
    fi
}

stop() {
    [ $# -eq 0 ] || usage
    [ -f "$dir/postmaster.pid" ] || return 0
    find_bindir
    if ! out=$(pg_ctl stop -D "$dir" -m immediate -w -t "$wait_s" -s 2>&1); then
        # A PID file left by a server that died: pg_ctl status exits 3 for "not running".
        st=0
        pg_ctl status -D "$dir" >/dev/null 2>&1 || st=$?
        [ "$st" -ne 3 ] || return 0
        printf '%s\n' "$out" >&2
        die "the server in $dir did not stop"
    fi
}

[ $# -ge 2 ] || usage
cmd=$1 dir=$2
shift 2
case $dir in /*) ;; *) dir=$(pwd)/$dir ;; esac
case $cmd in
start) start "$@" ;;
stop) stop "$@" ;;
*) usage ;;
esac
