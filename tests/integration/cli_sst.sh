#!/usr/bin/env bash
# cli_sst.sh — end-to-end test of `cairn sst dump`, `cairn check`,
# `cairn stats` and `cairn compact` (on a copy of the fixture).
#
# Usage: cli_sst.sh PATH-TO-cairn [PATH-TO-cairn-bench]
# (cairn-bench is accepted for ctest's sake but not used: the database
# directories are written with the CLI's hidden test helper,
# `cairn debug mkfixture DIR`: FORMAT, two sorted files in L0 and two in L1,
# a manifest naming them, and a WAL of commit records.)
#
# Writes a fixture, dumps its files, checks and measures it, then damages
# copies of it in several ways (a flipped byte in a data block, a deleted
# file, garbage CURRENT, a damaged manifest record, a torn manifest tail,
# a damaged WAL, metadata that disagrees with the file) and checks the exit
# codes (0 sound, 1 damaged, 2 other errors), that every problem is named,
# and that the read-only commands change no file. Prints "ok - NAME" or
# "FAIL - NAME" per check, then "cli_sst: N passed, M failed"; exits 1 if
# any check failed, 2 on bad usage.
set -u

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 PATH-TO-cairn [PATH-TO-cairn-bench]" >&2
    exit 2
fi
CAIRN=$1
if [ ! -x "$CAIRN" ]; then
    echo "cli_sst: $CAIRN is not an executable" >&2
    exit 2
fi

case $CAIRN in
/*) ;;
*) CAIRN=$PWD/$CAIRN ;;
esac

NAME=cli_sst
. "$(dirname "$0")/cli_lib.sh"

rc_is() { [ "$RC" -eq "$1" ]; }
out_has() { grep -Eq -- "$1" "$TMP/out"; }
err_has() { grep -Eq -- "$1" "$TMP/err"; }
out_lacks() { ! grep -Eq -- "$1" "$TMP/out"; }
err_lacks() { ! grep -Eq -- "$1" "$TMP/err"; }
# The oldest WAL segment of database DIR.
first_segment() {
    local segs=("$1"/wal/wal-*.log)
    printf '%s\n' "${segs[0]}"
}
entry_lines() { grep -c '^key=' "$TMP/out"; }
entry_lines_are() { [ "$(entry_lines)" -eq "$1" ]; }

# Checksums of every file under a directory (paths and contents).
tree_sums() {
    (cd "$1" && find . -type f | LC_ALL=C sort | while read -r f; do
        printf '%s %s\n' "$(cksum <"$f")" "$f"
    done)
}
unchanged() { [ "$(tree_sums "$1")" = "$2" ]; }

# Replace the byte at OFFSET of FILE with its complement.
flip_byte() {
    local file=$1 off=$2 b
    [ -f "$file" ] || return 1
    b=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' \n')
    printf '%b' "\\0$(printf '%03o' $((b ^ 0xff)))" |
        dd of="$file" bs=1 seek="$off" count=1 conv=notrunc status=none
}

# Entries the fixture says file NAME holds (from mkfixture's output in
# $TMP/fixture.txt).
fixture_entries() {
    sed -n "s/^file $1 level [0-9]* entries \([0-9]*\) .*/\1/p" "$TMP/fixture.txt"
}

# copy NAME: a fresh copy of the healthy fixture, in $TMP/NAME.
copy() {
    rm -rf "${TMP:?}/$1"
    cp -r "$DB" "$TMP/$1"
}

# ---- usage ----
run "$CAIRN" help
check "help exits 0" rc_is 0
check "help lists sst dump" out_has 'sst dump FILE'
check "help lists check" out_has 'cairn check DIR'
check "help lists stats" out_has 'cairn stats DIR'
check "help does not list the hidden fixture helper" out_lacks mkfixture
for cmd in "sst dump" check stats "debug mkfixture"; do
    # shellcheck disable=SC2086
    run "$CAIRN" $cmd --help
    check "'$cmd --help' exits 0" rc_is 0
    check "'$cmd --help' prints its usage" out_has "usage: cairn $cmd"
done
run "$CAIRN" sst
check "'sst' without a subcommand exits 2" rc_is 2
run "$CAIRN" sst frobnicate x
check "unknown sst subcommand exits 2" rc_is 2
run "$CAIRN" check
check "check without DIR exits 2" rc_is 2
run "$CAIRN" check "$TMP" --bogus
check "check with an unknown option exits 2" rc_is 2
check "... saying which option" err_has "unknown option '--bogus'"
run "$CAIRN" stats "$TMP" --jsn
check "stats with an unknown option exits 2" rc_is 2
check "... saying which option" err_has "unknown option '--jsn'"
run "$CAIRN" sst dump x.sst --limit ten
check "dump with a non-numeric --limit exits 2" rc_is 2

