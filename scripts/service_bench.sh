#!/usr/bin/env bash
# Service benchmarks against a real cosignerd (release build), one JSON line
# per figure on stdout (progress and logs on stderr):
#   signing_sessions  1,000 users, 2-of-2, concurrency 256, K sessions each
#   daemon_cpu        the daemon's own CPU (user+sys, /proc) per DKG and per
#                     signing session of that run, next to the libsecp256k1
#                     lower bound of the same operations measured in the same
#                     run (crypto_bench's bounds plus one request
#                     authentication per device request): "ratio"
#   open_loop         sessions started at a fixed rate (cosigner-bench
#                     --rate) at 25, 50 and 80 % of the closed-loop maximum
#                     just measured: p50/p99/p99.9 latency from the scheduled
#                     start (no coordinated omission)
#   idle_wallets      RSS of a daemon holding 100,000 registered, evicted
#                     wallets, above the RSS of the same daemon fresh
# Usage: scripts/service_bench.sh [BUILD_DIR]
# Env: USERS (1000) CONC (256) SESSIONS (20) WALLETS (100000)
#      OL_DURATION (10: seconds per open-loop load) OL_LOADS ("25 50 80")
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
D=$B/src/cosignerd
BENCH=$B/cli/cosigner-bench
USERS=${USERS:-1000}
CONC=${CONC:-256}
SESSIONS=${SESSIONS:-20}
WALLETS=${WALLETS:-100000}
OL_DURATION=${OL_DURATION:-10}
OL_LOADS=${OL_LOADS:-25 50 80}
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

# The daemon's CPU time so far, user + system, in microseconds (fields 14
# and 15 of /proc/PID/stat, after the parenthesised command name).
cpu_us() {
    local tck
    tck=$(getconf CLK_TCK)
    sed 's/^.*) //' "/proc/$PID/stat" | awk -v t="$tck" '{ printf "%.0f\n", ($12 + $13) * 1e6 / t }'
}
# Field of the first JSON line of FILE whose workload (and phase) match.
jfield() { # FILE WORKLOAD FIELD [PHASE]
    grep "\"workload\":\"$2\"" "$1" | { if [ -n "${4:-}" ]; then grep "\"phase\":\"$4\""; else cat; fi; } |
        head -1 | grep -o "\"$3\":[0-9.]*" | head -1 | sed 's/.*://'
}

status=0

# 1. Signing throughput and latency. A run with errors still prints its
# figures, and makes this script fail. A DKG-only run of as many users
# first gives the daemon's CPU per DKG, so that the signing run's CPU can be
# split into its DKGs and its sessions.
start sign --enrollment open
rc=0
c0=$(cpu_us)
"$BENCH" --url "$URL" --users "$USERS" --concurrency "$CONC" --sessions 0 --json \
    >"$T/dkg.json" || rc=$?
c1=$(cpu_us)
"$BENCH" --url "$URL" --users "$USERS" --concurrency "$CONC" --sessions "$SESSIONS" --json \
    >"$T/sign.json" || rc=$?
c2=$(cpu_us)
grep '"workload"' "$T/sign.json" || true
if [ "$rc" -ne 0 ]; then
    echo "service_bench: cosigner-bench exited $rc (errors in the signing run)" >&2
    status=1
fi
max_rate=$(jfield "$T/sign.json" signing_sessions sessions_per_s)

# 1b. Daemon CPU per operation against the crypto lower bound, same run.
# Each 2-of-2 DKG and each session is two device requests, each
# authenticated once by the service (BIP340 verification).
if [ -x "$B/bench/crypto_bench" ]; then
    "$B/bench/crypto_bench" 300 >"$T/crypto.json"
    dkgs=$(jfield "$T/dkg.json" phase_latency count dkg)
    dkgs2=$(jfield "$T/sign.json" phase_latency count dkg)
    sess=$(jfield "$T/sign.json" phase_latency count session)
    awk -v c0="$c0" -v c1="$c1" -v c2="$c2" -v d="${dkgs:-0}" -v d2="${dkgs2:-0}" -v s="${sess:-0}" \
        -v sb="$(jfield "$T/crypto.json" sign_session bound_us)" \
        -v db="$(jfield "$T/crypto.json" dkg bound_us)" \
        -v av="$(jfield "$T/crypto.json" auth_verify cpu_us)" 'BEGIN {
        per_dkg = d > 0 ? (c1 - c0) / d : 0
        per_sess = s > 0 ? (c2 - c1 - d2 * per_dkg) / s : 0
        bd = db + 2 * av; bs = sb + 2 * av
        printf "{\"workload\":\"daemon_cpu\",\"op\":\"dkg\",\"count\":%d,\"cpu_us\":%.1f,", d, per_dkg
        printf "\"bound_us\":%.1f,\"ratio\":%.2f}\n", bd, (bd > 0 ? per_dkg / bd : 0)
        printf "{\"workload\":\"daemon_cpu\",\"op\":\"sign_session\",\"count\":%d,\"cpu_us\":%.1f,", s, per_sess
        printf "\"bound_us\":%.1f,\"ratio\":%.2f,\"auth_verify_us\":%.1f}\n", bs, (bs > 0 ? per_sess / bs : 0), av }'
