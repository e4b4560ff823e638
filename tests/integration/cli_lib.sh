# cli_lib.sh — the harness the cli_*.sh tests source: a private temporary
# directory (removed on exit, and the working directory, so nothing touches
# the caller's), `run` to capture a command's output and exit status,
# `check` to record a named check, and `finish` to print the tally and exit.
#
# Use: NAME=cli_xxx; . "$(dirname "$0")/cli_lib.sh"; ... checks ...; finish
# After sourcing: $TMP, $RC (exit status of the last `run`), $TMP/out and
# $TMP/err (its output).

TMP=$(mktemp -d "${TMPDIR:-/tmp}/$NAME.XXXXXX") || exit 2
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 2 # nothing below may touch the caller's directory

PASSED=0
FAILED=0
RC=0 # exit status of the last `run`

# run CMD...: run it with stdout/stderr captured in $TMP/out, $TMP/err.
run() {
    "$@" >"$TMP/out" 2>"$TMP/err"
    RC=$?
}

# check NAME TEST...: TEST is a command (usually `[ ... ]` or grep).
check() {
    local name=$1
    shift
    if "$@"; then
        echo "ok - $name"
        PASSED=$((PASSED + 1))
    else
        echo "FAIL - $name"
        echo "#   last exit status: $RC"
        sed -n '1,8s/^/#   stdout: /p' "$TMP/out" 2>/dev/null
        sed -n '1,8s/^/#   stderr: /p' "$TMP/err" 2>/dev/null
        FAILED=$((FAILED + 1))
    fi
}

# finish: "NAME: N passed, M failed"; exit 1 if any check failed.
finish() {
    echo "$NAME: $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ] || exit 1
    exit 0
}
