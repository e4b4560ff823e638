#!/usr/bin/env bash
# run.sh — what `make run` starts: cairn-server in the foreground on
# 127.0.0.1:6380 with its data in ./cairn-data (CAIRN_DATA overrides the
# directory, CAIRN_PORT the port). Ctrl-C (SIGINT) or SHUTDOWN stops it
# cleanly: in-flight commits finish, memtables are flushed.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${CAIRN_DATA:-./cairn-data}"
PORT="${CAIRN_PORT:-6380}"
echo "make run: cairn-server on 127.0.0.1:$PORT, data in $DATA" \
     "(try: redis-cli -p $PORT); Ctrl-C stops it"
exec ./build/cairn-server --dir "$DATA" --bind 127.0.0.1 --port "$PORT"
