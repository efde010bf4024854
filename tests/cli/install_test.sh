#!/usr/bin/env bash
# The device library as a wallet app gets it: meson install into a temp
# dir, then a tiny program compiled and linked with nothing but the
# installed header and `pkg-config --cflags --libs cosigner-device`. It
# round-trips a host key and a device state file written by test_cdev.
#
#   install_test.sh BUILD_ROOT SANITIZE TEST_CDEV EXAMPLE_C
set -euo pipefail
BUILD=$1
SANITIZE=$2
TEST_CDEV=$3
SRC=$4
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

meson install -C "$BUILD" --no-rebuild --quiet --tags devel --destdir "$T/root" >"$T/install.log" 2>&1 ||
    { cat "$T/install.log" >&2; fail "meson install"; }
pc=$(find "$T/root" -name cosigner-device.pc | head -1)
[ -n "$pc" ] || fail "no cosigner-device.pc installed"
hdr=$(find "$T/root" -name cosigner_device.h | head -1)
[ -n "$hdr" ] || fail "no cosigner_device.h installed"
find "$T/root" -name 'libcosigner-device.a' | grep -q . || fail "no libcosigner-device.a installed"
# The installed header stands alone: no internal header is referenced.
! grep -E '#include "' "$hdr" || fail "the public header includes a project header"
prefix=$(sed -n 's/^prefix=//p' "$pc")
pcq() { PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --define-variable=prefix="$T/root$prefix" "$@" cosigner-device; }
flags=$(pcq --cflags --libs) || fail "pkg-config"
echo "pkg-config: $flags"
san=
if [ "$SANITIZE" != none ] && [ -n "$SANITIZE" ]; then san="-fsanitize=$SANITIZE"; fi
# shellcheck disable=SC2086
${CC:-cc} -std=gnu11 -Wall -Wextra -Werror $san -o "$T/example" "$SRC" $flags ||
    fail "compiling against the installed library"
mkdir "$T/dev"
"$TEST_CDEV" --emit "$T/dev" || fail "test_cdev --emit"
out=$("$T/example" "$T/dev/key" "$T/dev/state" "$T/dev/state2" "$T/scratch.key") || fail "example run"
echo "$out"
cmp -s "$T/dev/state" "$T/dev/state2" || fail "state file changed in a load/save round trip"
[ "$(stat -c %a "$T/dev/state2")" = 600 ] || fail "state file mode"
[ "$(stat -c %a "$T/scratch.key")" = 600 ] || fail "key file mode"
wid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["wallet_id"])' "$T/dev/state")
[ "${out%% *}" = "$wid" ] || fail "wallet id: $out vs $wid"
echo "PASS install"
