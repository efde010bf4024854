#!/usr/bin/env bash
# The chaos run (tests/chaos/chaos.c) against a real cosignerd.
#
#   scripts/chaos.sh short [ARGS...]   CI variant: ASan+UBSan build (build-chaos-asan),
#                                      150 s, 5 kill -9 cycles, 8 clean + 12 faulty wallets
#   scripts/chaos.sh long  [ARGS...]   release gate (make chaos): release-speed build with
#                                      fault injection (build-chaos), 30 min, 30 kill -9
#                                      cycles, 48 clean + 32 faulty wallets
#   scripts/chaos.sh cluster [ARGS...] 3 nodes on a throwaway PostgreSQL, release-speed build
#                                      with fault injection, 10 min, 20 kill -9 of a random node
#
# Extra ARGS go to the harness (e.g. --seed N to replay a run's schedule,
# --seconds, --kills, --clean, --faulty, --idle-ms, --workdir, --verbose).
# Exit status: 0 when the summary shows zero invariant violations.
set -euo pipefail
mode=${1:-short}
shift || true
cd "$(dirname "$0")/.."
case "$mode" in
short)
    B=${CHAOS_BUILD:-build-chaos-asan}
    opts=(-Db_sanitize=address,undefined -Db_lundef=false)
    args=(--seconds 150 --kills 5 --clean 8 --faulty 12 --min-faults 1000)
    ;;
long)
    B=${CHAOS_BUILD:-build-chaos}
    opts=(--buildtype=release -Dfault_injection=true)
    args=(--seconds 1800 --kills 30 --clean 48 --faulty 32 --min-faults 10000)
    ;;
cluster)
    B=${CHAOS_BUILD:-build-chaos}
    opts=(--buildtype=release -Dfault_injection=true)
    [ -f "$B/build.ninja" ] || meson setup "$B" "${opts[@]}" >/dev/null
    ninja -C "$B" -j2 src/cosignerd tests/chaos/chaos
    exec bash tests/store/with_pg.sh "$B/tests/chaos/chaos" --daemon "$B/src/cosignerd" \
        --cluster 3 --seconds 600 --kills 20 --clean 24 --faulty 16 --min-faults 3000 "$@"
    ;;
*)
    echo "usage: $0 short|long|cluster [chaos args...]" >&2
    exit 2
    ;;
esac
if [ ! -f "$B/build.ninja" ]; then
    meson setup "$B" "${opts[@]}" >/dev/null
fi
ninja -C "$B" -j2 src/cosignerd tests/chaos/chaos tests/chaos/chaos_preload.so
exec "$B/tests/chaos/chaos" --daemon "$B/src/cosignerd" \
    --preload "$B/tests/chaos/chaos_preload.so" "${args[@]}" "$@"
