#!/usr/bin/env bash
# Service benchmarks against a real cosignerd (release build), one JSON line
# per figure on stdout (progress and logs on stderr):
#   signing_sessions  1,000 users, 2-of-2, concurrency 256, K sessions each
#   idle_wallets      RSS of a daemon holding 100,000 registered, evicted
#                     wallets, above the RSS of the same daemon fresh
# Usage: scripts/service_bench.sh [BUILD_DIR]
# Env: USERS (1000) CONC (256) SESSIONS (20) WALLETS (100000)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
D=$B/src/cosignerd
BENCH=$B/cli/cosigner-bench
USERS=${USERS:-1000}
CONC=${CONC:-256}
SESSIONS=${SESSIONS:-20}
WALLETS=${WALLETS:-100000}
if [ ! -x "$D" ] || [ ! -x "$BENCH" ]; then
    echo "service_bench: $D or $BENCH not built; skipping" >&2
    exit 0
fi
T=$(mktemp -d)
PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" || true; fi
    rm -rf "$T"
}
trap cleanup EXIT

start() { # start NAME [flags]: sets URL and PID
    local name=$1
    shift
    : >"$T/$name.log"
    "$D" --listen 127.0.0.1:0 --data-dir "$T/$name" "$@" 2>"$T/$name.log" &
    PID=$!
    local port=
    for _ in $(seq 1 200); do
        port=$(grep -o 'event=started .*listen=127.0.0.1:[0-9]*' "$T/$name.log" | sed 's/.*://') || true
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { echo "service_bench: daemon did not start" >&2; cat "$T/$name.log" >&2; exit 1; }
    URL="http://127.0.0.1:$port"
}

stop() { kill -TERM "$PID"; wait "$PID" || true; PID=; }

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

metric() { curl -sf "$URL/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }

# 1. Signing throughput and latency.
start sign
"$BENCH" --url "$URL" --users "$USERS" --concurrency "$CONC" --sessions "$SESSIONS" --json |
    grep '"workload"' || true
stop

# 2. Memory of idle, evicted wallets.
start idle --idle-threshold-ms 5000 --evict-quantum-ms 1000
sleep 0.5
fresh=$(rss_kib "$PID")
"$BENCH" --url "$URL" --users "$WALLETS" --concurrency "$CONC" --sessions 0 --json >"$T/idle.json" ||
    echo "service_bench: registering wallets reported errors" >&2
for _ in $(seq 1 150); do
    [ "$(metric cosignerd_actors_resident)" = 0 ] && break
    sleep 0.2
done
resident=$(metric cosignerd_actors_resident)
after=$(rss_kib "$PID")
stop
awk -v w="$WALLETS" -v a="$after" -v f="$fresh" -v r="$resident" 'BEGIN {
    printf "{\"workload\":\"idle_wallets\",\"wallets\":%d,\"rss_mib_above_fresh\":%.1f,\"resident_after\":%d}\n", w, (a - f) / 1024.0, r }'
