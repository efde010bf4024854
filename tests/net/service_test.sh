#!/usr/bin/env bash
# End-to-end tests of cosignerd against a real daemon on 127.0.0.1 (port
# picked by the kernel), data dir under a temp dir, driven with cosigner-cli.
#
#   service_test.sh COSIGNERD COSIGNER_CLI SECTION [COSIGNER_BENCH]
#
# SECTION: cli | auth | replay | badinput | limits | restart | eviction | fault | config | notify |
#          recovery | retire | bench
set -euo pipefail
# Wallets here are created without enrollment control (admission has its
# own tests, tests/net/admission_test.sh).
export COSIGNERD_ENROLLMENT=open
D=$1
CLI=$2
SECTION=$3
BENCH=${4:-$(dirname "$CLI")/cosigner-bench}
T=$(mktemp -d)
PID=
LISTENER=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" || true; fi
    if [ -n "$LISTENER" ]; then kill "$LISTENER" 2>/dev/null || true; wait "$LISTENER" 2>/dev/null || true; fi
    rm -rf "$T"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; [ -f "$T/log" ] && tail -20 "$T/log" >&2; exit 1; }

# start [extra daemon flags...]: starts the daemon, sets URL once it is ready.
# The port is read back from this start's "started" line; the line and the
# readiness probe are polled together, so a line caught half-written or a
# slow sanitizer build cannot be mistaken for a daemon that is not ready.
start() {
    "$D" --listen 127.0.0.1:0 --data-dir "$T/data" "$@" 2>>"$T/log" &
    PID=$!
    local port= ready=
    for _ in $(seq 1 400); do
        if [ "$(grep -c 'event=started' "$T/log")" -ge "$STARTS" ]; then
            port=$(grep -o 'event=started .*listen=127.0.0.1:[0-9]*' "$T/log" | tail -1 | sed 's/.*://') || true
            if [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; then
                ready=1
                break
            fi
        fi
        kill -0 "$PID" 2>/dev/null || fail "daemon exited at start"
        sleep 0.05
    done
    [ -n "$port" ] || fail "daemon did not start"
    [ -n "$ready" ] || fail "not ready"
    URL="http://127.0.0.1:$port"
}
STARTS=1

stop() {
    kill -TERM "$PID"
    local rc=0
    wait "$PID" || rc=$?
    PID=
    [ $rc -eq 0 ] || fail "daemon exited with $rc on SIGTERM"
    grep -q 'event=stopped' "$T/log" || fail "no clean stop logged"
    ! grep -qE 'runtime error|Sanitizer|ThreadSanitizer' "$T/log" || fail "sanitizer report in the daemon log"
}

cli() { "$CLI" --url "$URL" "$@"; }

metric() { # metric NAME -> value (sum over label sets)
    curl -sf "$URL/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}

healthy() { curl -sf "$URL/healthz" >/dev/null || fail "daemon not healthy after $1"; kill -0 "$PID" || fail "daemon died after $1"; }

# expect CODE ERRCODE -- raw args...: one raw request, checks HTTP code and error code
expect() {
    local want=$1 wantcode=$2
    shift 3
    local out
    out=$(cli raw "$@" | tail -1)
    local got=${out%% *}
    [ "$got" = "$want" ] || fail "raw $* -> $out (want $want)"
    if [ "$wantcode" != "-" ]; then
        echo "$out" | grep -q "\"code\":\"$wantcode\"" || fail "raw $* -> $out (want $wantcode)"
    fi
}

keyfile_of() { # keyfile_of WALLET INDEX OUT: a device's host secret key from a wallet file
    python3 -c 'import json,sys; w=json.load(open(sys.argv[1])); d=[x for x in w["devices"] if x["index"]==int(sys.argv[2])][0]; open(sys.argv[3],"w").write(d["hostseckey"]+"\n")' "$1" "$2" "$3"
}

wallet_id() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["wallet_id"])' "$1"; }

jfield() { # jfield KEY < "CODE JSON" line (cli raw) or JSON: one top-level field
    python3 -c 'import json,sys; l=sys.stdin.read().strip(); l=l.split(" ",1)[1] if l[:1].isdigit() and " " in l else l; print(json.loads(l)[sys.argv[1]])' "$1"
}

# A well-formed signing round 1 for wallet $1 by signers [0,1] (refused before
# it would matter what it holds).
sign1_body() {
    local g=0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798
    echo "{\"session_id\":\"$(printf '33%.0s' $(seq 32))\",\"signer_ids\":[0,1],\"msg\":\"00\",\"tweaks\":[],\"pubnonce\":\"$g$g\"}"
}

case "$SECTION" in
cli)
    start
    cli --json info | grep -q '"hostpubkey"' || fail info
    cli keygen --out "$T/k1" >/dev/null
    [ "$(stat -c %a "$T/k1")" = 600 ] || fail "key file mode"
    cli keygen --out "$T/k2" >/dev/null
    # 2-of-2 with a given device key, plain and Taproot signatures
    cli --json dkg --t 2 --key "$T/k1" --out "$T/w22.json" | grep -q '"ok":true' || fail "dkg 2-of-2"
    cli --json sign --wallet "$T/w22.json" --msg 68656c6c6f | grep -q '"verified":true' || fail "sign 2-of-2"
    cli --json sign --wallet "$T/w22.json" --msg 00 --taproot | grep -q '"verified":true' || fail "taproot 2-of-2"
    # 2-of-3: two devices; every signer pair that includes the service
    cli --json dkg --t 2 --devices 2 --out "$T/w23.json" | grep -q '"ok":true' || fail "dkg 2-of-3"
    cli --json sign --wallet "$T/w23.json" --msg 0102 --signers 0,1 | grep -q '"verified":true' || fail "sign 2-of-3 {0,1}"
    cli --json sign --wallet "$T/w23.json" --msg 0102 --signers 0,2 --taproot \
        --merkle-root 1111111111111111111111111111111111111111111111111111111111111111 |
        grep -q '"verified":true' || fail "sign 2-of-3 {0,2} taproot with merkle root"
    cli --json sign --wallet "$T/w23.json" --msg 03 --signers 0,1,2 | grep -q '"verified":true' || fail "sign 2-of-3 all"
    # wallet description
    keyfile_of "$T/w23.json" 1 "$T/d1"
    W=$(wallet_id "$T/w23.json")
    expect 200 - -- GET "/v1/wallets/$W" --key "$T/d1"
    cli raw GET "/v1/wallets/$W" --key "$T/d1" | grep -q '"pubshares"' || fail "wallet info"
    [ "$(metric cosignerd_http_request_duration_seconds_count)" -gt 0 ] || fail "latency histogram"
    stop
    ;;
