#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks, from Debian's
# postgresql package (/usr/lib/postgresql/*/bin), on 127.0.0.1:
#
#   scripts/pg_server.sh start DIR [PORT]  initdb on first use, start; prints the DSN
#   scripts/pg_server.sh stop DIR          fast shutdown (no-op when not running)
#   scripts/pg_server.sh bin               prints the server's bin dir, or exits 77
#
# initdb refuses to run as root: as root the server runs as the postgres
# user (DIR is handed to it; its parent must be searchable by that user),
# otherwise as the caller. fsync=off: these
# servers hold test data only, and the cluster's own durability argument
# (commit before ack) does not depend on the disk under a test.
set -euo pipefail
bin() {
    local b
    b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    [ -n "$b" ] && [ -x "$b/initdb" ] || return 77
    echo "$b"
}
asuser() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cmd=${1:-}
case "$cmd" in
bin)
    bin || exit 77
    ;;
start)
    DIR=$2
    B=$(bin) || { echo "pg_server: PostgreSQL server binaries not found (scripts/deps.sh installs postgresql)" >&2; exit 77; }
    PORT=${3:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
    mkdir -p "$DIR"
    if [ ! -f "$DIR/db/PG_VERSION" ]; then
        [ "$(id -u)" = 0 ] && chown postgres "$DIR"
        chmod 700 "$DIR"
        asuser "$B/initdb" -D "$DIR/db" -A trust -U cosigner --no-sync -E UTF8 >"$DIR/initdb.log" 2>&1 ||
            { tail -5 "$DIR/initdb.log" >&2; exit 1; }
    fi
    asuser "$B/pg_ctl" -D "$DIR/db" -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
        -l "$DIR/log" -w start >/dev/null || { tail -5 "$DIR/log" >&2; exit 1; }
    echo "$PORT" >"$DIR/port"
    echo "host=127.0.0.1 port=$PORT user=cosigner dbname=postgres connect_timeout=2"
    ;;
stop)
    DIR=$2
    B=$(bin) || exit 0
    [ -f "$DIR/db/postmaster.pid" ] || exit 0
    asuser "$B/pg_ctl" -D "$DIR/db" -m fast -w stop >/dev/null 2>&1 || true
    ;;
*)
    echo "usage: pg_server.sh start DIR [PORT] | stop DIR | bin" >&2
    exit 2
    ;;
esac
