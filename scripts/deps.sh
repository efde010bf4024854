#!/usr/bin/env bash
# Installs the Debian packages cosignerd needs to build, test and run.
# Idempotent: when every package is already present it does nothing and
# never touches the network, so `make` stays fast on a provisioned machine.
set -euo pipefail

PKGS=(
  build-essential pkg-config meson ninja-build clang-format
  # guest toolchain: C -> wasm32 -> C
  clang lld wasi-libc libclang-rt-14-dev-wasm32 libclang-rt-14-dev wabt
  # host libraries
  liburcu-dev libsecp256k1-dev libsodium-dev liblmdb-dev libmicrohttpd-dev
  libjansson-dev libinih-dev libsystemd-dev libcmocka-dev
  # cluster store: libpq, and the server the cluster tests start themselves
  libpq-dev postgresql postgresql-client
  # tests: HTTP client for the service tests
  libcurl4-openssl-dev curl
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
