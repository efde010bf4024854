#!/usr/bin/env bash
# Runs every benchmark of a release build; each prints one JSON line per figure.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
for b in rt_bench sandbox_bench crypto_bench store_bench; do
    if [ -x "$B/bench/$b" ]; then "$B/bench/$b"; fi
done
if [ -x scripts/service_bench.sh ]; then bash scripts/service_bench.sh "$B"; fi
if [ -x scripts/cluster_bench.sh ]; then bash scripts/cluster_bench.sh "$B"; fi
