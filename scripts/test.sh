#!/usr/bin/env bash
# Builds the sanitizer configurations and runs every test suite:
#   build-asan  ASan + UBSan  -> suite 'asan' (everything but the concurrency tests)
#   build-tsan  TSan          -> suite 'tsan' (concurrency and fault tests)
#   build       release       -> suite 'release' (tests that need full speed)
#   build-fuzz  clang libFuzzer -> every fuzz target for FUZZ_SECONDS (default 60)
# Ends with one summary line "N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

# Sanitizers must be loud and fatal.
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp"

passed=0; failed=0; rc=0

run_suite() { # dir suite meson-setup-args...
    local dir=$1 suite=$2; shift 2
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >/dev/null || { echo "setup of $dir failed" >&2; failed=$((failed+1)); rc=1; return; }
    fi
    if ! ninja -C "$dir"; then
        echo "build of $dir failed" >&2; failed=$((failed+1)); rc=1; return
    fi
    local log="$dir/meson-logs/testlog.json"
    rm -f "$log"
    meson test -C "$dir" --suite "$suite" --print-errorlogs --num-processes 2 || rc=1
    if [ -f "$log" ]; then
        local p f
        p=$(grep -c '"result": "OK"' "$log" || true)
        f=$(grep -c -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)
        passed=$((passed + p)); failed=$((failed + f))
    fi
}

run_suite build-asan asan --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false
run_suite build-tsan tsan --buildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false
run_suite build release --buildtype=release -Dfault_injection=false

# Short fuzz runs (each target ~60 s under ASan+UBSan, clang libFuzzer build).
if bash scripts/reliability.sh ci; then passed=$((passed+1)); else failed=$((failed+1)); rc=1; fi

echo "$passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
