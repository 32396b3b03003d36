#!/usr/bin/env bash
# The two commands of the quick start:
#   ./ordo.sh dev  [ordo dev flags]   install what is missing, build, run the whole stack
#   ./ordo.sh test [ctest flags]      install what is missing, build, run every test
# Also: ./ordo.sh build (install and build only); ./ordo.sh fuzz [seconds] (every libFuzzer
# target for that long, default 60; clang, in build-fuzz/); ./ordo.sh bench (every
# benchmark, then one table of ratios against same-run baselines; bench/all.sh).
# ORDO_SANITIZE=1 builds with address and undefined-behaviour sanitizers (in build-asan/).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command=${1:-}
[[ -n $command ]] && shift

"$root/deploy/install.sh"

build_in() {  # build_in <dir> <ON|OFF sanitizers> [targets...] (default: everything)
    local dir=$1 sanitize=$2
    shift 2
    if [[ ! -f $dir/build.ninja ]]; then
        cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DORDO_SANITIZE="$sanitize" >/dev/null
    fi
    cmake --build "$dir" -- -j"$(nproc)" --quiet "$@"
}

# Runs every fuzz target (fuzz/corpus/<target>/ holds its seeds) for $1 seconds, with
# address, undefined-behaviour and leak checks; its corpus grows in .ordo/fuzz/<target>/.
# Prints executions and coverage per target; fails on any crash, leak or timeout.
fuzz_all() {
    local seconds=$1 dir=${ORDO_FUZZ_BUILD_DIR:-$root/build-fuzz} work=$root/.ordo/fuzz failed=0
    if [[ ! -f $dir/build.ninja ]]; then
        CXX=clang++-16 cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            -DORDO_FUZZ=ON -DORDO_BUILD_TESTS=OFF >/dev/null
    fi
    cmake --build "$dir" -- -j"$(nproc)" --quiet
    printf '%-18s %12s %8s %s\n' target executions coverage result
    for corpus in "$root"/fuzz/corpus/*/; do
        local target log
        target=$(basename "$corpus")
        log=$work/$target.log
        mkdir -p "$work/$target"
        if "$dir/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$work/$target-" "$work/$target" "$corpus" \
            >"$log" 2>&1; then
            result=ok
        else
            result="FAILED (see $log)"
            failed=1
        fi
        printf '%-18s %12s %8s %s\n' "$target" \
            "$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)" \
            "$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)" "$result"
    done
    return "$failed"
}

# `dev` runs only the ordo binary, so it builds only that; `test` and `build` build all.
# `fuzz` builds only the fuzz targets, in their own tree.
targets=()
[[ $command == dev ]] && targets=(ordo)
if [[ ${ORDO_SANITIZE:-0} == 1 ]]; then
    build=${ORDO_BUILD_DIR:-$root/build-asan}
    [[ $command == fuzz ]] || build_in "$build" ON "${targets[@]}"
else
    build=${ORDO_BUILD_DIR:-$root/build}
    [[ $command == fuzz ]] || build_in "$build" OFF "${targets[@]}"
fi

case $command in
    dev)
        exec "$build/ordo" dev "$@"
        ;;
    test)
        # A stack of its own, on its own ports, so tests never touch `ordo dev` data. The
        # ports sit below the ephemeral range: a server restarted by a fault test must not
        # find its port taken by some client connection.
        export ORDO_STACK_DIR=${ORDO_TEST_STACK_DIR:-$root/.ordo/test}
        export ORDO_PG_PORT=${ORDO_TEST_PG_PORT:-25432}
        export ORDO_NATS_PORT=${ORDO_TEST_NATS_PORT:-25222}
        export ORDO_NATS_MONITOR_PORT=${ORDO_TEST_NATS_MONITOR_PORT:-25822}
        export ORDO_BIN="$build/ordo"
        # A second PostgreSQL cluster (on the next port) for the tests of a sharded store.
        export ORDO_PG_SHARDS=2
        "$root/deploy/stack.sh" start
        trap '"$root/deploy/stack.sh" stop' EXIT
        ctest --test-dir "$build" --output-on-failure -j "${ORDO_TEST_JOBS:-4}" "$@"
        # Every fuzz target for a bounded time (ORDO_TEST_FUZZ_SECONDS=0 skips this).
        # A failure is reported at the end, after the sanitizer pass has run too.
        fuzz_failed=0
        if [[ ${ORDO_TEST_FUZZ_SECONDS:-20} != 0 ]]; then
            echo "fuzzing each target for ${ORDO_TEST_FUZZ_SECONDS:-20} s" >&2
            fuzz_all "${ORDO_TEST_FUZZ_SECONDS:-20}" || fuzz_failed=1
        fi
        # The unit and integration tests again under address and undefined-behaviour
        # sanitizers (ORDO_TEST_SANITIZE=0 skips this).
        if [[ ${ORDO_TEST_SANITIZE:-1} == 1 && ${ORDO_SANITIZE:-0} != 1 ]]; then
            asan=${ORDO_ASAN_BUILD_DIR:-$root/build-asan}
            echo "building and testing with sanitizers in $asan" >&2
            # Only what that pass runs: the binary, the unit and the integration tests.
            build_in "$asan" ON ordo ordo_unit_tests ordo_integration_tests
            ORDO_BIN="$asan/ordo" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
                LSAN_OPTIONS=suppressions="$root/tests/lsan.supp" \
                UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
                ctest --test-dir "$asan" --output-on-failure -j "${ORDO_TEST_JOBS:-4}" \
                -L 'unit|integration' "$@"
        fi
        if [[ $fuzz_failed == 1 ]]; then
            echo "a fuzz target failed (see .ordo/fuzz/)" >&2
            exit 1
        fi
        ;;
    build) ;;
    bench)
        exec "$root/bench/all.sh"
        ;;
    fuzz)
        fuzz_all "${1:-60}"
        ;;
    *)
        echo "usage: ordo.sh dev|test|build|bench|fuzz [args]" >&2
        exit 2
        ;;
esac