auth)
    start
    cli keygen --out "$T/k1" >/dev/null
    cli keygen --out "$T/stranger" >/dev/null
    cli dkg --t 2 --key "$T/k1" --out "$T/w.json" >/dev/null || fail "dkg"
    W=$(wallet_id "$T/w.json")
    SVC=$(cli --json info | python3 -c 'import json,sys; print(json.load(sys.stdin)["hostpubkey"])')
    PK1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hostpubkeys"][1])' "$T/w.json")
    # A DKG round 1 for a new wallet that would activate a fresh actor if let through.
    cli keygen --out "$T/k9" >/dev/null
    PK9=$("$CLI" --json keygen --out "$T/k9" | python3 -c 'import json,sys; print(json.load(sys.stdin)["hostpubkey"])')
    BODY="{\"params\":{\"hostpubkeys\":[\"$SVC\",\"$PK9\"],\"t\":2},\"pmsg1\":\"00\"}"
    A0=$(metric cosignerd_actor_activations_total)
    M0=$(metric cosignerd_actor_messages_total)
    expect 401 UNAUTHENTICATED -- POST /v1/dkg/round1 --body "$BODY"
    expect 401 UNAUTHENTICATED -- POST /v1/dkg/round1 --body "$BODY" --key "$T/k9" --bad-sig
    expect 401 UNAUTHENTICATED -- POST /v1/dkg/round1 --body "$BODY" --key "$T/k9" --ts-offset-ms -301000
    expect 401 UNAUTHENTICATED -- POST /v1/dkg/round1 --body "$BODY" --key "$T/k9" --ts-offset-ms 301000
    expect 403 PERMISSION_DENIED -- POST /v1/dkg/round1 --body "$BODY" --key "$T/stranger"
    expect 403 PERMISSION_DENIED -- GET "/v1/wallets/$W" --key "$T/stranger"
    expect 403 PERMISSION_DENIED -- POST "/v1/wallets/$W/sign/round2" --key "$T/stranger" \
        --body '{"session_id":"00","psig":"00"}'
    expect 404 NOT_FOUND -- GET "/v1/wallets/$(printf 'ab%.0s' $(seq 32))" --key "$T/k1"
    # signature over a different body than the one sent
    out=$(cli raw POST /v1/dkg/round2 --key "$T/k1" --body "{\"wallet_id\":\"$W\",\"pmsg2\":\"00\"}" --bad-sig | tail -1)
    [ "${out%% *}" = 401 ] || fail "tampered request: $out"
    [ "$(metric cosignerd_actor_activations_total)" = "$A0" ] || fail "refused requests activated an actor"
    [ "$(metric cosignerd_actor_messages_total)" = "$M0" ] || fail "refused requests reached an actor"
    # replay: the same signed request twice -> the second is refused
    out=$(cli raw GET "/v1/wallets/$W" --key "$T/k1" --nonce 000102030405060708090a0b0c0d0e0f --repeat 2)
    [ "$(echo "$out" | sed -n 1p | cut -d' ' -f1)" = 200 ] || fail "first of replay pair: $out"
    echo "$out" | sed -n 2p | grep -q '^401 .*UNAUTHENTICATED' || fail "replay accepted: $out"
    [ "$(metric cosignerd_actor_messages_total)" = "$((M0 + 1))" ] || fail "replay reached an actor"
    [ "$(metric cosignerd_auth_failures_total)" -ge 8 ] || fail "auth failures not counted"
    # (captured first: grep -q exiting early would fail curl, and the pipeline, with SIGPIPE)
    m=$(curl -sf "$URL/metrics")
    grep -q "cosignerd_auth_failures_total{reason=\"replay\"} 1\$" <<<"$m" || fail "replay metric: $(grep auth_failures <<<"$m")"
    healthy auth
    stop
    ;;
replay)
    # The replay cache is bounded (here 128 entries: 64 shards of 2-3). Only
    # participants' requests may occupy it: a stranger flooding validly
    # signed requests with fresh nonces is refused 403 every time and leaves
    # the participants' service intact (no 503 "replay cache full").
    start --replay-cache-entries 128
    cli keygen --out "$T/stranger" >/dev/null
    cli dkg --t 2 --devices 1 --out "$T/w.json" >/dev/null || fail "dkg"
    keyfile_of "$T/w.json" 1 "$T/d1"
    W=$(wallet_id "$T/w.json")
    cli raw GET "/v1/wallets/$W" --key "$T/stranger" --repeat 1000 --fresh-nonce >"$T/flood"
    [ "$(wc -l <"$T/flood")" = 1000 ] || fail "flood: $(wc -l <"$T/flood") responses"
    n=$(grep -c '^403 .*"code":"PERMISSION_DENIED"' "$T/flood") || true
    [ "$n" = 1000 ] || fail "stranger flood: $n of 1000 refused 403: $(cut -c1-80 "$T/flood" | sort | uniq -c)"
    cli raw POST "/v1/wallets/$W/sign/round2" --key "$T/stranger" --body '{"session_id":"00","psig":"00"}' \
        --repeat 200 --fresh-nonce >"$T/flood2"
    n=$(grep -c '^403 ' "$T/flood2") || true
    [ "$n" = 200 ] || fail "stranger round-2 flood: $n of 200 refused 403"
    expect 200 - -- GET "/v1/wallets/$W" --key "$T/d1"
    cli --json sign --wallet "$T/w.json" --msg 00 | grep -q '"verified":true' ||
        fail "participant refused after a stranger's flood"
    m=$(curl -sf "$URL/metrics")
    grep -q 'cosignerd_auth_failures_total{reason="not_participant"} 1200$' <<<"$m" ||
        fail "not_participant metric: $(grep auth_failures <<<"$m")"
    grep -q 'cosignerd_auth_failures_total{reason="replay_cache_full"} 0$' <<<"$m" ||
        fail "replay cache filled: $(grep auth_failures <<<"$m")"
    # Replays by a participant are still refused, and the bound still holds
    # for participants (the cache really is that small).
    out=$(cli raw GET "/v1/wallets/$W" --key "$T/d1" --repeat 2)
    echo "$out" | sed -n 2p | grep -q '^401 .*UNAUTHENTICATED' || fail "replay accepted: $out"
    cli raw GET "/v1/wallets/$W" --key "$T/d1" --repeat 400 --fresh-nonce >"$T/flood3"
    grep -q '^503 .*"code":"UNAVAILABLE"' "$T/flood3" || fail "participant flood never filled the cache"
    healthy replay
    stop
    ;;
