# What the `ordo dev` end-to-end scripts share (tests/ha/dev_test.sh, tests/shards/dev_test.sh):
# a clean environment, a failure that shows the tail of the dev log, and a bounded wait.
# The caller sets `log` (the file `ordo dev` writes to) before it fails or waits.
# shellcheck shell=bash

# None of the caller's stack settings leak into the stack the script starts: called once the
# script has read its own (ORDO_TEST_*).
clear_stack_settings() {
    local name
    while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(ORDO_|PG)')
}

fail() {
    echo "FAILED: $*" >&2
    tail -20 "$log" >&2
    exit 1
}

# until_true <seconds> <what> <command...>: the command, every 0.2 s, until it succeeds.
until_true() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        ((SECONDS < deadline)) || fail "$what within ${seconds}s"
        sleep 0.2
    done
}