# ---- the fixture ----
DB=$TMP/db
run "$CAIRN" debug mkfixture "$DB"
check "mkfixture exits 0" rc_is 0
cp "$TMP/out" "$TMP/fixture.txt"
check "mkfixture wrote four sorted files" [ "$(grep -c '^file ' "$TMP/fixture.txt")" -eq 4 ]
db_files_present() {
    [ -f "$DB/FORMAT" ] && [ -f "$DB/CURRENT" ] && [ -f "$(first_segment "$DB")" ]
}
check "mkfixture wrote FORMAT, CURRENT and a WAL segment" db_files_present
L0A=$(sed -n 's/^file \([0-9]*\.sst\) level 0 .*/\1/p' "$TMP/fixture.txt" | head -n 1)
L0B=$(sed -n 's/^file \([0-9]*\.sst\) level 0 .*/\1/p' "$TMP/fixture.txt" | tail -n 1)
L1A=$(sed -n 's/^file \([0-9]*\.sst\) level 1 .*/\1/p' "$TMP/fixture.txt" | head -n 1)
L1B=$(sed -n 's/^file \([0-9]*\.sst\) level 1 .*/\1/p' "$TMP/fixture.txt" | tail -n 1)
two_per_level() {
    [ -n "$L0A" ] && [ -n "$L1A" ] && [ "$L0A" != "$L0B" ] && [ "$L1A" != "$L1B" ]
}
check "two files in each of L0 and L1" two_per_level
TOTAL_ENTRIES=$(awk '/^file /{n+=$6} END{print n+0}' "$TMP/fixture.txt")
check "the fixture holds entries ($TOTAL_ENTRIES)" [ "$TOTAL_ENTRIES" -gt 0 ]
run "$CAIRN" debug mkfixture "$DB"
check "mkfixture refuses a non-empty directory (exit 2)" rc_is 2
SUMS=$(tree_sums "$DB")

# ---- sst dump ----
N0=$(fixture_entries "$L0B")
run "$CAIRN" sst dump "$DB/$L0B" --limit 0
check "dump --limit 0 exits 0" rc_is 0
check "dump --limit 0 prints every entry ($N0)" entry_lines_are "$N0"
check "dump shows the entry count" out_has "^entries: $N0 \(puts [0-9]+, deletes [0-9]+\)"
check "dump says all entries were shown" out_has "^shown $N0 of $N0 entries$"
check "dump escapes a binary key" out_has '^key="key-\\x00\\xff\\x22\\x5c" version='
check "dump prints timestamps as ISO-8601" out_has 'ts=[0-9]+ \(2023-11-14T22:13:2[0-9]\.[0-9]{6}Z\)'
check "dump prints PUT entries with value length and preview" out_has ' PUT vlen=[0-9]+ value="v[0-9]+:'
check "dump prints DEL entries" out_has ' DEL$'
check "dump shows the version range" out_has '^versions: [0-9]+\.\.[0-9]+$'
check "dump shows the time range in ISO-8601" out_has '^timestamps: [0-9]+\.\.[0-9]+ \(2023-.*Z \.\. 2023-.*Z\)$'
check "dump shows the compression ratio" out_has 'ratio raw/stored [0-9]+\.[0-9]+$'
check "dump shows the codec" out_has '^codec: (none|lz4|zstd)'

run "$CAIRN" sst dump "$DB/$L1A"
check "dump (default limit) exits 0" rc_is 0
check "dump shows 100 entries by default" entry_lines_are 100
check "dump says it stopped at the limit" out_has "^shown 100 of $(fixture_entries "$L1A") entries \(stopped at --limit 100\)"
check "dump names the zstd codec of an L1 file" out_has '^codec: zstd \(level [0-9]+\)'

run "$CAIRN" sst dump "$DB/$L0A" --limit=7
check "dump --limit=7 prints 7 entries" entry_lines_are 7

run "$CAIRN" sst dump "$DB/$L0A" --props-only
check "dump --props-only exits 0" rc_is 0
check "dump --props-only prints no entry" entry_lines_are 0
check "dump --props-only prints the properties" out_has "^entries: $(fixture_entries "$L0A") "
check "dump --props-only shows the smallest key" out_has '^smallest: "key-'
check "dump --props-only shows the largest key" out_has '^largest: "key-'

run "$CAIRN" sst dump "$DB/no-such.sst"
check "dump of a missing file exits 2" rc_is 2
check "... naming it" err_has 'no-such\.sst'
run "$CAIRN" sst dump "$DB"
check "dump of a directory exits 2" rc_is 2
run "$CAIRN" sst dump "$DB/FORMAT"
check "dump of a file that is not a sorted file exits 1" rc_is 1