badinput)
    start --conn-timeout-s 2 --body-max 65536
    cli keygen --out "$T/k1" >/dev/null
    cli dkg --t 2 --key "$T/k1" --out "$T/w.json" >/dev/null || fail "dkg"
    W=$(wallet_id "$T/w.json")
    SVC=$(cli --json info | python3 -c 'import json,sys; print(json.load(sys.stdin)["hostpubkey"])')
    PK1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hostpubkeys"][1])' "$T/w.json")
    S1="/v1/wallets/$W/sign/round1"
    SID=$(printf '11%.0s' $(seq 32))
    NONCE_OK="02$(printf '79%.0s' $(seq 32))02$(printf '79%.0s' $(seq 32))"
    expect 400 INVALID_ARGUMENT -- POST /v1/dkg/round1 --key "$T/k1" --body '{"params":'
    expect 400 INVALID_ARGUMENT -- POST /v1/dkg/round1 --key "$T/k1" --body 'not json'
    expect 400 INVALID_ARGUMENT -- POST /v1/dkg/round1 --key "$T/k1" --body '[1,2]'
    expect 400 INVALID_ARGUMENT -- POST /v1/dkg/round1 --key "$T/k1" --body '{"params":{"hostpubkeys":[],"t":1},"pmsg1":""}'
    expect 400 INVALID_ARGUMENT -- POST /v1/dkg/round1 --key "$T/k1" \
        --body "{\"params\":{\"hostpubkeys\":[\"$SVC\",\"$PK1\"],\"t\":3},\"pmsg1\":\"00\"}"
    expect 400 INVALID_ARGUMENT -- POST /v1/dkg/round1 --key "$T/k1" \
        --body "{\"params\":{\"hostpubkeys\":[\"$SVC\",\"$PK1\"],\"t\":2},\"pmsg1\":\"zz\"}"
    # invalid point (x not on the curve) and wrong length
    expect 400 INVALID_ARGUMENT -- POST /v1/dkg/round1 --key "$T/k1" \
        --body "{\"params\":{\"hostpubkeys\":[\"$SVC\",\"$PK1\",\"02$(printf 'ff%.0s' $(seq 32))\"],\"t\":2},\"pmsg1\":\"00\"}"
    expect 400 INVALID_ARGUMENT -- POST /v1/dkg/round1 --key "$T/k1" \
        --body "{\"params\":{\"hostpubkeys\":[\"$SVC\",\"${PK1:0:64}\"],\"t\":2},\"pmsg1\":\"00\"}"
    # duplicate keys
    expect 400 INVALID_ARGUMENT -- POST /v1/dkg/round1 --key "$T/k1" \
        --body "{\"params\":{\"hostpubkeys\":[\"$SVC\",\"$PK1\",\"$PK1\"],\"t\":2},\"pmsg1\":\"00\"}"
    # signing: wrong lengths, bad hex, bad ids, invalid nonce points
    expect 400 INVALID_ARGUMENT -- POST "$S1" --key "$T/k1" \
        --body "{\"session_id\":\"00\",\"signer_ids\":[0,1],\"msg\":\"00\",\"tweaks\":[],\"pubnonce\":\"$NONCE_OK\"}"
    expect 400 INVALID_ARGUMENT -- POST "$S1" --key "$T/k1" \
        --body "{\"session_id\":\"$SID\",\"signer_ids\":[0,0],\"msg\":\"00\",\"tweaks\":[],\"pubnonce\":\"$NONCE_OK\"}"
    expect 400 INVALID_ARGUMENT -- POST "$S1" --key "$T/k1" \
        --body "{\"session_id\":\"$SID\",\"signer_ids\":[0,1],\"msg\":\"0g\",\"tweaks\":[],\"pubnonce\":\"$NONCE_OK\"}"
    expect 400 INVALID_ARGUMENT -- POST "$S1" --key "$T/k1" \
        --body "{\"session_id\":\"$SID\",\"signer_ids\":[0,1],\"msg\":\"00\",\"tweaks\":[{\"tweak\":\"00\",\"xonly\":true}],\"pubnonce\":\"$NONCE_OK\"}"
    expect 400 INVALID_ARGUMENT -- POST "$S1" --key "$T/k1" \
        --body "{\"session_id\":\"$SID\",\"signer_ids\":[0,1],\"msg\":\"00\",\"tweaks\":[],\"pubnonce\":\"02$(printf 'ff%.0s' $(seq 32))02$(printf 'ff%.0s' $(seq 32))\"}"
    expect 400 INVALID_ARGUMENT -- POST "/v1/wallets/$W/sign/round2" --key "$T/k1" --body "{\"session_id\":\"$SID\",\"psig\":\"1234\"}"
    # oversized body: refused up front by Content-Length
    head -c 70000 /dev/zero | tr '\0' 'a' >"$T/big"
    expect 413 PAYLOAD_TOO_LARGE -- POST /v1/dkg/round1 --key "$T/k1" --body-file "$T/big"
    # unknown routes and methods
    expect 404 NOT_FOUND -- GET /v1/nope
    expect 404 NOT_FOUND -- GET /v1/wallets/xyz/sign/round1
    expect 404 NOT_FOUND -- GET /v1/dkg/round1
    expect 404 NOT_FOUND -- POST "/v1/wallets/$W/sign/round3" --key "$T/k1" --body '{}'
    expect 414 - -- GET "/$(printf 'a%.0s' $(seq 600))"
    # missing and garbled Authorization
    expect 401 UNAUTHENTICATED -- POST /v1/dkg/round2 --body '{}'
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Cosigner-BIP340 pk=zz' -d '{}' "$URL/v1/dkg/round2")
    [ "$code" = 401 ] || fail "garbled Authorization -> $code"
    # oversized header
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $(printf 'b%.0s' $(seq 20000))" "$URL/healthz")
    [ "$code" = 431 ] || [ "$code" = 413 ] || fail "oversized header -> $code"
    # chunked body above the cap (no Content-Length): counted while reading
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: chunked' -H 'Authorization: Cosigner-BIP340 pk=00, ts=0, nonce=00, sig=00' --data-binary @"$T/big" "$URL/v1/dkg/round2")
    [ "$code" = 401 ] || [ "$code" = 413 ] || fail "chunked oversized -> $code"
    healthy "bad requests"
    # truncated body: Content-Length larger than what is sent, then hang up
    exec 3<>/dev/tcp/127.0.0.1/"${URL##*:}"
    printf 'POST /v1/dkg/round1 HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\nAuthorization: Cosigner-BIP340 pk=00, ts=1, nonce=00, sig=00\r\n\r\n{"params":' >&3
    exec 3>&-
    # slowloris: a partial request line that never completes is cut off by the idle timeout
    exec 4<>/dev/tcp/127.0.0.1/"${URL##*:}"
    printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ' >&4
    start_s=$(date +%s)
    if timeout 10 cat <&4 >/dev/null; then :; else fail "slowloris connection not closed by the server"; fi
    exec 4>&-
    [ $(( $(date +%s) - start_s )) -lt 10 ] || fail "slowloris held the connection"
    healthy "truncated body and slowloris"
    cli --json sign --wallet "$T/w.json" --msg 00 | grep -q '"verified":true' || fail "signing after bad input"
    stop
    ;;
