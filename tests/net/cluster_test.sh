#!/usr/bin/env bash
# End-to-end tests of a cosignerd cluster: three daemons on 127.0.0.1 over
# one real PostgreSQL server (initdb + pg_ctl in a temp dir), devices
# driven by cosigner-cli with every request sent to one of the nodes at
# random (--url A,B,C), as behind a plain load balancer.
#
#   cluster_test.sh COSIGNERD COSIGNER_CLI SECTION
#
# SECTION: routing  forwarding, rendezvous across nodes, graceful hand-over,
#                   readiness with the database down, a node with another
#                   host key refused
#          failover kill -9 of one node at a time (5 cycles) and a SIGSTOP of
#                   an owner past its lease; checks the commit log: no two
#                   nodes ever committed for one wallet in one epoch, no
#                   acknowledged DKG lost, every signature verified
#
# Skips (exit 77, loudly) only when the PostgreSQL server binaries are absent.
set -euo pipefail
# Wallets here are created without enrollment control (admission has its
# own tests, tests/net/admission_test.sh).
export COSIGNERD_ENROLLMENT=open
D=$1
CLI=$2
SECTION=$3
PG="$(cd "$(dirname "$0")/../.." && pwd)/scripts/pg_server.sh"
if ! "$PG" bin >/dev/null; then
    echo "SKIP: PostgreSQL server binaries not found under /usr/lib/postgresql (run scripts/deps.sh)" >&2
    exit 77
fi
T=$(mktemp -d)
chmod 755 "$T"
TTL=1500
declare -A PIDS=() PORTS=()
cleanup() {
    for n in "${!PIDS[@]}"; do
        kill -CONT "${PIDS[$n]}" 2>/dev/null || true
        kill -KILL "${PIDS[$n]}" 2>/dev/null || true
    done
    pg_stop || true
    rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/n*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -15 "$f" >&2; }; done
    exit 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PGPORT=$(free_port)
pg_start() { "$PG" start "$T/pg" "$PGPORT" >/dev/null || fail "PostgreSQL did not start"; }
pg_stop() { "$PG" stop "$T/pg"; }
DSN="host=127.0.0.1 port=$PGPORT user=cosigner dbname=postgres connect_timeout=2"
sql() { psql -X -q -t -A -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U cosigner -d postgres -c "$1"; }

# One key pair and one master key for the whole cluster: every node is the
# same ChillDKG participant and opens the same sealed records.
python3 -c 'import os; open(os.sys.argv[1],"wb").write(os.urandom(32))' "$T/master.key"
chmod 600 "$T/master.key"
python3 -c 'import os; open(os.sys.argv[1],"wb").write(os.urandom(32))' "$T/host.key"
chmod 600 "$T/host.key"

# node N [flags]: (re)starts node N (1..3) and waits for /readyz.
node() {
    local n=$1
    shift
    [ -n "${PORTS[$n]:-}" ] || PORTS[$n]=$(free_port)
    mkdir -p "$T/n$n"
    chmod 700 "$T/n$n"
    [ -f "$T/n$n/host.key" ] || cp -p "$T/host.key" "$T/n$n/host.key"
    "$D" --listen "127.0.0.1:${PORTS[$n]}" --data-dir "$T/n$n" --master-key "$T/master.key" \
        --store-backend postgres --pg-dsn "$DSN" --node-id "node$n" --lease-ttl-ms $TTL \
        --rendezvous-deadline-ms 10000 "$@" 2>>"$T/n$n.log" &
    PIDS[$n]=$!
    for _ in $(seq 1 400); do
        curl -sf "http://127.0.0.1:${PORTS[$n]}/readyz" >/dev/null && return 0
        kill -0 "${PIDS[$n]}" 2>/dev/null || fail "node $n exited at start"
        sleep 0.05
    done
    fail "node $n not ready"
}
url() { echo "http://127.0.0.1:${PORTS[$1]}"; }
urls() { # urls [N...]: the comma list of the given (default: all live) nodes
    local out="" n
    for n in "${@:-${!PIDS[@]}}"; do out="$out${out:+,}$(url "$n")"; done
    echo "$out"
}
stop_node() { # graceful
    kill -TERM "${PIDS[$1]}"
    local rc=0
    wait "${PIDS[$1]}" || rc=$?
    unset "PIDS[$1]"
    [ $rc -eq 0 ] || fail "node $1 exited with $rc on SIGTERM"
}
kill_node() {
    kill -KILL "${PIDS[$1]}"
    wait "${PIDS[$1]}" 2>/dev/null || true
    unset "PIDS[$1]"
}
metric() { # metric NODE NAME
    curl -sf "$(url "$1")/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}
wallet_id() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["wallet_id"])' "$1"; }
owner_of() { sql "SELECT owner FROM cg_lease WHERE wallet = '\\x$1'::bytea AND expires > now()"; }
no_sanitizer_reports() {
    ! grep -lE 'runtime error|AddressSanitizer|ThreadSanitizer|LeakSanitizer' "$T"/n*.log ||
        fail "sanitizer report in a node log"
}

