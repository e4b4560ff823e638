#!/usr/bin/env bash
# setup.sh — install the Debian/Ubuntu packages Cairn needs to build, test
# and benchmark, and only those that are missing. Idempotent: a second run
# installs nothing and says so. Used by every `make` target.
set -euo pipefail

# One list, kept here only. Build tools, then libraries (DESIGN.md's table),
# then the test framework and the engines the benchmarks compare against.
PACKAGES=(
  gcc make cmake pkg-config
  libxxhash-dev libzstd-dev liblz4-dev libuv1-dev libssl-dev
  libcmocka-dev python3 python3-redis redis-tools libhiredis-dev openssl
  nodejs node-redis
  liblmdb-dev librocksdb-dev libleveldb-dev libsqlite3-dev
  gnuplot-nox
)

# The server benchmark (bench/server.sh, `make bench`) also needs the peer it
# compares against: `scripts/setup.sh --bench`.
if [ "${1:-}" = "--bench" ]; then
  PACKAGES+=(redis-server)
fi
# Fuzzing with libFuzzer (`make fuzz`) needs clang: `scripts/setup.sh --fuzz`.
if [ "${1:-}" = "--fuzz" ]; then
  PACKAGES+=(clang)
fi

# The unit tests under memcheck (`make test-valgrind`):
# `scripts/setup.sh --valgrind`.
if [ "${1:-}" = "--valgrind" ]; then
  PACKAGES+=(valgrind)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  [ -n "${CAIRN_SETUP_QUIET:-}" ] || echo "setup: all ${#PACKAGES[@]} required packages are installed"
  exit 0
fi

echo "setup: installing missing packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