limits)
    # Over the connection limit: 429 with Retry-After, and service resumes after.
    start --max-connections 2
    exec 5<>/dev/tcp/127.0.0.1/"${URL##*:}"
    exec 6<>/dev/tcp/127.0.0.1/"${URL##*:}"
    exec 7<>/dev/tcp/127.0.0.1/"${URL##*:}"
    printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n' >&5
    printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n' >&6
    printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n' >&7
    sleep 0.2
    hdrs=$(curl -s -D - -o "$T/body" "$URL/v1/info")
    echo "$hdrs" | head -1 | grep -q ' 429' || fail "over the connection limit: $hdrs"
    echo "$hdrs" | grep -qi '^Retry-After: [1-9]' || fail "429 without Retry-After"
    grep -q '"RESOURCE_EXHAUSTED"' "$T/body" || fail "429 body"
    exec 5>&- 6>&- 7>&-
    sleep 0.3
    healthy "connection limit"
    curl -sf "$URL/v1/info" >/dev/null || fail "service did not recover below the limit"
    stop
    # SIGTERM with a device parked in a rendezvous: it is answered, the daemon exits cleanly.
    : >"$T/log"
    STARTS=1
    start --drain-timeout-ms 300
    cli dkg --t 2 --devices 2 --out "$T/w3.json" >/dev/null || fail "dkg 2-of-3"
    keyfile_of "$T/w3.json" 1 "$T/d1"
    W=$(wallet_id "$T/w3.json")
    G=0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798
    SID=$(printf '22%.0s' $(seq 32))
    cli raw POST "/v1/wallets/$W/sign/round1" --key "$T/d1" \
        --body "{\"session_id\":\"$SID\",\"signer_ids\":[0,1,2],\"msg\":\"00\",\"tweaks\":[],\"pubnonce\":\"$G$G\"}" >"$T/parked" &
    RAW=$!
    for _ in $(seq 1 50); do [ "$(metric cosignerd_actor_parked_replies)" -ge 1 ] && break; sleep 0.1; done
    [ "$(metric cosignerd_actor_parked_replies)" -ge 1 ] || fail "request did not park"
    stop
    wait $RAW || true
    grep -qE '^(503|409) ' "$T/parked" || fail "parked request at shutdown got: $(cat "$T/parked")"
    ;;
restart)
    start
    cli keygen --out "$T/k1" >/dev/null
    cli dkg --t 2 --key "$T/k1" --out "$T/w.json" >/dev/null || fail "dkg"
    cli dkg --t 2 --devices 2 --out "$T/w3.json" >/dev/null || fail "dkg 2-of-3"
    cli sign --wallet "$T/w.json" --msg 00 >/dev/null || fail "sign before restart"
    HPK=$(cli --json info)
    stop
    [ "$(stat -c %a "$T/data/host.key")" = 600 ] || fail "host key mode"
    STARTS=2
    start
    [ "$(cli --json info)" = "$HPK" ] || fail "host key changed across restart"
    cli --json sign --wallet "$T/w.json" --msg 01 --taproot | grep -q '"verified":true' || fail "2-of-2 after restart"
    cli --json sign --wallet "$T/w3.json" --msg 01 --signers 0,2 | grep -q '"verified":true' || fail "2-of-3 after restart"
    stop
    ;;
eviction)
    start --idle-threshold-ms 200 --evict-quantum-ms 100
    cli dkg --t 2 --devices 1 --out "$T/w.json" >/dev/null || fail "dkg"
    cli dkg --t 2 --devices 2 --out "$T/w3.json" >/dev/null || fail "dkg 2-of-3"
    cli sign --wallet "$T/w.json" --msg 00 >/dev/null || fail "sign"
    A0=$(metric cosignerd_actor_activations_total)
    for _ in $(seq 1 50); do
        [ "$(metric cosignerd_actors_resident)" = 0 ] && break
        sleep 0.1
    done
    [ "$(metric cosignerd_actors_resident)" = 0 ] || fail "idle wallets not evicted"
    [ "$(metric cosignerd_actor_evictions_total)" -ge 2 ] || fail "evictions not counted"
    cli --json sign --wallet "$T/w.json" --msg 02 | grep -q '"verified":true' || fail "sign after eviction"
    cli --json sign --wallet "$T/w3.json" --msg 02 --signers 0,1 | grep -q '"verified":true' || fail "2-of-3 after eviction"
    [ "$(metric cosignerd_actor_activations_total)" -gt "$A0" ] || fail "no re-activation"
    stop
    ;;
fault)
    # Handler faults injected into one wallet leave the others (and itself) serving.
    # Each fault is logged as one key=value event line naming the wallet.
    start --fault-injection true --restart-max 1 --quarantine-base-ms 300
    cli dkg --t 2 --devices 1 --out "$T/w.json" >/dev/null || fail "dkg"
    cli dkg --t 2 --devices 1 --out "$T/v.json" >/dev/null || fail "dkg 2"
    keyfile_of "$T/w.json" 1 "$T/d1"
    W=$(wallet_id "$T/w.json")
    expect 500 INTERNAL -- POST "/v1/wallets/$W/fault" --key "$T/d1" --body '{"kind":"trap"}'
    cli --json sign --wallet "$T/v.json" --msg 00 | grep -q '"verified":true' || fail "other wallet after fault"
    cli --json sign --wallet "$T/w.json" --msg 00 | grep -q '"verified":true' || fail "faulted wallet after fault"
    [ "$(metric cosignerd_handler_faults_total)" -ge 1 ] || fail "fault not counted"
    grep -qE "^ts=[^ ]+ level=warn event=handler_fault wallet=$W kind=[a-z_]+ status=INTERNAL reason=\"handler panicked\"\$" "$T/log" ||
        fail "no handler_fault event line for the trap"
    expect 504 DEADLINE_EXCEEDED -- POST "/v1/wallets/$W/fault" --key "$T/d1" --body '{"kind":"spin"}'
    grep -qE "level=warn event=handler_fault wallet=$W kind=(budget|timeout) status=DEADLINE_EXCEEDED reason=\"handler ran out of time\"\$" "$T/log" ||
        fail "no handler_fault event line for the runaway handler"
    # an actor-level fault: the in-flight caller gets 503, the supervisor restarts the actor
    expect 200 - -- POST "/v1/wallets/$W/fault" --key "$T/d1" --body '{"kind":"actor"}'
    expect 503 UNAVAILABLE -- GET "/v1/wallets/$W" --key "$T/d1"
    grep -qE "^ts=[^ ]+ level=warn event=actor_restart wallet=$W status=UNAVAILABLE reason=\"actor loop fault\"\$" "$T/log" ||
        fail "no actor_restart event line"
    # a second one within the window exceeds --restart-max 1: quarantined
    expect 200 - -- POST "/v1/wallets/$W/fault" --key "$T/d1" --body '{"kind":"actor"}'
    expect 503 UNAVAILABLE -- GET "/v1/wallets/$W" --key "$T/d1"
    [ "$(grep -c "event=actor_restart wallet=$W " "$T/log")" = 2 ] || fail "restarts logged: $(grep -c actor_restart "$T/log")"
    grep -qE "level=warn event=actor_quarantined wallet=$W status=UNAVAILABLE retry_after_ms=300 reason=\"restart intensity exceeded\"\$" "$T/log" ||
        fail "no actor_quarantined event line"
    ! grep -q "event=[a-z_]* wallet=$(wallet_id "$T/v.json")" "$T/log" || fail "events logged for the other wallet"
    sleep 0.5
    cli --json sign --wallet "$T/w.json" --msg 01 | grep -q '"verified":true' || fail "faulted wallet after quarantine"
    stop
    ;;