# sign_until WALLET MSG URLS DEADLINE_S: signs, retrying on a documented
# retryable refusal, until it verifies or the deadline passes. Every answer
# must be one the API documents for this case (503 UNAVAILABLE / 409
# ABORTED / 504 DEADLINE_EXCEEDED while a node is gone), never a hang.
sign_until() {
    local w=$1 msg=$2 u=$3 end=$((SECONDS + $4)) out
    while [ $SECONDS -lt $end ]; do
        if out=$(timeout 30 "$CLI" --url "$u" --json sign --wallet "$w" --msg "$msg" 2>&1); then
            grep -q '"verified":true' <<<"$out" || fail "signature did not verify: $out"
            return 0
        fi
        grep -qE '"code":"(UNAVAILABLE|ABORTED|DEADLINE_EXCEEDED|NOT_FOUND)"|HTTP (503|409|504)|transport' <<<"$out" ||
            fail "undocumented answer during failover: $out"
        echo "$out" >>"$T/retries"
        sleep 0.2
    done
    return 1
}

# The commit log's invariants (the database is the judge, not the nodes):
check_commit_log() {
    local bad
    bad=$(sql "SELECT encode(wallet,'hex'), epoch, count(DISTINCT owner) FROM cg_commit_log GROUP BY 1, 2 HAVING count(DISTINCT owner) > 1")
    [ -z "$bad" ] || fail "two nodes committed for one wallet in one epoch: $bad"
    bad=$(sql "SELECT encode(wallet,'hex'), version, count(*) FROM cg_commit_log GROUP BY 1, 2 HAVING count(*) > 1")
    [ -z "$bad" ] || fail "one record version committed twice: $bad"
    # Within a wallet, a later commit never carries an older epoch.
    bad=$(sql "SELECT encode(wallet,'hex') FROM (SELECT wallet, epoch, lag(epoch) OVER (PARTITION BY wallet ORDER BY version) AS prev FROM cg_commit_log) x WHERE epoch < prev LIMIT 5")
    [ -z "$bad" ] || fail "a commit under an older epoch after a newer one: $bad"
}

