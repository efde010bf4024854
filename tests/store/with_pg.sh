#!/usr/bin/env bash
# Runs a store test binary against a throwaway PostgreSQL server:
#   with_pg.sh PROGRAM [ARGS...]
# exports CG_TEST_PG_DSN for it; exit 77 (skip) without the server binaries.
set -uo pipefail
PG="$(cd "$(dirname "$0")/../.." && pwd)/scripts/pg_server.sh"
if ! "$PG" bin >/dev/null; then
    echo "SKIP: PostgreSQL server binaries not found under /usr/lib/postgresql (run scripts/deps.sh)" >&2
    exit 77
fi
T=$(mktemp -d)
chmod 755 "$T"
trap '"$PG" stop "$T/pg"; rm -rf "$T"' EXIT
CG_TEST_PG_DSN=$("$PG" start "$T/pg") || exit 1
# For tests that stop and restart the server under the store's feet.
CG_TEST_PG_TOOL=$PG CG_TEST_PG_DIR=$T/pg CG_TEST_PG_PORT=$(cat "$T/pg/port")
export CG_TEST_PG_DSN CG_TEST_PG_TOOL CG_TEST_PG_DIR CG_TEST_PG_PORT
"$@"