config)
    unset $(env | grep -o '^COSIGNERD_[A-Z_]*') 2>/dev/null || true
    # bad_config WANT_MESSAGE [env NAME=VALUE...] -- ARGS...: exit 2, message on stderr
    bad_config() {
        local want=$1 rc=0
        shift
        local envs=()
        while [ "$1" != -- ]; do envs+=("$1"); shift; done
        shift
        env "${envs[@]}" "$D" "$@" >"$T/out" 2>"$T/err" || rc=$?
        [ $rc = 2 ] || fail "$* -> exit $rc (want 2): $(cat "$T/err")"
        grep -qF -- "$want" "$T/err" || fail "$* -> stderr \"$(cat "$T/err")\" (want \"$want\")"
    }
    effective() { # effective OPTION [env NAME=VALUE...] -- ARGS...: value from --check-config
        local name=$1
        shift
        local envs=()
        while [ "$1" != -- ]; do envs+=("$1"); shift; done
        shift
        env "${envs[@]}" "$D" --check-config "$@" | awk -F' = ' -v n="$name" '$1 == n { print $2 }'
    }
    # --help, --version, --check-config
    out=$("$D" --help) || fail "--help exited $?"
    for o in --listen --data-dir --master-key --config --check-config --cpu-budget-ms \
        --rendezvous-deadline-ms --replay-cache-entries COSIGNERD_CONFIG; do
        grep -q -- "$o" <<<"$out" || fail "--help does not mention $o"
    done
    ver=$("$D" --version) || fail "--version exited $?"
    grep -qE '^cosignerd [0-9]+\.[0-9]+\.[0-9]+' <<<"$ver" || fail "--version printed: $ver"
    out=$("$D" --check-config) || fail "--check-config exited $?"
    grep -qx 'config ok' <<<"$out" || fail "--check-config: $out"
    grep -qx 'cpu_budget_ms = 100' <<<"$out" || fail "cpu_budget_ms default: $out"
    grep -qx 'rendezvous_deadline_ms = 60000' <<<"$out" || fail "rendezvous_deadline_ms default"
    grep -qx 'master_key = ' <<<"$out" || fail "master_key default (empty = DATA_DIR/master.key)"
    grep -qx 'listen = 127.0.0.1:7074' <<<"$out" || fail "listen default"
    # precedence: default < INI file < COSIGNERD_* < flag, one option through all four
    printf '; test\n[limits]\nmailbox_size = 11\n' >"$T/c.ini"
    [ "$(effective mailbox_size --)" = 256 ] || fail "default"
    [ "$(effective mailbox_size -- --config "$T/c.ini")" = 11 ] || fail "INI over default"
    [ "$(effective mailbox_size COSIGNERD_CONFIG="$T/c.ini" --)" = 11 ] || fail "COSIGNERD_CONFIG"
    [ "$(effective mailbox_size COSIGNERD_MAILBOX_SIZE=22 -- --config "$T/c.ini")" = 22 ] ||
        fail "environment over INI"
    [ "$(effective mailbox_size COSIGNERD_MAILBOX_SIZE=22 -- --config "$T/c.ini" --mailbox-size 33)" = 33 ] ||
        fail "flag over environment"
    [ "$(effective mailbox_size COSIGNERD_MAILBOX_SIZE=22 -- --mailbox_size=44 --config="$T/c.ini")" = 44 ] ||
        fail "--key=VALUE form"
    [ "$(effective master_key -- --master-key "$T/some.key")" = "$T/some.key" ] || fail "master_key flag"
    # configuration errors: exit 2, a message naming the problem
    bad_config 'unknown option --no-such-option' -- --check-config --no-such-option 1
    bad_config 'mailbox_size: expected a non-negative integer, got "12x"' -- --check-config --mailbox-size 12x
    bad_config 'workers: expected a non-negative integer, got "-1"' -- --check-config --workers -1
    bad_config 'COSIGNERD_IDLE_THRESHOLD_MS: idle_threshold_ms: expected a non-negative integer' \
        COSIGNERD_IDLE_THRESHOLD_MS=soon -- --check-config
    bad_config 'fault_injection: expected a boolean, got "maybe"' -- --check-config --fault-injection maybe
    printf '[main]\nlisten = 127.0.0.1:0\nbogus_key = 1\n' >"$T/bad.ini"
    bad_config "$T/bad.ini:3: unknown option \"bogus_key\"" -- --check-config --config "$T/bad.ini"
    bad_config "cannot read config file $T/none.ini" -- --check-config --config "$T/none.ini"
    bad_config '--listen needs a value' -- --check-config --listen
    bad_config 'listen: expected HOST:PORT' -- --check-config --listen nowhere
    # a bad configuration stops before anything is created
    bad_config 'unknown option --bogus' -- --listen 127.0.0.1:0 --data-dir "$T/never" --bogus 1
    [ ! -e "$T/never" ] || fail "a refused configuration created the data dir"
    # master_key: a configured key file is never created
    rc=0
    "$D" --listen 127.0.0.1:0 --data-dir "$T/fresh" --master-key "$T/absent.key" 2>"$T/err" || rc=$?
    [ $rc = 1 ] || fail "missing configured master key -> exit $rc: $(cat "$T/err")"
    grep -q 'level=error event=store_open_failed .*cannot open master key' "$T/err" ||
        fail "missing configured master key: $(cat "$T/err")"
    [ ! -e "$T/absent.key" ] && [ ! -e "$T/fresh/master.key" ] || fail "a master key was created"
    # a provisioned key serves the store; nothing is written to DATA_DIR/master.key
    head -c 32 /dev/urandom >"$T/mk"
    chmod 600 "$T/mk"
    start --master-key "$T/mk" --enrollment open
    cli dkg --t 2 --devices 1 --out "$T/w.json" >/dev/null || fail "dkg with a configured master key"
    stop
    [ ! -e "$T/data/master.key" ] || fail "master.key created beside a configured key"
    # the existing store without its key, or with another: start-up error, never a new key
    rc=0
    "$D" --listen 127.0.0.1:0 --data-dir "$T/data" 2>"$T/err" || rc=$?
    [ $rc = 1 ] || fail "store without its key -> exit $rc"
    grep -q 'event=store_open_failed .*master key .*is missing' "$T/err" || fail "store without its key: $(cat "$T/err")"
    [ ! -e "$T/data/master.key" ] || fail "a new master key was created for an existing store"
    head -c 32 /dev/urandom >"$T/other"
    chmod 600 "$T/other"
    rc=0
    "$D" --listen 127.0.0.1:0 --data-dir "$T/data" --master-key "$T/other" 2>"$T/err" || rc=$?
    [ $rc = 1 ] || fail "store with another key -> exit $rc"
    grep -q 'event=store_open_failed .*does not belong to this store' "$T/err" || fail "another key: $(cat "$T/err")"
    ! grep -q 'event=started' "$T/err" || fail "started with the wrong key"
    # and with its key again, the wallet is there
    STARTS=2
    start --master-key "$T/mk" --enrollment open
    cli --json sign --wallet "$T/w.json" --msg 00 | grep -q '"verified":true' || fail "sign after key checks"
    [ "$(cli --json info | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')" = "$(awk '{ print $2 }' <<<"$ver")" ] ||
        fail "--version and /v1/info disagree: $ver"
    stop
    # A value with a space, a quote and a newline is quoted and escaped: the
    # event stays one line and cannot forge another key.
    odd="$T/odd dir\"x=1
