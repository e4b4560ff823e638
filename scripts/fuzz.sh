#!/usr/bin/env bash
# fuzz.sh — run every fuzz target (fuzz/fuzz_*.c, built with libFuzzer by
# `make fuzz` into BUILD) for SECONDS each, starting from its seed corpus
# (fuzz/corpus/<target>) plus what earlier runs found (BUILD/corpus/<target>,
# kept between runs). Prints the executions per target; a crash stops with
# exit 1 and names the input that triggers it (BUILD/crash-<target>-...):
# once the bug is fixed, copy that file into fuzz/corpus/<target>/ so that
# `make test` replays it from then on.
#
#   scripts/fuzz.sh BUILD SECONDS
set -euo pipefail
BUILD=${1:?usage: fuzz.sh BUILD SECONDS}
SECONDS_EACH=${2:-60}
cd "$(dirname "$0")/.."
status=0
for t in resp sst sst_roundtrip sst_resum wal wal_roundtrip db_replay manifest manifest_resum config dispatch ts_chunk ts_filter blob; do
  bin="$BUILD/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: $bin missing (make fuzz builds it)" >&2; exit 2; }
  mkdir -p "$BUILD/corpus/$t"
  log="$BUILD/fuzz-$t.log"
  echo "fuzz: $t for ${SECONDS_EACH}s..."
  if "$bin" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
      -artifact_prefix="$BUILD/crash-$t-" "$BUILD/corpus/$t" "fuzz/corpus/$t" \
      >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    size=$(ls "$BUILD/corpus/$t" | wc -l)
    echo "fuzz: $t: ${runs:-?} executions, no crash; corpus $size inputs"
  else
    echo "fuzz: $t: CRASH; the input is in $BUILD/crash-$t-*; log: $log" >&2
    grep -E "ERROR|check failed|SUMMARY" "$log" | head -5 >&2 || true
    status=1
  fi
done
exit $status
