#!/usr/bin/env bash
# cli_wal.sh — end-to-end test of `cairn wal fill|dump|verify`.
#
# Usage: cli_wal.sh PATH-TO-cairn [PATH-TO-cairn-bench]
# (cairn-bench is accepted for ctest's sake but not used: the log is written
# with the CLI's own test helper, `cairn wal fill`.)
#
# Writes a multi-segment log, dumps and verifies it, damages it in a few
# ways and checks the exit codes (0 sound, 1 corrupt, 2 other errors), the
# messages, and that dump/verify never change a file. Prints "ok - NAME" or
# "FAIL - NAME" per check, then "cli_wal: N passed, M failed"; exits 1 if any
# check failed, 2 on bad usage.
set -u

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 PATH-TO-cairn [PATH-TO-cairn-bench]" >&2
    exit 2
fi
CAIRN=$1
if [ ! -x "$CAIRN" ]; then
    echo "cli_wal: $CAIRN is not an executable" >&2
    exit 2
fi

case $CAIRN in
/*) ;;
*) CAIRN=$PWD/$CAIRN ;;
esac

NAME=cli_wal
. "$(dirname "$0")/cli_lib.sh"

# Checksums of every file in a directory (names and contents).
dir_sums() {
    [ -d "$1" ] || return 0
    (cd "$1" && for f in *; do [ -f "$f" ] && printf '%s %s\n' "$(cksum <"$f")" "$f"; done)
}

# unchanged DIR SUMS: DIR has files and their checksums are still SUMS.
unchanged() {
    local now
    now=$(dir_sums "$1")
    [ -n "$now" ] && [ "$now" = "$2" ]
}

# Replace the byte at OFFSET of FILE with its complement.
flip_byte() {
    local file=$1 off=$2 b
    [ -f "$file" ] || return 1
    b=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' \n')
    printf '%b' "\\0$(printf '%03o' $((b ^ 0xff)))" |
        dd of="$file" bs=1 seek="$off" count=1 conv=notrunc status=none
}

record_lines() { grep -c '^lsn=' "$TMP/out"; }
rc_is() { [ "$RC" -eq "$1" ]; }
record_lines_are() { [ "$(record_lines)" -eq "$1" ]; }
# Newest-last list of the segment files of a log, into SEGS.
segments() { SEGS=("$1"/wal-*.log); [ -e "${SEGS[0]}" ] || SEGS=(); }
no_salvaged_files() { ! compgen -G "$1/*.salvaged" >/dev/null; }
first_lsn_shown() { sed -n 's/^lsn=\([0-9]*\) .*/\1/p' "$TMP/out" | head -n 1; }

# ---- basics ----
run "$CAIRN" --version
check "--version exits 0" [ $RC -eq 0 ]
check "--version prints 'cairn <version>'" grep -Eq '^cairn [0-9]+\.[0-9]+\.[0-9]+' "$TMP/out"

run "$CAIRN" --help
check "--help exits 0" rc_is 0
check "--help prints the usage on stdout" grep -q "wal verify" "$TMP/out"
run "$CAIRN" help
check "help exits 0" [ $RC -eq 0 ]
run "$CAIRN"
check "no arguments: exit 2" rc_is 2
check "no arguments: usage on stderr" grep -q "usage" "$TMP/err"
check "no arguments: nothing on stdout" [ ! -s "$TMP/out" ]

run "$CAIRN" frobnicate
check "unknown command exits 2" [ $RC -eq 2 ]
check "unknown command is named on stderr" grep -q frobnicate "$TMP/err"
run "$CAIRN" wal frobnicate "$TMP"
check "unknown wal subcommand exits 2" [ $RC -eq 2 ]
run "$CAIRN" wal
check "'wal' without a subcommand exits 2" [ $RC -eq 2 ]

