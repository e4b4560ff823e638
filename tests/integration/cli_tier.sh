#!/usr/bin/env bash
# cli_tier.sh — end-to-end test of `cairn archive`, `cairn recall` and the
# tiers of `cairn stats`, on a fixture from `cairn debug mkfixture`
# (two sorted files in L0, two in L1).
#
# Usage: cli_tier.sh PATH-TO-cairn
#
# Archives the level-1 files (one line each, sizes before and after), checks
# where the files are, that `cairn check` stays sound (and, with
# --archive-dir, verifies the archived files and finds one damaged), that
# `cairn stats` shows
# both tiers (reading the archive with --archive-dir), recalls one file,
# archives one by number, and checks the errors: no --archive-dir, an
# unknown file, an archive that cannot be reached. Prints "ok - NAME" or
# "FAIL - NAME" per check, then "cli_tier: N passed, M failed"; exits 1 if
# any check failed, 2 on bad usage.
set -u

if [ $# -ne 1 ]; then
    echo "usage: $0 PATH-TO-cairn" >&2
    exit 2
fi
CAIRN=$1
case $CAIRN in
/*) ;;
*) CAIRN=$PWD/$CAIRN ;;
esac
if [ ! -x "$CAIRN" ]; then
    echo "cli_tier: $CAIRN is not an executable" >&2
    exit 2
fi

NAME=cli_tier
. "$(dirname "$0")/cli_lib.sh"

run "$CAIRN" debug mkfixture db
check "fixture written" [ "$RC" -eq 0 ]

run "$CAIRN" archive db
check "archive without --archive-dir: usage error" [ "$RC" -eq 2 ]
check "archive without --archive-dir: says so" grep -q -- "--archive-dir" "$TMP/err"

run "$CAIRN" archive db --archive-dir arch --min-level 1
check "archive --min-level 1: exit 0" [ "$RC" -eq 0 ]
check "archive: one line per file" [ "$(grep -c '^archived 00000[23]\.sst (L1): .* -> ' "$TMP/out")" -eq 2 ]
check "archive: tier summary" grep -q '^archive  files 2' "$TMP/out"
check "archived files in the archive" [ -f arch/000002.sst -a -f arch/000003.sst ]
check "archived files gone from the database directory" [ ! -e db/000002.sst -a ! -e db/000003.sst ]

run "$CAIRN" check db
check "check: sound with archived files" [ "$RC" -eq 0 ]
check "check: archived files noted" [ "$(grep -c 'in archive tier 1' "$TMP/out")" -eq 2 ]

run "$CAIRN" check db --archive-dir arch
check "check --archive-dir: sound" [ "$RC" -eq 0 ]
check "check --archive-dir: archived files verified" [ "$(grep -c '^ok .*L1 00000[23]\.sst' "$TMP/out")" -eq 2 ]
cp arch/000002.sst saved.sst
printf 'X' | dd of=arch/000002.sst bs=1 seek=100 conv=notrunc 2>/dev/null
run "$CAIRN" check db --archive-dir arch
check "check --archive-dir: a damaged archived file: exit 1" [ "$RC" -eq 1 ]
check "check --archive-dir: names it" grep -q '000002.sst' "$TMP/out"
cp saved.sst arch/000002.sst

run "$CAIRN" stats db --archive-dir arch
check "stats --archive-dir: exit 0" [ "$RC" -eq 0 ]
check "stats: archive tier row" grep -Eq '^archive +2 ' "$TMP/out"
check "stats: archive row read (raw bytes)" sh -c "grep -E '^archive ' '$TMP/out' | awk '{exit !(\$6 > 0)}'"
run "$CAIRN" stats db
check "stats without the archive: exit 0" [ "$RC" -eq 0 ]
check "stats without the archive: note" grep -q 'archived files were not read' "$TMP/out"

run "$CAIRN" recall db 000003.sst --archive-dir arch
check "recall: exit 0" [ "$RC" -eq 0 ]
check "recall: says so" grep -q '^recalled 000003.sst' "$TMP/out"
check "recalled file local again" [ -f db/000003.sst -a ! -e arch/000003.sst ]
run "$CAIRN" check db
check "check after recall: sound" [ "$RC" -eq 0 ]

run "$CAIRN" recall db 999 --archive-dir arch
check "recall of an unknown file: exit 2" [ "$RC" -eq 2 ]
check "recall of an unknown file: not found" grep -q 'not found' "$TMP/err"

run "$CAIRN" archive db --archive-dir arch --file 3
check "archive --file: exit 0" [ "$RC" -eq 0 ]
check "archive --file: its line" grep -q '^archived 000003.sst (L1)' "$TMP/out"

mv arch arch-away
run "$CAIRN" recall db 000003.sst --archive-dir arch
check "recall with the archive away: exit 2" [ "$RC" -eq 2 ]
check "recall with the archive away: unavailable" grep -q 'archive tier unavailable' "$TMP/err"
check "archive directory not made anew" [ ! -e arch ]
mv arch-away arch
run "$CAIRN" recall db 000003.sst --archive-dir arch
check "recall once it is back: exit 0" [ "$RC" -eq 0 ]

finish
