#!/usr/bin/env bash
# Cluster benchmarks (release build, one real PostgreSQL server from
# scripts/pg_server.sh), one JSON line per figure on stdout:
#   cluster_signing  2-of-2 signing sessions/s and p50/p99 session latency for
#                    1 node on LMDB, 1 node on PostgreSQL and 3 nodes on
#                    PostgreSQL (requests spread over the nodes at random),
#                    same machine, same run; "vs_lmdb" is the throughput
#                    ratio to the LMDB node, "forwarded_share" the part of
#                    the requests a node forwarded to the wallet's owner
#   forwarding       the cost of one forward: p50 latency of a request sent
#                    to a node that does not own the wallet minus the same
#                    request sent to the owner (GET /v1/wallets/{id})
#   failover         from kill -9 of a wallet's owner to the first verified
#                    signature for that wallet on another node, p50/max over
#                    FO_CYCLES cycles, against lease_ttl_ms + 1 s
# Usage: scripts/cluster_bench.sh [BUILD_DIR]
# Env: USERS (300) CONC (64) SESSIONS (10) FO_CYCLES (5) TTL (5000)
set -euo pipefail
# Wallets here are created without enrollment control (admission has its
# own tests, tests/net/admission_test.sh).
export COSIGNERD_ENROLLMENT=open
cd "$(dirname "$0")/.."
B=${1:-build}
D=$B/src/cosignerd
BENCH=$B/cli/cosigner-bench
CLI=$B/cli/cosigner-cli
USERS=${USERS:-300}
CONC=${CONC:-64}
SESSIONS=${SESSIONS:-10}
FO_CYCLES=${FO_CYCLES:-5}
TTL=${TTL:-5000}
if [ ! -x "$D" ] || [ ! -x "$BENCH" ]; then
    echo "cluster_bench: $D or $BENCH not built; skipping" >&2
    exit 0
fi
if ! scripts/pg_server.sh bin >/dev/null; then
    echo "cluster_bench: no PostgreSQL server binaries; skipping" >&2
    exit 0
fi
T=$(mktemp -d)
chmod 755 "$T"
declare -A PIDS=() PORTS=()
cleanup() {
    for n in "${!PIDS[@]}"; do kill -KILL "${PIDS[$n]}" 2>/dev/null || true; done
    scripts/pg_server.sh stop "$T/pg" || true
    rm -rf "$T"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DSN=$(scripts/pg_server.sh start "$T/pg")
PGPORT=$(cat "$T/pg/port")
sql() { psql -X -q -t -A -h 127.0.0.1 -p "$PGPORT" -U cosigner -d postgres -c "$1"; }
head -c 32 /dev/urandom >"$T/master.key"
head -c 32 /dev/urandom >"$T/host.key"
chmod 600 "$T/master.key" "$T/host.key"

node() { # node NAME BACKEND [flags]
    local n=$1 be=$2
    shift 2
    [ -n "${PORTS[$n]:-}" ] || PORTS[$n]=$(free_port)
    mkdir -p "$T/$n"
    chmod 700 "$T/$n"
    [ -f "$T/$n/host.key" ] || cp -p "$T/host.key" "$T/$n/host.key"
    local extra=()
    [ "$be" = postgres ] && extra=(--store-backend postgres --pg-dsn "$DSN" --node-id "$n" --lease-ttl-ms "$TTL")
    "$D" --listen "127.0.0.1:${PORTS[$n]}" --data-dir "$T/$n" --master-key "$T/master.key" \
        "${extra[@]}" "$@" 2>>"$T/$n.log" &
    PIDS[$n]=$!
    for _ in $(seq 1 400); do
        curl -sf "http://127.0.0.1:${PORTS[$n]}/readyz" >/dev/null && return 0
        sleep 0.05
    done
    echo "cluster_bench: node $n did not start" >&2
    tail -5 "$T/$n.log" >&2
    exit 1
}
url() { echo "http://127.0.0.1:${PORTS[$1]}"; }
stop_node() { kill -TERM "${PIDS[$1]}"; wait "${PIDS[$1]}" || true; unset "PIDS[$1]"; }
msum() { # msum NAME NODE...: a counter summed over nodes
    local name=$1 s=0 n v
    shift
    for n in "$@"; do
        v=$(curl -sf "$(url "$n")/metrics" | awk -v k="$name" '$1 == k || index($1, k "{") == 1 { s += $2 } END { print s + 0 }')
        s=$((s + v))
    done
    echo $s
}
jfield() { grep "\"workload\":\"$2\"" "$1" | { if [ -n "${4:-}" ]; then grep "\"phase\":\"$4\""; else cat; fi; } |
    head -1 | grep -o "\"$3\":[0-9.]*" | head -1 | sed 's/.*://'; }

status=0
run() { # run LABEL BACKEND NODES URLS -> prints the cluster_signing line
    local label=$1 be=$2 nodes=$3 urls=$4 rc=0
    "$BENCH" --url "$urls" --users "$USERS" --concurrency "$CONC" --sessions "$SESSIONS" --json \
        >"$T/$label.json" || rc=$?
    [ $rc -eq 0 ] || { echo "cluster_bench: $label: cosigner-bench exited $rc" >&2; status=1; }
    local rate p50 p99
    rate=$(jfield "$T/$label.json" signing_sessions sessions_per_s)
    p50=$(jfield "$T/$label.json" phase_latency p50_ms session)
    p99=$(jfield "$T/$label.json" phase_latency p99_ms session)
    echo "$label ${rate:-0} ${p50:-0} ${p99:-0}" >>"$T/runs"
    printf '{"workload":"cluster_signing","backend":"%s","nodes":%d,"users":%d,"concurrency":%d,"sessions_per_s":%s,"p50_ms":%s,"p99_ms":%s' \
        "$be" "$nodes" "$USERS" "$CONC" "${rate:-0}" "${p50:-0}" "${p99:-0}"
}

# 1. One node on LMDB: the baseline.
node l1 lmdb
run lmdb1 lmdb 1 "$(url l1)"
base=$(awk '$1 == "lmdb1" { print $2 }' "$T/runs")
echo '}'
stop_node l1

# 2. One node on PostgreSQL.
node p1 postgres
run pg1 postgres 1 "$(url p1)"
awk -v b="$base" '$1 == "pg1" { printf ",\"vs_lmdb\":%.2f}\n", (b > 0 ? $2 / b : 0) }' "$T/runs"

# 3. Three nodes on PostgreSQL, requests spread over them. Every node
# counts the requests it answers, a forwarded one twice (at the node that
# forwarded it and at the owner), so client requests = counted - forwarded.
node p2 postgres
node p3 postgres
req0=$(msum cosignerd_http_request_duration_seconds_count p1 p2 p3)
fwd0=$(msum cosignerd_cluster_forwarded_total p1 p2 p3)
run pg3 postgres 3 "$(url p1),$(url p2),$(url p3)"
req1=$(msum cosignerd_http_request_duration_seconds_count p1 p2 p3)
fwd1=$(msum cosignerd_cluster_forwarded_total p1 p2 p3)
awk -v b="$base" -v r=$((req1 - req0)) -v f=$((fwd1 - fwd0)) '$1 == "pg3" {
    printf ",\"vs_lmdb\":%.2f,\"forwarded_share\":%.3f}\n", (b > 0 ? $2 / b : 0), (r > f ? f / (r - f) : 0) }' "$T/runs"

