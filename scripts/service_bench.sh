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

metric() { curl -sf "$URL/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }

status=0

# 1. Signing throughput and latency. A run with errors still prints its
# figures, and makes this script fail.
start sign
rc=0
"$BENCH" --url "$URL" --users "$USERS" --concurrency "$CONC" --sessions "$SESSIONS" --json \
    >"$T/sign.json" || rc=$?
grep '"workload"' "$T/sign.json" || true
if [ "$rc" -ne 0 ]; then
    echo "service_bench: cosigner-bench exited $rc (errors in the signing run)" >&2
    status=1
fi
stop

# 2. Memory of idle, evicted wallets: VmRSS above the same daemon fresh, and
# its anonymous (heap) and file-backed (store map) parts.
start idle --idle-threshold-ms 5000 --evict-quantum-ms 1000
sleep 0.5
rss() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
fresh=$(rss "$PID" VmRSS) fresh_anon=$(rss "$PID" RssAnon) fresh_file=$(rss "$PID" RssFile)
rc=0
"$BENCH" --url "$URL" --users "$WALLETS" --concurrency "$CONC" --sessions 0 --json >"$T/idle.json" ||
    rc=$?
# The wallets that really exist: completed DKGs, not the number asked for.
registered=$(grep '"phase":"dkg"' "$T/idle.json" | grep -o '"count":[0-9]*' | grep -o '[0-9]*$')
if [ "$rc" -ne 0 ] || [ "${registered:-0}" -ne "$WALLETS" ]; then
    echo "service_bench: registered ${registered:-0} of $WALLETS wallets (cosigner-bench exit $rc)" >&2
    status=1
fi
for _ in $(seq 1 150); do
    [ "$(metric cosignerd_actors_resident)" = 0 ] && break
    sleep 0.2
done
sleep 1.5 # the daemon returns memory on its next one-second housekeeping pass
resident=$(metric cosignerd_actors_resident)
after=$(rss "$PID" VmRSS) after_anon=$(rss "$PID" RssAnon) after_file=$(rss "$PID" RssFile)
stop
awk -v w="${registered:-0}" -v a="$after" -v f="$fresh" -v aa="$after_anon" -v fa="$fresh_anon" \
    -v af="$after_file" -v ff="$fresh_file" -v r="$resident" 'BEGIN {
    printf "{\"workload\":\"idle_wallets\",\"wallets\":%d,\"rss_mib_above_fresh\":%.1f,", w, (a - f) / 1024.0
    printf "\"anon_mib_above_fresh\":%.1f,\"file_mib_above_fresh\":%.1f,\"resident_after\":%d}\n",
        (aa - fa) / 1024.0, (af - ff) / 1024.0, r }'
exit $status
