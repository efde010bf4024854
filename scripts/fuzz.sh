#!/usr/bin/env bash
# Runs every libFuzzer target (tests/fuzz) for SECONDS each with ASan+UBSan.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (make fuzz: FUZZ_SECONDS, default 60)
#
# Builds build-fuzz with clang, -fsanitize=fuzzer-no-link on every library
# (so coverage guides the fuzzer into the parsers, not just the harness) and
# -fsanitize=fuzzer on the targets. Each run starts from the committed seed
# corpus tests/fuzz/corpus/<target>/ plus what earlier runs found
# (build-fuzz/fuzz-corpus/<target>/). A crashing input is copied into the
# committed corpus directory, so the regression runner (suite 'asan') replays
# it from then on, and the script exits non-zero.
set -uo pipefail
secs=${1:-60}
shift || true
cd "$(dirname "$0")/.."
B=${FUZZ_BUILD:-build-fuzz}
all=(cmd proto store net_request net_auth auth_header codec admit)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

opts=(-Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link
      -Dwerror=false -Dbuildtype=debugoptimized)
if [ ! -f "$B/build.ninja" ]; then
    CC=clang meson setup "$B" "${opts[@]}" >"$B.setup.log" 2>&1 || { cat "$B.setup.log"; exit 1; }
    rm -f "$B.setup.log"
else
    meson configure "$B" "${opts[@]}" >/dev/null || exit 1
fi
bins=()
for t in "${targets[@]}"; do bins+=("tests/fuzz/fuzz_$t" "tests/fuzz/fuzz_${t}_replay"); done
ninja -C "$B" -j2 "${bins[@]}" || exit 1

# Leaks are checked by the regression runners (LSan at exit); inside the
# fuzzing loop the servers' threads make per-input leak checks meaningless.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
status=0
summary=()
for t in "${targets[@]}"; do
    work="$B/fuzz-corpus/$t"
    art="$B/fuzz-artifacts/$t"
    seeds="tests/fuzz/corpus/$t"
    rm -rf "$art" # only this run's findings (earlier ones are in $seeds already)
    mkdir -p "$work" "$art"
    log="$B/fuzz-$t.log"
    echo "== fuzz_$t for ${secs}s (log $log)"
    "$B/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2560 \
        -max_len=70000 -print_final_stats=1 -artifact_prefix="$art/" "$work" "$seeds" \
        >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    # UBSan reports do not stop the run: list their distinct locations.
    ubsan=$(grep -o '[^ ]*: runtime error: [^(]*' "$log" | sort -u | tr '\n' ';' || true)
    found=0
    for f in "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*; do
        [ -e "$f" ] || continue
        found=$((found + 1))
        cp "$f" "$seeds/regress-$(basename "$f")"
    done
    res=ok
    if [ $rc -ne 0 ] || [ $found -ne 0 ]; then
        res="FINDING (rc=$rc, $found input(s) copied to $seeds)"
        status=1
        tail -40 "$log"
    fi
    summary+=("$(printf '%-12s %10s execs  cov %-6s corpus %-6s %s' "$t" \
        "${execs:-?}" "${cov:-?}" "$(ls "$work" | wc -l)" "$res")")
    [ -n "$ubsan" ] && summary+=("             ubsan (not fatal): $ubsan")
done
echo
echo "fuzz summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
exit $status