level=error"
    "$D" --listen 127.0.0.1:0 --data-dir "$odd" 2>"$T/err" &
    PID=$!
    for _ in $(seq 1 200); do grep -q 'event=started' "$T/err" && break; sleep 0.05; done
    kill -TERM "$PID"
    wait "$PID" || fail "daemon with an odd data dir exited non-zero"
    PID=
    grep -qF 'data_dir="'"$T"'/odd dir\"x=1\nlevel=error"' "$T/err" ||
        fail "data_dir not escaped: $(grep started "$T/err")"
    ! grep -q '^level=error' "$T/err" || fail "a value broke its event into two lines"
    ;;
notify)
    # systemd notify protocol (dist/cosignerd.service is Type=notify with a
    # watchdog): READY=1 once serving, WATCHDOG=1 every WATCHDOG_USEC/2 when
    # the watchdog is meant for this process, STOPPING=1 on SIGTERM. A
    # datagram socket stands in for systemd; each datagram is logged as one
    # line, its newlines turned into '|'. Only deadlines are asserted, never
    # intervals: the machine may be loaded.
    python3 - "$T/notify.sock" "$T/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        f.write(s.recv(65536).decode(errors="replace").replace("\n", "|") + "\n")
PY
    LISTENER=$!
    for _ in $(seq 1 200); do [ -S "$T/notify.sock" ] && break; sleep 0.05; done
    [ -S "$T/notify.sock" ] || fail "notify listener did not bind"
    : >"$T/notify.log"
    # until_logged PATTERN COUNT WHAT: waits (30 s at most) for COUNT lines
    # of the notify log to match the extended regex PATTERN.
    until_logged() {
        local n=0
        for _ in $(seq 1 600); do
            n=$(grep -cE "$1" "$T/notify.log") || true
            [ "$n" -ge "$2" ] && return 0
            sleep 0.05
        done
        fail "$3: $n of $2 notifications: $(tr '\n' ' ' <"$T/notify.log")"
    }
    # sd_watchdog_enabled(): with WATCHDOG_PID set, the watchdog is only
    # this process's if the PID is its own, as systemd sets it. A wrapper
    # that execs the daemon knows that PID before the daemon runs.
    REAL_D=$D
    D=$T/cosignerd-wrapper
    printf '#!/bin/sh\nexport WATCHDOG_PID="${WATCHDOG_PID:-$$}"\nexec "%s" "$@"\n' "$REAL_D" >"$D"
    chmod +x "$D"
    NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=200000 start
    until_logged '^READY=1' 1 "no READY=1"
    ready=$(head -1 "$T/notify.log")
    grep -qE '^READY=1\|' <<<"$ready" || fail "first notification is not READY=1: $ready"
    grep -qF "|MAINPID=$PID|" <<<"|$ready|" || fail "READY=1 without MAINPID=$PID: $ready"
    grep -qF "|STATUS=serving on 127.0.0.1:${URL##*:}|" <<<"|$ready|" ||
        fail "READY=1 without STATUS naming the address: $ready"
    until_logged '^WATCHDOG=1$' 2 "watchdog pings (WATCHDOG_USEC=200000)"
    healthy "watchdog pings"
    stop
    until_logged '^STOPPING=1$' 1 "no STOPPING=1 on SIGTERM"
    [ "$(tail -1 "$T/notify.log")" = STOPPING=1 ] || fail "notifications after STOPPING=1: $(tail -3 "$T/notify.log")"
    # A watchdog meant for another process (WATCHDOG_PID not ours): READY=1
    # still, but no pings. Without it the main loop wakes once a second, so
    # 1.5 s after READY=1 a wrongly enabled watchdog would have pinged.
    : >"$T/notify.log"
    : >"$T/log"
    NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=200000 WATCHDOG_PID=1 start
    until_logged '^READY=1' 1 "no READY=1 with another process's watchdog"
    sleep 1.5
    ! grep -q '^WATCHDOG=' "$T/notify.log" || fail "pinged a watchdog meant for WATCHDOG_PID=1"
    stop
    until_logged '^STOPPING=1$' 1 "no STOPPING=1 on SIGTERM"
    D=$REAL_D
    ;;
