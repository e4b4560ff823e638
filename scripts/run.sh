#!/usr/bin/env bash
# run.sh — what `make run` starts. The Redis-protocol server (cairn-server)
# does not exist yet; until it does, this runs the most useful programs that
# do exist, on the default data directory ./cairn-data, and says so. It never
# pretends to be a server.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${CAIRN_DATA:-./cairn-data}"
BIN=./build

if [ -x "$BIN/cairn-server" ]; then
  exec "$BIN/cairn-server" --dir "$DATA" --bind 127.0.0.1
fi

cat <<MSG
make run: there is no cairn-server yet (the Redis-protocol server is a later
milestone), so nothing is listening on any port. What exists today is the
storage foundation: the I/O env and the write-ahead log. This run shows it:

  1. writes 20,000 records into a write-ahead log in $DATA/wal (durable),
  2. verifies the log with 'cairn wal verify' and shows its first records,
  3. runs the quick write-ahead-log benchmark against this disk.

MSG
mkdir -p "$DATA"
set -x
"$BIN/cairn" wal fill "$DATA/wal" --records 20000 --size 100
"$BIN/cairn" wal verify "$DATA/wal"
"$BIN/cairn" wal dump "$DATA/wal" --limit 5
"$BIN/cairn-bench" wal --quick --dir "$DATA/bench"