fi

# 1c. Open-loop latency at fractions of the closed-loop maximum, on the
# same daemon (each load first runs its users' DKGs, untimed here).
if [ -n "$max_rate" ] && awk -v r="$max_rate" 'BEGIN { exit !(r > 0) }'; then
    for pctl in $OL_LOADS; do
        rate=$(awk -v r="$max_rate" -v p="$pctl" 'BEGIN { printf "%.1f", r * p / 100 }')
        rc=0
        "$BENCH" --url "$URL" --users "$USERS" --concurrency "$CONC" --rate "$rate" \
            --duration "$OL_DURATION" >"$T/ol.json" || rc=$?
        grep '"workload":"open_loop"' "$T/ol.json" |
            sed "s/^{/{\"load_pct\":$pctl,\"closed_loop_max_per_s\":$max_rate,/" || true
        if [ "$rc" -ne 0 ]; then
            echo "service_bench: open loop at $pctl % exited $rc (errors)" >&2
            status=1
        fi
    done
fi
stop

# 2. Memory of idle, evicted wallets: VmRSS above the same daemon fresh, and
# its anonymous (heap) and file-backed (store map) parts.
start idle --enrollment open --idle-threshold-ms 5000 --evict-quantum-ms 1000
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

# 3. What admission control costs signing: the same closed-loop signing run
# against a daemon with every admission check off (enrollment = open, no
# rate limits, no quotas) and one with them on (enrollment = token, the
# bench minting each user's token with the bootstrap admin key; per-key rate
# limit raised so that the bench's busiest users are never refused: the
# check costs the same whatever the rate). Alternated, best of two each,
# same machine, same run. Goal: overhead <= 5 %.
ADM_USERS=${ADM_USERS:-300} ADM_SESSIONS=${ADM_SESSIONS:-20} ADM_CONC=${ADM_CONC:-64}
best_off=0 best_on=0
for round in 1 2; do
    for mode in off on; do
        if [ "$mode" = off ]; then
            start "adm_off_$round" --enrollment open --rate-limit-rps 0 --auth-fail-per-min 0 \
                --quota-wallets 0 --quota-pending-dkg 0 --max-pending-dkg 0
            extra=()
        else
            start "adm_on_$round" --enrollment token --rate-limit-rps 100000 --rate-limit-burst 100000
            extra=(--admin-key "$T/adm_on_$round/admin.key")
        fi
        rc=0
        "$BENCH" --url "$URL" --users "$ADM_USERS" --concurrency "$ADM_CONC" \
            --sessions "$ADM_SESSIONS" --json "${extra[@]}" >"$T/adm.json" || rc=$?
        stop
        r=$(jfield "$T/adm.json" signing_sessions sessions_per_s)
        if [ "$rc" -ne 0 ] || [ -z "$r" ]; then
            echo "service_bench: admission run ($mode) failed (exit $rc)" >&2
            status=1
            r=0
        fi
        if [ "$mode" = off ]; then
            best_off=$(awk -v a="$best_off" -v b="$r" 'BEGIN { print (b > a) ? b : a }')
        else
            best_on=$(awk -v a="$best_on" -v b="$r" 'BEGIN { print (b > a) ? b : a }')
        fi
    done
done
awk -v off="$best_off" -v on="$best_on" 'BEGIN {
    printf "{\"workload\":\"admission_overhead\",\"sessions_per_s_admission_off\":%.1f,", off
    printf "\"sessions_per_s_admission_on\":%.1f,\"overhead_pct\":%.1f,\"goal_pct\":5}\n",
        on, (off > 0) ? (off - on) * 100.0 / off : 0 }'
exit $status