recovery)
    # "The record is lost but the keys are backed up": a 2-of-3 wallet, its
    # recovery data fetched by a device, the service started again on a new
    # data directory holding only master.key and host.key, then restored
    # from that data and signing again under the same threshold key.
    start
    cli keygen --out "$T/stranger" >/dev/null
    cli --json dkg --t 2 --devices 2 --out "$T/w.json" | grep -q '"ok":true' || fail "dkg 2-of-3"
    W=$(wallet_id "$T/w.json")
    TPK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["thresh_pubkey"])' "$T/w.json")
    keyfile_of "$T/w.json" 1 "$T/d1"
    keyfile_of "$T/w.json" 2 "$T/d2"
    cli --json sign --wallet "$T/w.json" --msg 0102 --signers 0,1 | grep -q '"verified":true' ||
        fail "sign before the loss"
    # Any participant may fetch the recovery data, nobody else.
    expect 403 PERMISSION_DENIED -- GET "/v1/wallets/$W/recovery" --key "$T/stranger"
    expect 200 - -- GET "/v1/wallets/$W/recovery" --key "$T/d2"
    out=$(cli raw GET "/v1/wallets/$W/recovery" --key "$T/d1" | tail -1)
    [ "$(jfield wallet_id <<<"$out")" = "$W" ] || fail "recovery reply names another wallet: $out"
    jfield recovery <<<"$out" >"$T/rec.hex"
    # 2-of-3: 4 + 33t + 162n bytes
    [ "$(tr -d '\n' <"$T/rec.hex" | wc -c)" = $((2 * (4 + 33 * 2 + 162 * 3))) ] ||
        fail "recovery data length: $(wc -c <"$T/rec.hex")"
    cli recovery --wallet "$T/w.json" --out "$T/rec2.hex" >/dev/null || fail "cli recovery"
    cmp -s "$T/rec.hex" "$T/rec2.hex" || fail "two devices fetched different recovery data"
    REC=$(cat "$T/rec.hex")
    # A certificate byte flipped (the last one).
    BAD=$(python3 -c 'import sys; h=sys.argv[1]; print(h[:-1] + ("0" if h[-1] != "0" else "1"))' "$REC")
    # The service still has the record: the same data is an idempotent
    # success, other data for this wallet a conflict.
    [ "$(cli --json restore --wallet "$T/w.json" --recovery-file "$T/rec.hex" | jfield thresh_pubkey)" = "$TPK" ] ||
        fail "idempotent restore"
    expect 409 ALREADY_EXISTS -- POST "/v1/wallets/$W/restore" --key "$T/d1" --body "{\"recovery\":\"$BAD\"}"
    stop

    # The disaster: a fresh data directory with only the two keys.
    mv "$T/data" "$T/data.lost"
    mkdir -m 700 "$T/data"
    cp -p "$T/data.lost/master.key" "$T/data.lost/host.key" "$T/data/"
    STARTS=2
    start
    expect 404 NOT_FOUND -- POST "/v1/wallets/$W/sign/round1" --key "$T/d1" --body "$(sign1_body)"
    ! cli sign --wallet "$T/w.json" --msg 00 2>/dev/null || fail "signing worked without the record"
    # Only a participant of the params inside the data may restore, and only
    # at its own wallet id; tampered data restores nothing.
    expect 403 PERMISSION_DENIED -- POST "/v1/wallets/$W/restore" --key "$T/stranger" --body "{\"recovery\":\"$REC\"}"
    OTHER=$(printf 'ab%.0s' $(seq 32))
    expect 400 INVALID_ARGUMENT -- POST "/v1/wallets/$OTHER/restore" --key "$T/d1" --body "{\"recovery\":\"$REC\"}"
    expect 400 INVALID_ARGUMENT -- POST "/v1/wallets/$W/restore" --key "$T/d1" --body "{\"recovery\":\"$BAD\"}"
    expect 400 INVALID_ARGUMENT -- POST "/v1/wallets/$W/restore" --key "$T/d1" --body '{"recovery":"00"}'
    expect 404 NOT_FOUND -- GET "/v1/wallets/$W" --key "$T/d1"
    # The restore itself, by a device holding the fetched data.
    cli --json restore --wallet "$T/w.json" --recovery-file "$T/rec.hex" >"$T/restored" ||
        fail "restore: $(cat "$T/restored")"
    [ "$(jfield thresh_pubkey <"$T/restored")" = "$TPK" ] || fail "restored another key: $(cat "$T/restored")"
    [ "$(jfield wallet_id <"$T/restored")" = "$W" ] || fail "restored another wallet"
    cli raw GET "/v1/wallets/$W" --key "$T/d2" | grep -q "\"thresh_pubkey\":\"$TPK\"" ||
        fail "wallet metadata not re-created"
    cli --json sign --wallet "$T/w.json" --msg 0304 --signers 0,2 | grep -q '"verified":true' ||
        fail "sign after restore"
    cli --json sign --wallet "$T/w.json" --msg 05 --signers 0,1 --taproot | grep -q '"verified":true' ||
        fail "taproot sign after restore"
    [ "$(cli raw GET "/v1/wallets/$W/recovery" --key "$T/d1" | tail -1 | jfield recovery)" = "$REC" ] ||
        fail "recovery data after restore differs"
    stop
    # Durable: a restart serves it from the rebuilt record.
    STARTS=3
    start
    cli --json sign --wallet "$T/w.json" --msg 06 | grep -q '"verified":true' || fail "sign after restart"
    stop
    ;;
retire)
    ADM=$("$CLI" --json keygen --out "$T/admin" | jfield hostpubkey)
    "$CLI" keygen --out "$T/stranger" >/dev/null
    start --admin-pubkeys "$ADM" --retire-sweep-ms 200
    cli dkg --t 2 --devices 1 --out "$T/w.json" >/dev/null || fail "dkg"
    cli dkg --t 2 --devices 2 --out "$T/keep.json" >/dev/null || fail "dkg of the other wallet"
    W=$(wallet_id "$T/w.json")
    keyfile_of "$T/w.json" 1 "$T/d1"
    cli --json sign --wallet "$T/w.json" --msg 00 | grep -q '"verified":true' || fail "sign before retire"
    cli recovery --wallet "$T/w.json" --out "$T/w.hex" >/dev/null || fail "recovery before retire"
    R="/v1/admin/wallets/$W/retire"
    # Only an admin key: not a device of the wallet, not a stranger.
    expect 403 PERMISSION_DENIED -- POST "$R" --key "$T/d1" --body '{}'
    expect 403 PERMISSION_DENIED -- POST "$R" --key "$T/stranger" --body '{}'
    expect 401 UNAUTHENTICATED -- POST "$R" --body '{}'
    ! cli admin retire --admin-key "$T/d1" --wallet "$W" 2>/dev/null || fail "a device retired the wallet"
    expect 400 INVALID_ARGUMENT -- POST "$R" --key "$T/admin" --body '{"grace_s":604801}'
    expect 400 INVALID_ARGUMENT -- POST "$R" --key "$T/admin" --body '{"grace_s":"1"}'
    expect 404 NOT_FOUND -- POST "/v1/admin/wallets/$(printf 'ab%.0s' $(seq 32))/retire" --key "$T/admin" --body '{}'
    cli --json sign --wallet "$T/w.json" --msg 01 | grep -q '"verified":true' || fail "refused retires changed something"
    out=$(cli --json admin retire --admin-key "$T/admin" --wallet "$T/w.json" --grace-s 1) || fail "retire: $out"
    AT=$(jfield retired_at_ms <<<"$out")
    WIPE=$(jfield wipe_after_ms <<<"$out")
    [ "$(jfield wallet_id <<<"$out")" = "$W" ] && [ $((WIPE - AT)) = 1000 ] || fail "retire reply: $out"
    # Refused from the metadata, before any actor sees it.
    M0=$(metric cosignerd_actor_messages_total)
    expect 412 FAILED_PRECONDITION -- POST "/v1/wallets/$W/sign/round1" --key "$T/d1" --body "$(sign1_body)"
    expect 412 FAILED_PRECONDITION -- POST "/v1/wallets/$W/sign/round2" --key "$T/d1" \
        --body "{\"session_id\":\"$(printf '33%.0s' $(seq 32))\",\"psig\":\"$(printf '01%.0s' $(seq 32))\"}"
    expect 412 FAILED_PRECONDITION -- GET "/v1/wallets/$W/recovery" --key "$T/d1"
    [ "$(metric cosignerd_actor_messages_total)" = "$M0" ] || fail "a retired wallet's request reached its actor"
    ! cli sign --wallet "$T/w.json" --msg 02 2>/dev/null || fail "a retired wallet signed"
    # A second retire answers like the first.
    out2=$(cli --json admin retire --admin-key "$T/admin" --wallet "$W") || fail "second retire: $out2"
    [ "$(jfield retired_at_ms <<<"$out2")" = "$AT" ] && [ "$(jfield wipe_after_ms <<<"$out2")" = "$WIPE" ] ||
        fail "second retire moved the dates: $out2"
    cli --json sign --wallet "$T/keep.json" --msg 03 | grep -q '"verified":true' || fail "another wallet was affected"
    # After the grace the sweep wipes the share.
    for _ in $(seq 1 100); do grep -q "event=wallet_wiped wallet=$W" "$T/log" && break; sleep 0.1; done
    grep -q "event=wallet_wiped wallet=$W" "$T/log" || fail "retired wallet not wiped after its grace"
    ! grep -q "event=wallet_wipe_failed" "$T/log" || fail "wipe failed"
    expect 412 FAILED_PRECONDITION -- POST "/v1/wallets/$W/sign/round1" --key "$T/d1" --body "$(sign1_body)"
    expect 412 FAILED_PRECONDITION -- GET "/v1/wallets/$W/recovery" --key "$T/d1"
    expect 412 FAILED_PRECONDITION -- GET "/v1/wallets/$W" --key "$T/d1"
    cli recovery --wallet "$T/keep.json" --out "$T/keep.hex" >/dev/null || fail "recovery of the other wallet"
    stop
    # The store opens after the wipe, the wallet still answers 412 and stays
    # wiped (nothing to activate), and a retired wallet cannot be restored.
    STARTS=2
    start --admin-pubkeys "$ADM"
    expect 412 FAILED_PRECONDITION -- POST "/v1/wallets/$W/sign/round1" --key "$T/d1" --body "$(sign1_body)"
    cli --json sign --wallet "$T/keep.json" --msg 04 --signers 0,2 | grep -q '"verified":true' ||
        fail "other wallet after restart"
    [ "$(grep -c "event=wallet_wiped wallet=$W" "$T/log")" = 1 ] || fail "wiped twice (record came back?)"
    expect 412 FAILED_PRECONDITION -- POST "/v1/wallets/$W/restore" --key "$T/d1" \
        --body "{\"recovery\":\"$(cat "$T/w.hex")\"}"
    stop
    ;;
