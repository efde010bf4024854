#!/usr/bin/env bash
# Admission control end to end against a real daemon (API.md, "Admission"
# and "Admin"): enrollment tokens and grants, the audit log, quotas and rate
# limits, all answered before any wallet actor is activated.
#
#   admission_test.sh COSIGNERD COSIGNER_CLI SECTION
#
# SECTION: enroll | flood | limits
set -euo pipefail
D=$1
CLI=$2
SECTION=$3
T=$(mktemp -d)
PID=
BG=()
cleanup() {
    for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" || true; fi
    rm -rf "$T"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; [ -f "$T/log" ] && tail -20 "$T/log" >&2; exit 1; }

STARTS=0
start() {
    STARTS=$((STARTS + 1))
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
    [ -n "$ready" ] || fail "daemon did not start"
    URL="http://127.0.0.1:$port"
}

stop() {
    kill -TERM "$PID"
    local rc=0
    wait "$PID" || rc=$?
    PID=
    [ $rc -eq 0 ] || fail "daemon exited with $rc on SIGTERM"
    ! grep -qE 'runtime error|Sanitizer|ThreadSanitizer' "$T/log" || fail "sanitizer report in the daemon log"
}

cli() { "$CLI" --url "$URL" "$@"; }
field() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); [v := v[k] for k in sys.argv[2:]]; print(v if not isinstance(v,(list,dict)) else json.dumps(v))' "$@"; }
metric() {
    curl -sf "$URL/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}
mlabel() { # mlabel 'name{label="x"}'
    curl -sf "$URL/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
pk_of() { field "$(cli --json keygen --out "$1")" hostpubkey; }

# signed_curl KEY METHOD PATH BODY: the whole response (headers too), for
# Retry-After; cosigner-cli signs, curl sends.
signed_curl() {
    local auth
    auth=$(cli raw "$2" "$3" --body "$4" --key "$1" --print-auth)
    curl -si -X "$2" -H "Authorization: $auth" --data-binary "$4" "$URL$3"
}

case "$SECTION" in
enroll)
    # A fresh install: enrollment = token, a bootstrap admin key, and the
    # start banner says how to mint a token.
    start
    ADM=$T/data/admin.key
    [ -f "$ADM" ] || fail "no bootstrap admin key"
    [ "$(stat -c %a "$ADM")" = 600 ] || fail "admin.key mode $(stat -c %a "$ADM")"
    grep -q 'admin enroll --admin-key' "$T/log" || fail "the start banner does not say how to mint a token"
    P1=$(pk_of "$T/d1"); P2=$(pk_of "$T/d2"); P3=$(pk_of "$T/d3")

    # Open enrollment is refused, before any actor.
    out=$(cli --json dkg --key "$T/d1" --t 2 2>&1) && fail "DKG without a token succeeded"
    echo "$out" | grep -q 'PERMISSION_DENIED' || fail "no-token DKG: $out"
    [ "$(metric cosignerd_actor_activations_total)" = 0 ] || fail "a refused enrollment activated an actor"
    # Only admin keys reach the admin routes.
    out=$(cli admin enroll --admin-key "$T/d1" --device "$P1") && fail "a device key minted a token"
    echo "$out" | grep -q 'PERMISSION_DENIED' || fail "non-admin mint: $out"

    # A token enrolls exactly the keys it names, once.
    TOK=$(field "$(cli admin enroll --admin-key "$ADM" --device "$P1" --device "$P2")" token)
    out=$(cli --json dkg --key "$T/d1" --t 2 --token "$TOK" 2>&1) && fail "a token enrolled a subset of its keys"
    echo "$out" | grep -q 'not exactly the keys' || fail "subset: $out"
    out=$(cli --json dkg --key "$T/d1" --key "$T/d3" --t 2 --token "$TOK" 2>&1) && fail "a token enrolled another key"
    out=$(cli --json dkg --key "$T/d1" --key "$T/d2" --t 2 --token "$TOK" --out "$T/w12")
    W12=$(field "$out" wallet_id)
    cli --json sign --wallet "$T/w12" --msg 68656c6c6f | grep -q '"verified":true' || fail "sign after enrollment"
    out=$(cli --json dkg --key "$T/d1" --key "$T/d2" --t 3 --token "$TOK" 2>&1) && fail "a token enrolled twice"
    echo "$out" | grep -q 'already used' || fail "second use: $out"

    # Revoked before use: refused.
    minted=$(cli admin enroll --admin-key "$ADM" --device "$P3" --ttl-s 600)
    TOK3=$(field "$minted" token); TID3=$(field "$minted" token_id)
    [ "$(field "$minted" expires_ms)" -gt 0 ] || fail "no expiry"
    cli admin revoke --admin-key "$ADM" --token-id "$TID3" | grep -q '"revoked":true' || fail "revoke"
    out=$(cli --json dkg --key "$T/d3" --t 2 --token "$TOK3" 2>&1) && fail "a revoked token enrolled"
    echo "$out" | grep -q 'revoked' || fail "revoked: $out"
    # The simulated mode can mint for its own fresh keys (the demo path).
    cli --json dkg --devices 1 --t 2 --admin-key "$ADM" >/dev/null || fail "dkg --admin-key"

    # Listing and showing wallets, paged.
    page=$(cli admin wallets --admin-key "$ADM" --limit 1)
    [ "$(field "$page" wallets | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] || fail "page size: $page"
    next=$(field "$page" next)
    page2=$(cli admin wallets --admin-key "$ADM" --after "$next" --limit 10)
    both=$(python3 -c 'import json,sys; a=json.loads(sys.argv[1])["wallets"]+json.loads(sys.argv[2])["wallets"]; print(" ".join(w["wallet_id"] for w in a))' "$page" "$page2")
    [ "$(echo "$both" | wc -w)" = 2 ] || fail "two wallets expected: $both"
    echo "$both" | grep -q "$W12" || fail "$W12 not listed"
    show=$(cli admin wallet --admin-key "$ADM" --wallet "$W12")
    [ "$(field "$show" t)" = 2 ] && [ "$(field "$show" dkg_complete)" = True ] || fail "show: $show"
    echo "$show" | grep -q "$P2" || fail "show lacks the devices: $show"

    # One audit record per admin action, with the admin key and the target.
    audit=$(cli admin audit --admin-key "$ADM")
    actions=$(python3 -c 'import json,sys; print(" ".join(r["action"] for r in json.loads(sys.argv[1])["records"]))' "$audit")
    [ "$actions" = "token.mint token.mint token.revoke token.mint" ] || fail "audit actions: $actions"
    echo "$audit" | grep -q "\"token_id\":\"$TID3\"" || fail "audit lacks the revoked token id"
    ! echo "$audit" | grep -q "$TOK" || fail "a token secret is in the audit log"
    grep -q "$TOK" "$T/log" && fail "a token secret is in the daemon log"
    [ "$(mlabel 'cosignerd_enrollments_total{via="token"}')" -ge 2 ] || fail "enrollment metric"
    [ "$(mlabel 'cosignerd_admission_refusals_total{reason="enrollment"}')" -ge 4 ] || fail "refusal metric"

    # All of it is durable: after a restart the used token stays used and
    # the audit log is the same.
    stop
    start
    out=$(cli --json dkg --key "$T/d1" --key "$T/d2" --t 3 --token "$TOK" 2>&1) && fail "token reusable after a restart"
    [ "$(cli admin audit --admin-key "$ADM")" = "$audit" ] || fail "audit log changed across a restart"
    cli --json sign --wallet "$T/w12" --msg 6869 | grep -q '"verified":true' || fail "sign after restart"
    stop

    # enrollment = admin: tokens no longer enroll; a grant of exactly the
    # params does.
    start --enrollment admin
    P4=$(pk_of "$T/d4")
    TOK4=$(field "$(cli admin enroll --admin-key "$ADM" --device "$P4")" token)
    out=$(cli --json dkg --key "$T/d4" --t 2 --token "$TOK4" 2>&1) && fail "a token enrolled in admin mode"
    SVC=$(field "$(curl -sf "$URL/v1/info")" hostpubkey)
    cli admin grant --admin-key "$ADM" --params "{\"hostpubkeys\":[\"$SVC\",\"$P4\"],\"t\":2}" | grep -q '"granted":true' || fail "grant"
    cli --json dkg --key "$T/d4" --t 2 >/dev/null || fail "a granted wallet was refused"
    out=$(cli --json dkg --key "$T/d4" --t 1 2>&1) && fail "other params of a granted key enrolled"
    [ "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["records"][-1]["action"])' "$(cli admin audit --admin-key "$ADM")")" = enrollment.grant ] || fail "grant not audited"
    stop

    # A configured admin key replaces the bootstrap one.
    ADM2PK=$(pk_of "$T/adm2")
    start --admin-pubkeys "$ADM2PK"
    cli admin audit --admin-key "$T/adm2" >/dev/null || fail "configured admin refused"
    cli admin audit --admin-key "$ADM" >/dev/null && fail "the bootstrap key still works with admin_pubkeys set"
    stop
    rc=0; "$D" --listen 127.0.0.1:0 --data-dir "$T/data" --admin-pubkeys 02abcd 2>"$T/err" || rc=$?
    [ $rc -ne 0 ] && grep -q 'admin_pubkeys' "$T/err" || fail "a bad admin_pubkeys started (rc $rc)"
    rc=0; "$D" --check-config --enrollment sometimes 2>"$T/err" || rc=$?
    [ $rc -ne 0 ] && grep -q 'enrollment must be' "$T/err" || fail "a bad enrollment mode passed"
    echo "enroll: ok"
    ;;
flood)
    # A flood of DKG round 1s from fresh keys, each naming only itself and
    # the service: under token enrollment none creates anything.
    start
    for i in $(seq 1 30); do
        cli --json dkg --devices 1 --t 2 >/dev/null 2>&1 && fail "an unenrolled DKG succeeded"
    done
    [ "$(metric cosignerd_actor_activations_total)" = 0 ] || fail "the flood activated actors"
    [ "$(metric cosignerd_actors_resident)" = 0 ] || fail "the flood left resident actors"
    page=$(cli admin wallets --admin-key "$T/data/admin.key")
    [ "$(field "$page" wallets)" = "[]" ] || fail "the flood created durable records: $page"
    [ "$(mlabel 'cosignerd_admission_refusals_total{reason="enrollment"}')" -ge 30 ] || fail "refusals not counted"
    stop

    # Open enrollment, at most 2 new-wallet round 1s waiting on the node:
    # devices that post round 1 for 2-device params and whose partner never
    # comes hold a slot each until the rendezvous deadline; the rest are
    # refused 429 with Retry-After and never reach an actor.
    start --enrollment open --max-pending-dkg 2 --rendezvous-deadline-ms 6000
    SVC=$(field "$(curl -sf "$URL/v1/info")" hostpubkey)
    for i in 1 2 3 4 5; do
        P=$(pk_of "$T/k$i"); Q=$(pk_of "$T/q$i")
        echo "{\"hostpubkeys\":[\"$SVC\",\"$P\",\"$Q\"],\"t\":2}" >"$T/p$i"
    done
    for i in 1 2; do
        cli --json dkg join --key "$T/k$i" --params "$T/p$i" --state "$T/s$i" >"$T/o$i" 2>&1 &
        BG+=($!)
    done
    for _ in $(seq 1 100); do
        [ "$(metric cosignerd_dkg_pending)" = 2 ] && break
        sleep 0.05
    done
    [ "$(metric cosignerd_dkg_pending)" = 2 ] || fail "two round 1s should be waiting"
    acts=$(metric cosignerd_actor_activations_total)
    for i in 3 4 5; do
        out=$(cli --json dkg join --key "$T/k$i" --params "$T/p$i" --state "$T/s$i" 2>&1) && fail "round 1 beyond the cap admitted"
        echo "$out" | grep -q 'RESOURCE_EXHAUSTED' || fail "beyond the cap: $out"
    done
    # The refusal carries Retry-After.
    body=$(python3 -c 'import json,sys; print(json.dumps({"params": json.load(open(sys.argv[1])), "pmsg1": "00"}))' "$T/p3")
    resp=$(signed_curl "$T/k3" POST /v1/dkg/round1 "$body")
    echo "$resp" | head -1 | grep -q ' 429' || fail "cap: $(echo "$resp" | head -1)"
    echo "$resp" | grep -qi '^Retry-After: [1-9]' || fail "no Retry-After on the cap refusal"
    [ "$(metric cosignerd_actor_activations_total)" = "$acts" ] || fail "refused round 1s activated actors"
    [ "$(metric cosignerd_actors_resident)" -le 2 ] || fail "more resident actors than admitted round 1s"
    [ "$(mlabel 'cosignerd_admission_refusals_total{reason="pending_total"}')" -ge 4 ] || fail "cap refusals not counted"
    for p in "${BG[@]}"; do wait "$p" 2>/dev/null || true; done
    BG=()
    [ "$(metric cosignerd_dkg_pending)" = 0 ] || fail "slots not given back after the deadline"
    stop
    echo "flood: ok"
    ;;
limits)
    # Per host key: 3 requests of burst, 1 per second after.
    # A refused device's partners wait for it until the rendezvous deadline: keep it short.
    start --enrollment open --rendezvous-deadline-ms 3000 --rate-limit-rps 1 --rate-limit-burst 3 --quota-wallets 2 \
        --auth-fail-per-min 6 --auth-fail-burst 3
    pk_of "$T/d1" >/dev/null
    pk_of "$T/d2" >/dev/null
    cli --json dkg --key "$T/d1" --t 2 --out "$T/w1" >/dev/null || fail "DKG under limits"
    W=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["wallet_id"])' "$T/w1")
    sleep 3.2 # the DKG spent the bucket; let it refill
    codes=$(cli raw GET "/v1/wallets/$W" --key "$T/d1" --repeat 5 --fresh-nonce | cut -d' ' -f1 | tr '\n' ' ')
    [ "$codes" = "200 200 200 429 429 " ] || fail "rate limit codes: $codes"
    resp=$(signed_curl "$T/d1" GET "/v1/wallets/$W" "")
    echo "$resp" | head -1 | grep -q ' 429' || fail "rate: $(echo "$resp" | head -1)"
    echo "$resp" | grep -qi '^Retry-After: [1-9]' || fail "no Retry-After on the rate refusal"
    echo "$resp" | grep -q 'RESOURCE_EXHAUSTED' || fail "rate refusal code"
    # Another key is not limited by this one's spending.
    cli --json dkg --key "$T/d2" --t 2 >/dev/null || fail "another key was limited"
    [ "$(mlabel 'cosignerd_admission_refusals_total{reason="rate"}')" -ge 3 ] || fail "rate refusals not counted"

    # Wallet quota (2 per key), durable across a restart.
    sleep 3.2
    cli --json dkg --key "$T/d1" --t 1 >/dev/null || fail "second wallet of d1"
    sleep 3.2
    out=$(cli --json dkg --key "$T/d1" --key "$T/d2" --t 2 2>&1) && fail "a third wallet of d1"
    echo "$out" | grep -q 'wallet quota' || fail "quota: $out"
    stop
    start --enrollment open --rendezvous-deadline-ms 3000 --quota-wallets 2 --auth-fail-per-min 6 --auth-fail-burst 3
    out=$(cli --json dkg --key "$T/d1" --key "$T/d2" --t 3 2>&1) && fail "quota forgotten on restart"
    echo "$out" | grep -q 'wallet quota' || fail "quota after restart: $out"

    # Failed authentications per address: 3 bad signatures, then even a
    # good request from that address is refused 429 until it refills.
    for i in 1 2 3; do
        r=$(cli raw GET "/v1/wallets/$W" --key "$T/d1" --bad-sig | cut -d' ' -f1)
        [ "$r" = 401 ] || fail "bad signature answered $r"
    done
    r=$(cli raw GET "/v1/wallets/$W" --key "$T/d1" | cut -d' ' -f1)
    [ "$r" = 429 ] || fail "the address was not limited after its failures ($r)"
    resp=$(curl -si "$URL/v1/wallets/$W")
    echo "$resp" | head -1 | grep -q ' 429' || fail "address: $(echo "$resp" | head -1)"
    echo "$resp" | grep -qi '^Retry-After: [1-9]' || fail "no Retry-After on the address refusal"
    curl -sf "$URL/healthz" >/dev/null || fail "monitoring endpoints must stay reachable"
    [ "$(mlabel 'cosignerd_admission_refusals_total{reason="auth_failures"}')" -ge 1 ] || fail "address refusals not counted"
    sleep 10.5 # 6 per minute: one more request allowed
    r=$(cli raw GET "/v1/wallets/$W" --key "$T/d1" | cut -d' ' -f1)
    [ "$r" = 200 ] || fail "the address did not recover ($r)"
    stop
    echo "limits: ok"
    ;;
*)
    fail "unknown section $SECTION"
    ;;
esac
