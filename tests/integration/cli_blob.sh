#!/usr/bin/env bash
# cli_blob.sh — end-to-end test of the blob store in the tools: a database
# whose 16 KiB values (half of them repeats) are stored out of line, written
# by `cairn-bench tiers --parts dedup`; then `cairn stats` (text and JSON)
# shows the blob store's files, stored and logical bytes and dedup ratio,
# `cairn check` recounts the references and reads every blob back, and
# finds a damaged blob file.
#
# Usage: cli_blob.sh PATH-TO-cairn PATH-TO-cairn-bench
#
# Prints "ok - NAME" or "FAIL - NAME" per check, then "cli_blob: N passed,
# M failed"; exits 1 if any check failed, 2 on bad usage.
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 PATH-TO-cairn PATH-TO-cairn-bench" >&2
    exit 2
fi
CAIRN=$1
BENCH=$2
for b in "$CAIRN" "$BENCH"; do
    if [ ! -x "$b" ]; then
        echo "cli_blob: $b is not an executable" >&2
        exit 2
    fi
done

NAME=cli_blob
. "$(dirname "$0")/cli_lib.sh"

run "$BENCH" tiers --parts dedup --engines cairn --mb 4 --keep --dir "$TMP/b"
check "4 MiB of 16 KiB values written" [ "$RC" -eq 0 ]
DB=$TMP/b/dedup-cairn
check "blob files in the database" ls "$DB"/blob/*.blob

run "$CAIRN" stats "$DB"
check "stats: exit 0" [ "$RC" -eq 0 ]
check "stats: the blob line" grep -q '^blob: files 1, .* stored for 4194304 bytes (4.0 MiB) of values referenced (dedup + compression [0-9.]*x), [0-9]* distinct' "$TMP/out"

run "$CAIRN" stats --json "$DB"
check "stats --json: exit 0" [ "$RC" -eq 0 ]
check "stats --json: blob fields" python3 -c '
import json, sys
b = json.load(open(sys.argv[1]))["blob"]
assert b["logical_bytes"] == 4194304, b
assert 100 < b["distinct"] < 256, b          # half of 256 writes repeat
assert b["bytes"] < b["logical_bytes"] / 2.5, b  # dedup and compression
assert b["dedup_ratio"] > 2.5, b
' "$TMP/out"

run "$CAIRN" check "$DB"
check "check: sound" [ "$RC" -eq 0 ]
check "check: references recounted" grep -q '^ok  *blob/: 1 files, [0-9]* blobs referenced 256 times, counts exact, all read back' "$TMP/out"

# Damage one byte in the middle of the blob file.
F=$(ls "$DB"/blob/*.blob | head -1)
SIZE=$(stat -c %s "$F")
printf '\xff' | dd of="$F" bs=1 seek=$((SIZE / 2)) conv=notrunc status=none
run "$CAIRN" check "$DB"
check "check: a damaged blob file is found" [ "$RC" -eq 1 ]
check "check: says DAMAGED" grep -q 'DAMAGED' "$TMP/out"

finish