# 4. The cost of one forward: the same wallet read at its owner and at a
# node that forwards it (p50 of 200 requests each).
"$CLI" --url "$(url p1)" dkg --t 2 --devices 1 --out "$T/fw.json" >/dev/null
W=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["wallet_id"])' "$T/fw.json")
python3 -c 'import json,sys; w=json.load(open(sys.argv[1])); open(sys.argv[2],"w").write(w["devices"][0]["hostseckey"]+"\n")' "$T/fw.json" "$T/fw.key"
O=$(sql "SELECT owner FROM cg_lease WHERE wallet = '\\x$W'::bytea")
F=p1
[ "$O" = p1 ] && F=p2
lat() { # p50 ms of 200 GETs of the wallet at node $1
    local i t0 t1
    for i in $(seq 1 200); do
        t0=$(date +%s%N)
        "$CLI" --url "$(url "$1")" raw GET "/v1/wallets/$W" --key "$T/fw.key" >/dev/null
        t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000))
    done | sort -n | sed -n 100p
}
own=$(lat "$O")
far=$(lat "$F")
printf '{"workload":"forwarding","owner_p50_us":%d,"forwarded_p50_us":%d,"overhead_us_per_request":%d,"note":"whole cosigner-cli process per request in both"}\n' \
    "$own" "$far" $((far - own))

# 5. Failover: kill -9 of the owner of a wallet, time to its first verified
# signature on another node; the node comes back before the next cycle.
times=()
for c in $(seq 1 "$FO_CYCLES"); do
    "$CLI" --url "$(url p1)" sign --wallet "$T/fw.json" --msg 00 >/dev/null || true
    O=$(sql "SELECT owner FROM cg_lease WHERE wallet = '\\x$W'::bytea AND expires > now()")
    [ -n "$O" ] || { echo "cluster_bench: no owner" >&2; status=1; break; }
    rest=""
    for n in p1 p2 p3; do [ "$n" = "$O" ] || rest="$rest${rest:+,}$(url "$n")"; done
    t0=$(date +%s%N)
    kill -KILL "${PIDS[$O]}"
    wait "${PIDS[$O]}" 2>/dev/null || true
    unset "PIDS[$O]"
    ok=
    while [ $((($(date +%s%N) - t0) / 1000000)) -lt $((TTL * 3 + 10000)) ]; do
        if "$CLI" --url "$rest" --json sign --wallet "$T/fw.json" --msg 0$c 2>/dev/null | grep -q '"verified":true'; then
            ok=1
            break
        fi
        sleep 0.05
    done
    [ -n "$ok" ] || { echo "cluster_bench: cycle $c: no signature after failover" >&2; status=1; }
    times+=($((($(date +%s%N) - t0) / 1000000)))
    node "$O" postgres
done
printf '%s\n' "${times[@]}" | sort -n | awk -v c="$FO_CYCLES" -v ttl="$TTL" '{ v[NR] = $1 } END {
    printf "{\"workload\":\"failover\",\"cycles\":%d,\"lease_ttl_ms\":%d,\"p50_ms\":%d,\"max_ms\":%d,\"goal_ms\":%d}\n",
        NR, ttl, v[int((NR + 1) / 2)], v[NR], ttl + 1000 }'
for n in "${!PIDS[@]}"; do stop_node "$n"; done
exit $status
