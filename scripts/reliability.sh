#!/usr/bin/env bash
# Reliability checks for the test entry (scripts/test.sh) and for releases.
#
#   scripts/reliability.sh ci         every fuzz target for 60 s under ASan+UBSan
#                                     (about 5 min plus the build-fuzz build). The
#                                     short chaos run is a Meson test (chaos_short,
#                                     suite 'asan'), so it already runs with the
#                                     ASan suite; add --chaos to run it here too.
#   scripts/reliability.sh release    the long chaos run and 10 min per fuzz target
#
# The corpus regression runners (fuzz_<target>, suite 'asan') replay every
# committed seed and every crash ever found on each `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-ci}
case "$mode" in
ci)
    bash scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
    if [ "${2:-}" = "--chaos" ]; then bash scripts/chaos.sh short; fi
    ;;
release)
    bash scripts/chaos.sh long
    bash scripts/fuzz.sh "${FUZZ_SECONDS:-600}"
    ;;
*)
    echo "usage: $0 ci [--chaos] | release" >&2
    exit 2
    ;;
esac