bench)
    # cosigner-bench --fault-rate: errors are counted apart for the users
    # whose wallets got an injected fault and for the clean ones, and by
    # canonical code as well as by HTTP status.
    jfield() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
    start --fault-injection true
    "$BENCH" --url "$URL" --users 8 --concurrency 4 --sessions 2 --fault-rate 0.5 --json >"$T/b1" ||
        fail "bench with faults: $(cat "$T/b1")"
    last=$(grep '"workload":"signing_sessions"' "$T/b1")
    for f in users concurrency sessions_per_s p99_ms errors errors_clean errors_faulted faulted_users; do
        jfield "$last" $f >/dev/null || fail "summary lacks $f: $last"
    done
    [ "$(jfield "$last" errors)" = 0 ] && [ "$(jfield "$last" errors_clean)" = 0 ] &&
        [ "$(jfield "$last" errors_faulted)" = 0 ] || fail "errors with isolated faults: $last"
    fu=$(jfield "$last" faulted_users)
    [ "$fu" -ge 1 ] && [ "$fu" -lt 8 ] || fail "faulted users: $last"
    byc=$(grep '"workload":"errors_by_code"' "$T/b1")
    [ "$(jfield "$byc" faults_injected)" = "$fu" ] || fail "faults injected: $byc"
    [ "$(jfield "$byc" codes)" = "{}" ] || fail "codes without errors: $byc"
    [ "$(metric cosignerd_handler_faults_total)" = "$fu" ] || fail "daemon counted $(metric cosignerd_handler_faults_total) faults"
    # Open loop (--rate): every scheduled session is started and answered,
    # latency quantiles are ordered (values are not checked: tests never
    # assert timings), and bad arguments are refused.
    "$BENCH" --url "$URL" --users 6 --concurrency 4 --rate 20 --duration 1 >"$T/ol" ||
        fail "open loop: $(cat "$T/ol")"
    python3 - "$(grep '"workload":"open_loop"' "$T/ol")" <<'PY' || fail "open loop: $(cat "$T/ol")"
import json, sys
o = json.loads(sys.argv[1])
assert o["offered"] == 20 and o["completed"] == 20 and o["errors"] == 0, o
assert o["wallets"] == 6 and o["users"] == 6, o
assert 0 < o["p50_ms"] <= o["p99_ms"] <= o["p999_ms"] <= o["max_ms"], o
PY
    grep -q '"workload":"phase_latency","phase":"dkg","count":6' "$T/ol" || fail "open loop DKGs: $(cat "$T/ol")"
    rc=0
    "$BENCH" --url "$URL" --users 2 --concurrency 1 --duration 1 >/dev/null 2>&1 || rc=$?
    [ $rc = 2 ] || fail "--duration without --rate exited $rc"
    stop
    # A replay cache of one entry per shard refuses most requests with 503
    # UNAVAILABLE: every error is counted under its canonical code.
    : >"$T/log"
    start --replay-cache-entries 1
    rc=0
    "$BENCH" --url "$URL" --users 8 --concurrency 4 --sessions 2 --json >"$T/b2" || rc=$?
    [ $rc = 1 ] || fail "bench with errors exited $rc"
    last=$(grep '"workload":"signing_sessions"' "$T/b2")
    byc=$(grep '"workload":"errors_by_code"' "$T/b2")
    e=$(jfield "$last" errors)
    [ "$e" -gt 0 ] && [ "$(jfield "$last" errors_clean)" = "$e" ] && [ "$(jfield "$last" errors_faulted)" = 0 ] ||
        fail "errors: $last"
    python3 - "$byc" "$e" <<'PY' || fail "errors by code: $byc"
import json, sys
b, e = json.loads(sys.argv[1]), int(sys.argv[2])
assert b["codes"].get("UNAVAILABLE", 0) > 0, b
assert sum(b["codes"].values()) == e, b
assert sum(v for k, v in b.items() if k.isdigit()) == e, b
PY
    # The open loop does not hide failures either: what was not completed
    # is an error, and the run exits 1.
    rc=0
    "$BENCH" --url "$URL" --users 4 --concurrency 2 --rate 20 --duration 1 >"$T/ol2" 2>/dev/null || rc=$?
    [ $rc = 1 ] || fail "open loop with errors exited $rc: $(cat "$T/ol2")"
    python3 - "$(grep '"workload":"open_loop"' "$T/ol2")" <<'PY' || fail "open loop errors: $(cat "$T/ol2")"
import json, sys
o = json.loads(sys.argv[1])
assert o["errors"] > 0 and o["errors"] == o["offered"] - o["completed"], o
PY
    stop
    ;;
*)
    fail "unknown section $SECTION"
    ;;
esac
echo "ok: $SECTION"