# ---- a healthy multi-segment log ----
LOG=$TMP/log
run "$CAIRN" wal fill "$LOG" --records 500 --size 1000 --segment-size 64K
check "fill 500 records exits 0" [ $RC -eq 0 ]
segments "$LOG"
NSEG=${#SEGS[@]}
check "fill made several segments ($NSEG)" [ "$NSEG" -ge 3 ]
OLDEST=${SEGS[0]:-none}
NEWEST=${SEGS[-1]:-none}
SUMS_BEFORE=$(dir_sums "$LOG")

run "$CAIRN" wal verify "$LOG"
check "verify of a healthy log exits 0" [ $RC -eq 0 ]
check "verify reports 500 records" grep -q 'records 500,' "$TMP/out"

run "$CAIRN" wal dump "$LOG"
check "dump exits 0" [ $RC -eq 0 ]
check "dump prints 500 record lines" [ "$(record_lines)" -eq 500 ]
check "dump summary says records 500" grep -q '^records 500, bytes [0-9]*, segments '"$NSEG"', LSN 1\.\.500' "$TMP/out"
check "the log starts at LSN 1" [ "$(first_lsn_shown)" = 1 ]
check "dump names the segment and offset" \
    grep -q "^lsn=1 type=1 len=1000 segment=$(basename "$OLDEST") offset=48 " "$TMP/out"
check "dump previews the payload" grep -q '^lsn=7 .* data="rec-00000007:' "$TMP/out"

run "$CAIRN" wal dump "$LOG" --limit 10
check "dump --limit 10 exits 0" [ $RC -eq 0 ]
check "dump --limit 10 prints 10 record lines" [ "$(record_lines)" -eq 10 ]

run "$CAIRN" wal dump "$LOG" --from 100
check "dump --from 100 exits 0" [ $RC -eq 0 ]
check "dump --from 100 starts at LSN 100" [ "$(first_lsn_shown)" = 100 ]
check "dump --from 100 prints 401 record lines" [ "$(record_lines)" -eq 401 ]

run "$CAIRN" wal dump "$LOG" --from=250 --limit=3 --hex 20
check "dump --hex exits 0" [ $RC -eq 0 ]
check "dump --hex prints 3 records" record_lines_are 3
check "dump --hex starts at LSN 250" grep -q "^lsn=250 " "$TMP/out"
check "dump --hex shows the payload bytes" \
    grep -q '72 65 63 2d 30 30 30 30 30 32 35 30' "$TMP/out"

run "$CAIRN" wal dump "$LOG" --limit 0
check "dump --limit 0 is a usage error (exit 2)" [ $RC -eq 2 ]
run "$CAIRN" wal dump "$LOG" --limit ten
check "dump with a non-numeric --limit exits 2" [ $RC -eq 2 ]
run "$CAIRN" wal dump "$LOG" --bogus
check "dump with an unknown option exits 2" [ $RC -eq 2 ]
run "$CAIRN" wal verify
check "verify without DIR exits 2" [ $RC -eq 2 ]

check "dump and verify changed no file" unchanged "$LOG" "$SUMS_BEFORE"

# ---- nonexistent directory ----
run "$CAIRN" wal verify "$TMP/no-such-dir"
check "verify of a nonexistent directory exits 2" [ $RC -eq 2 ]
check "... with a message naming it" grep -q 'no-such-dir' "$TMP/err"
run "$CAIRN" wal dump "$TMP/no-such-dir"
check "dump of a nonexistent directory exits 2" [ $RC -eq 2 ]
check "... and does not create it" [ ! -e "$TMP/no-such-dir" ]

# ---- corruption in the oldest segment ----
BAD=$TMP/bad
cp -r "$LOG" "$BAD"
BAD_OLDEST=$BAD/$(basename "$OLDEST")
flip_byte "$BAD_OLDEST" 200 # inside the payload of the first record
BAD_SUMS=$(dir_sums "$BAD")
run "$CAIRN" wal verify "$BAD"
check "verify of a corrupt log exits 1" [ $RC -eq 1 ]
check "verify names the damaged segment" grep -q "$(basename "$OLDEST")" "$TMP/err"
check "verify says at which offset" grep -q 'offset' "$TMP/err"
run "$CAIRN" wal dump "$BAD"
check "dump of a corrupt log exits 1" [ $RC -eq 1 ]
run "$CAIRN" wal verify "$BAD" --salvage
check "verify --salvage exits 1 when data would be dropped" [ $RC -eq 1 ]
check "verify --salvage says how much would be dropped" grep -q 'would drop [1-9][0-9]* bytes' "$TMP/err"
check "verify (--salvage too) changed no file" unchanged "$BAD" "$BAD_SUMS"
check "verify --salvage renamed nothing" no_salvaged_files "$BAD"

run "$CAIRN" wal verify "$LOG" --salvage
check "verify --salvage of a healthy log exits 0" [ $RC -eq 0 ]

# ---- damage in the newest segment with valid records after it ----
MID=$TMP/mid
cp -r "$LOG" "$MID"
flip_byte "$MID/$(basename "$NEWEST")" 200
run "$CAIRN" wal verify "$MID"
check "damage inside the newest segment (not its tail) exits 1" [ $RC -eq 1 ]
check "... naming that segment" grep -q "$(basename "$NEWEST")" "$TMP/err"

# ---- torn tail: the newest segment cut in the middle of its last record ----
TORN=$TMP/torn
run "$CAIRN" wal fill "$TORN" --records 100 --size 1000 --segment-size 64K
check "fill a second log exits 0" [ $RC -eq 0 ]
segments "$TORN"
TORN_SEG=${SEGS[-1]:-none}
SIZE=$(stat -c %s "$TORN_SEG" 2>/dev/null || echo 0)
if [ "$SIZE" -gt 1024 ]; then
    truncate -s $((SIZE - 500)) "$TORN_SEG" # the last record is 1024 bytes
fi
TORN_SUMS=$(dir_sums "$TORN")
run "$CAIRN" wal verify "$TORN"
check "verify of a log with a torn tail exits 0" [ $RC -eq 0 ]
check "verify mentions the torn tail" grep -qi 'torn tail' "$TMP/err"
check "verify counts the 99 whole records" grep -q 'records 99,' "$TMP/out"
run "$CAIRN" wal dump "$TORN"
check "dump of a torn log exits 0" rc_is 0
check "dump of a torn log prints the 99 whole records" record_lines_are 99
check "dump notes the torn tail" grep -qi 'torn tail' "$TMP/err"
run "$CAIRN" wal verify "$TORN" --salvage
check "verify --salvage of a torn log exits 0" [ $RC -eq 0 ]
check "the torn segment was not modified (read-only)" \
    [ "$(stat -c %s "$TORN_SEG")" -eq $((SIZE - 500)) ]
check "no file of the torn log changed" unchanged "$TORN" "$TORN_SUMS"

finish