pg_start
case "$SECTION" in
routing)
    # --check-config names the backend and never prints the DSN's password.
    out=$("$D" --check-config --store-backend postgres --pg-dsn "host=db password=hunter2 user=c")
    grep -q '^store_backend = postgres$' <<<"$out" || fail "check-config: backend not shown"
    grep -q '^pg_dsn = host=db password=\*\*\* user=c$' <<<"$out" || fail "check-config: dsn not masked"
    ! grep -q hunter2 <<<"$out" || fail "check-config printed the database password"
    node 1
    node 2
    node 3
    ALL=$(urls 1 2 3)
    # DKGs and signings with every request on a random node: rendezvous
    # works although the devices of one wallet talk to different nodes.
    for i in 1 2 3 4; do
        "$CLI" --url "$ALL" --json dkg --t 2 --devices 2 --out "$T/w$i.json" | grep -q '"ok":true' || fail "dkg $i"
    done
    for i in 1 2 3 4; do
        "$CLI" --url "$ALL" --json sign --wallet "$T/w$i.json" --msg 0$i --signers 0,1 | grep -q '"verified":true' ||
            fail "sign $i"
        "$CLI" --url "$ALL" --json sign --wallet "$T/w$i.json" --msg 1$i --signers 0,2 --taproot |
            grep -q '"verified":true' || fail "taproot sign $i"
    done
    fwd=0
    for n in 1 2 3; do fwd=$((fwd + $(metric $n cosignerd_cluster_forwarded_total))); done
    [ "$fwd" -gt 0 ] || fail "no request was forwarded"
    # Each wallet is active on exactly its lease owner.
    held=0
    for n in 1 2 3; do held=$((held + $(metric $n cosignerd_cluster_leases_held))); done
    [ "$held" -ge 4 ] || fail "leases held: $held"
    [ "$(sql "SELECT count(*) FROM cg_lease WHERE expires > now()")" -ge 4 ] || fail "lease rows"
    # Hop limit: a lease row naming a live owner whose URL leads back to
    # node 1 itself (a stale or forged row) must not make node 1 forward in
    # a loop: the forwarded request is answered UNAVAILABLE, not sent on.
    "$CLI" --url "$(url 1)" --json dkg --t 2 --devices 1 --out "$T/hop.json" | grep -q '"ok":true' || fail "dkg hop"
    WH=$(wallet_id "$T/hop.json")
    HO=$(owner_of "$WH")
    for n in 1 2 3; do [ "node$n" = "$HO" ] && stop_node "$n"; done
    sql "UPDATE cg_lease SET owner = 'ghost', url = '$(url 1)', expires = now() + interval '1 hour' WHERE wallet = '\\x$WH'::bytea" >/dev/null
    [ -n "${PIDS[1]:-}" ] || node 1
    f0=$(metric 1 cosignerd_cluster_forwarded_total)
    h0=$(metric 1 cosignerd_cluster_hop_refusals_total)
    out=$(timeout 30 "$CLI" --url "$(url 1)" --json sign --wallet "$T/hop.json" --msg 01 2>&1) && fail "signed through a forwarding loop"
    grep -q 'UNAVAILABLE' <<<"$out" || fail "hop limit answer: $out"
    [ "$(metric 1 cosignerd_cluster_hop_refusals_total)" -gt "$h0" ] || fail "hop refusal not counted"
    [ "$(($(metric 1 cosignerd_cluster_forwarded_total) - f0))" -le 2 ] || fail "forwarded more than once per request"
    sql "UPDATE cg_lease SET expires = now() - interval '1 second' WHERE wallet = '\\x$WH'::bytea" >/dev/null
    for n in 1 2 3; do [ -n "${PIDS[$n]:-}" ] || node "$n"; done
    sign_until "$T/hop.json" 02 "$ALL" 30 || fail "wallet not served after its forged lease expired"
    # Graceful shutdown hands the leases back at once: the next request
    # for those wallets is served by another node without waiting a ttl.
    W1=$(wallet_id "$T/w1.json")
    sign_until "$T/w1.json" 76 "$ALL" 30 || fail "sign before hand-over" # someone holds it now
    O=$(owner_of "$W1")
    ON=${O#node}
    [ -n "$ON" ] || fail "no owner for $W1"
    stop_node "$ON"
    [ -z "$(sql "SELECT owner FROM cg_lease WHERE owner = '$O' AND expires > now()")" ] ||
        fail "leases of a stopped node still live"
    REST=$(urls)
    t0=$(date +%s%N)
    "$CLI" --url "$REST" --json sign --wallet "$T/w1.json" --msg 77 --signers 0,1 | grep -q '"verified":true' ||
        fail "sign after graceful hand-over"
    ms=$((($(date +%s%N) - t0) / 1000000))
    [ "$ms" -lt $TTL ] || echo "note: hand-over sign took $ms ms" >&2
    node "$ON"
    # Database down: readiness says so, requests are refused with
    # UNAVAILABLE + Retry-After (nothing acknowledged), and service
    # resumes when the database is back.
    pg_stop
    for _ in $(seq 1 60); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "$(url 1)/readyz") || true
        [ "$code" = 503 ] && break
        sleep 0.1
    done
    [ "$code" = 503 ] || fail "/readyz with the database down: $code"
    out=$("$CLI" --url "$(url 1)" --json dkg --t 2 --devices 1 --out "$T/down.json" 2>&1) && fail "dkg acknowledged with the database down"
    grep -qE 'UNAVAILABLE|503|DEADLINE' <<<"$out" || fail "database down answer: $out"
    pg_start
    for _ in $(seq 1 100); do
        curl -sf "$(url 1)/readyz" >/dev/null && break
        sleep 0.1
    done
    curl -sf "$(url 1)/readyz" >/dev/null || fail "not ready after the database came back"
    sign_until "$T/w2.json" 99 "$ALL" 30 || fail "no signature after the database came back"
    # A node with another host key than the cluster's refuses to start.
    mkdir -p "$T/n9"
    chmod 700 "$T/n9"
    python3 -c 'import os; open(os.sys.argv[1],"wb").write(os.urandom(32))' "$T/n9/host.key"
    chmod 600 "$T/n9/host.key"
    rc=0
    timeout 30 "$D" --listen "127.0.0.1:$(free_port)" --data-dir "$T/n9" --master-key "$T/master.key" \
        --store-backend postgres --pg-dsn "$DSN" --node-id node9 2>"$T/n9.err" || rc=$?
    [ $rc -ne 0 ] || fail "a node with another host key started"
    grep -q cluster_host_key_mismatch "$T/n9.err" || fail "host key mismatch not named: $(tail -2 "$T/n9.err")"
    # ... and so does one with another master key.
    python3 -c 'import os; open(os.sys.argv[1],"wb").write(os.urandom(32))' "$T/other.key"
    chmod 600 "$T/other.key"
    cp -p "$T/host.key" "$T/n9/host.key"
    rc=0
    timeout 30 "$D" --listen "127.0.0.1:$(free_port)" --data-dir "$T/n9" --master-key "$T/other.key" \
        --store-backend postgres --pg-dsn "$DSN" --node-id node9 2>"$T/n9.err" || rc=$?
    [ $rc -ne 0 ] || fail "a node with another master key started"
    grep -q store_open_failed "$T/n9.err" || fail "master key mismatch not refused: $(tail -2 "$T/n9.err")"
    check_commit_log
    for n in 1 2 3; do stop_node $n; done
    no_sanitizer_reports
    ;;