# ---- check: healthy ----
run "$CAIRN" check "$DB"
check "check of a healthy database exits 0" rc_is 0
check "check says sound" out_has '^sound: '
check "check lists each sorted file as ok" \
    [ "$(grep -cE '^ok +L[01] [0-9]{6}\.sst: ' "$TMP/out")" -eq 4 ]
check "check reports the manifest" out_has '^ok +manifest MANIFEST-[0-9]+: '
check "check reports the WAL" out_has '^ok +wal: records 20,'
check "check prints no progress when stderr is not a terminal" err_lacks MiB

run "$CAIRN" check "$DB" --progress
check "check --progress exits 0" rc_is 0
check "check --progress shows bytes checked / total on stderr" err_has '^check: [0-9.]+/[0-9.]+ MiB \(100%\)'

run "$CAIRN" check "$TMP/no-such-dir"
check "check of a nonexistent directory exits 2" rc_is 2
check "... and does not create it" [ ! -e "$TMP/no-such-dir" ]
mkdir "$TMP/empty"
run "$CAIRN" check "$TMP/empty"
check "check of a directory that is no database exits 2" rc_is 2
check "... saying so" err_has 'not a Cairn database'

# ---- leftovers are not errors ----
copy left
cp "$TMP/left/$L1A" "$TMP/left/000099.sst"
run "$CAIRN" check "$TMP/left"
check "check with a leftover file exits 0" rc_is 0
check "... and reports it as a leftover" out_has '^leftover +000099\.sst: '

# ---- a flipped byte in a data block ----
copy flip
flip_byte "$TMP/flip/$L0A" 100 # inside data block 0 (blocks start at 0)
FLIP_SUMS=$(tree_sums "$TMP/flip")
run "$CAIRN" check "$TMP/flip"
check "check with a damaged data block exits 1" rc_is 1
check "... naming the damaged file" out_has "^DAMAGED +L0 $L0A: "
check "... and the offset" out_has "^DAMAGED +L0 $L0A: .*offset"
check "... with a verdict on stderr" err_has 'damaged: 1 problem|1 problem'
check "... the other files are still checked" [ "$(grep -cE '^ok +L[01] ' "$TMP/out")" -eq 3 ]
check "check changed no file" unchanged "$TMP/flip" "$FLIP_SUMS"
run "$CAIRN" sst dump "$TMP/flip/$L0A" --limit 0
check "dump of the damaged file exits 1" rc_is 1
check "... naming the file" err_has "$L0A"
run "$CAIRN" stats "$TMP/flip"
check "stats of a database with a damaged block still exits 0 (properties are sound)" rc_is 0

# ---- a deleted file ----
copy gone
rm "$TMP/gone/$L1B"
run "$CAIRN" check "$TMP/gone"
check "check with a missing sorted file exits 1" rc_is 1
check "... naming it as missing" out_has "^DAMAGED +L1 $L1B: missing"
run "$CAIRN" stats "$TMP/gone"
check "stats with a missing sorted file exits 1" rc_is 1
check "... naming it" err_has "$L1B"

# ---- several problems: every one is listed ----
copy many
flip_byte "$TMP/many/$L0A" 100
rm "$TMP/many/$L1B"
flip_byte "$(first_segment "$TMP/many")" 200
run "$CAIRN" check "$TMP/many"
check "check with three problems exits 1" rc_is 1
check "... names the damaged file" out_has "^DAMAGED +L0 $L0A"
check "... names the missing file" out_has "^DAMAGED +L1 $L1B: missing"
check "... names the damaged WAL segment" out_has '^DAMAGED +wal: .*wal-[0-9]{20}\.log'
check "... and counts 3 problems" out_has '^damaged: 3 problems found'

# ---- metadata that disagrees with the file ----
run "$CAIRN" debug mkfixture "$TMP/meta" --wrong-meta
check "mkfixture --wrong-meta exits 0" rc_is 0
run "$CAIRN" check "$TMP/meta"
check "check with wrong manifest metadata exits 1" rc_is 1
check "... naming the file and the entry count" out_has "^DAMAGED +L1 $L1A: [0-9]+ entries, the manifest says [0-9]+"

# ---- garbage CURRENT ----
copy cur
printf 'garbage' >"$TMP/cur/CURRENT"
run "$CAIRN" check "$TMP/cur"
check "check with garbage CURRENT exits 1" rc_is 1
check "... reporting the manifest as damaged" out_has '^DAMAGED +manifest: '
check "... still verifying the sorted files on their own" \
    [ "$(grep -c 'not checked against a manifest' "$TMP/out")" -eq 4 ]
run "$CAIRN" stats "$TMP/cur"
check "stats with garbage CURRENT exits 1" rc_is 1

# ---- damaged manifest record; torn manifest tail ----
copy mrec
MAN=$(cat "$TMP/mrec/CURRENT")
flip_byte "$TMP/mrec/$MAN" 40 # inside the first record (the snapshot)
run "$CAIRN" check "$TMP/mrec"
check "check with a damaged manifest record exits 1" rc_is 1
check "... naming the manifest" out_has "^DAMAGED +manifest: .*$MAN"

copy mtorn
MAN=$(cat "$TMP/mtorn/CURRENT")
printf 'half a record...' >>"$TMP/mtorn/$MAN"
MTORN_SUMS=$(tree_sums "$TMP/mtorn")
run "$CAIRN" check "$TMP/mtorn"
check "check with a torn manifest tail exits 0" rc_is 0
check "... noting the torn tail" out_has '^note +manifest .*torn tail'
check "... and cuts nothing (read-only)" unchanged "$TMP/mtorn" "$MTORN_SUMS"

# ---- damaged WAL alone ----
copy wal
flip_byte "$(first_segment "$TMP/wal")" 200
run "$CAIRN" check "$TMP/wal"
check "check with a damaged WAL exits 1" rc_is 1
check "... naming the segment" out_has '^DAMAGED +wal: .*wal-[0-9]{20}\.log'

# ---- stats ----
run "$CAIRN" stats "$DB"
check "stats exits 0" rc_is 0
check "stats prints L0 with 2 files" out_has '^L0 +2 '
check "stats prints L1 with 2 files" out_has '^L1 +2 '
check "stats totals the entries ($TOTAL_ENTRIES)" out_has "^total +4 +[0-9]+ +$TOTAL_ENTRIES "
check "stats prints the space amplification and its definition" \
    out_has '^space amplification: [0-9.]+ = file bytes / raw key\+value bytes of all entries'
check "stats prints the WAL" out_has '^wal: segments 1, [0-9]+ bytes'

run "$CAIRN" stats "$DB" --json
check "stats --json exits 0" rc_is 0
check "stats --json prints one JSON object" \
    python3 -c 'import json,sys; d=json.load(sys.stdin); assert isinstance(d, dict)' <"$TMP/out"
check "stats --json has the levels, totals and WAL" python3 -c '
import json, sys
d = json.load(sys.stdin)
lv = d["levels"]
assert [l["level"] for l in lv] == [0, 1], lv
assert [l["files"] for l in lv] == [2, 2], lv
assert d["total"]["files"] == 4
assert d["total"]["entries"] == int(sys.argv[1]), d["total"]
assert d["total"]["entries"] == sum(l["entries"] for l in lv)
assert d["total"]["bytes"] == sum(l["bytes"] for l in lv)
assert d["total"]["compression_ratio"] > 1.0
assert d["space_amplification"] > 0
assert d["wal"]["segments"] == 1 and d["wal"]["bytes"] > 0
assert d["damaged"] is False and d["complete"] is True
' "$TOTAL_ENTRIES" <"$TMP/out"
run "$CAIRN" stats "$TMP/no-such-dir"
check "stats of a nonexistent directory exits 2" rc_is 2

check "dump, check and stats changed no file of the fixture" unchanged "$DB" "$SUMS"

# ---- compact (on a copy: it writes) ----
cp -r "$DB" "$TMP/comp"
run "$CAIRN" compact "$TMP/comp" --progress
check "compact exits 0" rc_is 0
check "compact prints the levels before" out_has '^before: L0 2 files .*L1 2 files .*total 4 files'
check "compact leaves everything in level 2" out_has '^after: L2 [0-9]+ files [0-9.]+ MiB; total'
check "compact shows progress per level" err_has '^compact: level 1 -> 2: '
run "$CAIRN" check "$TMP/comp"
check "the compacted database checks sound" rc_is 0
run "$CAIRN" stats "$TMP/comp" --json
check "stats after compact: only level 2 holds files, no tombstone left" python3 -c '
import json, sys
d = json.load(sys.stdin)
held = [l for l in d["levels"] if l["files"] > 0]
assert [l["level"] for l in held] == [2], d["levels"]
assert d["total"]["tombstones"] == 0, d["total"]
assert 0 < d["total"]["entries"] <= int(sys.argv[1]), d["total"]
' "$TOTAL_ENTRIES" <"$TMP/out"
run "$CAIRN" compact "$TMP/comp"
check "a second compact exits 0 and changes nothing" out_has '^before: L2 1 files'
run "$CAIRN" compact "$TMP/no-such-dir"
check "compact of a nonexistent directory exits 2" rc_is 2

finish