failover)
    node 1
    node 2
    node 3
    ALL=$(urls 1 2 3)
    NW=6
    for i in $(seq 1 $NW); do
        "$CLI" --url "$ALL" --json dkg --t 2 --devices 1 --out "$T/w$i.json" | grep -q '"ok":true' || fail "dkg $i"
        "$CLI" --url "$ALL" --json sign --wallet "$T/w$i.json" --msg 00 | grep -q '"verified":true' || fail "sign $i"
    done
    for cycle in 1 2 3 4 5; do
        # The owner of one wallet dies without a word.
        W=$(wallet_id "$T/w$(((cycle - 1) % NW + 1)).json")
        O=$(owner_of "$W")
        [ -n "$O" ] || fail "cycle $cycle: no live lease for $W"
        V=${O#node}
        kill_node "$V"
        REST=$(urls)
        t0=$(date +%s%N)
        for i in $(seq 1 $NW); do
            sign_until "$T/w$i.json" "$(printf '%02x' $cycle)" "$REST" $((TTL / 1000 + 30)) ||
                fail "cycle $cycle: wallet $i never signed again after node $V died"
        done
        echo "cycle $cycle: node $V killed; all $NW wallets signed again in $((($(date +%s%N) - t0) / 1000000)) ms" >&2
        # An acknowledged DKG during the outage survives the next one.
        "$CLI" --url "$REST" --json dkg --t 2 --devices 1 --out "$T/x$cycle.json" | grep -q '"ok":true' ||
            fail "cycle $cycle: dkg with a node down"
        node "$V"
    done
    # Paused owner: SIGSTOP past its lease, another node takes over; when
    # the paused node resumes it must not commit or answer for the wallet.
    W=$(wallet_id "$T/w1.json")
    O=$(owner_of "$W")
    V=${O#node}
    E0=$(sql "SELECT epoch FROM cg_lease WHERE wallet = '\\x$W'::bytea")
    kill -STOP "${PIDS[$V]}"
    OTHERS=""
    for n in 1 2 3; do [ "$n" = "$V" ] || OTHERS="$OTHERS $n"; done
    # shellcheck disable=SC2086
    REST=$(urls $OTHERS)
    sign_until "$T/w1.json" 5050 "$REST" $((TTL / 1000 + 30)) || fail "no takeover from the paused node"
    E1=$(sql "SELECT epoch FROM cg_lease WHERE wallet = '\\x$W'::bytea")
    [ "$E1" -gt "$E0" ] || fail "takeover did not bump the epoch ($E0 -> $E1)"
    [ "$(owner_of "$W")" != "$O" ] || fail "paused node still owns $W"
    kill -CONT "${PIDS[$V]}"
    # The resumed node's own requests for the wallet go to the new owner.
    sign_until "$T/w1.json" 5151 "$(url "$V")" 30 || fail "resumed node did not route to the new owner"
    for _ in $(seq 1 50); do
        [ "$(metric "$V" cosignerd_cluster_leases_lost_total)" -ge 1 ] && break
        sleep 0.1
    done
    [ "$(metric "$V" cosignerd_cluster_leases_lost_total)" -ge 1 ] || fail "the paused node never noticed its lost lease"
    # Every wallet ever acknowledged is still there and signs.
    for f in "$T"/w*.json "$T"/x*.json; do
        sign_until "$f" ff "$ALL" 30 || fail "acknowledged wallet $f lost"
    done
    check_commit_log
    n=$(sql "SELECT count(DISTINCT wallet) FROM cg_rec")
    [ "$n" -ge $((NW + 5)) ] || fail "records: $n"
    for n in 1 2 3; do stop_node $n; done
    no_sanitizer_reports
    ;;
*)
    fail "unknown section $SECTION"
    ;;
esac
echo "cluster $SECTION: ok"
