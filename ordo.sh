#!/usr/bin/env bash
# The two commands of the quick start:
#   ./ordo.sh dev  [ordo dev flags]   install what is missing, build, run the whole stack
#   ./ordo.sh test [ctest flags]      install what is missing, build, run every test
# Also: ./ordo.sh build (install and build only).
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

# `dev` runs only the ordo binary, so it builds only that; `test` and `build` build all.
targets=()
[[ $command == dev ]] && targets=(ordo)
if [[ ${ORDO_SANITIZE:-0} == 1 ]]; then
    build=${ORDO_BUILD_DIR:-$root/build-asan}
    build_in "$build" ON "${targets[@]}"
else
    build=${ORDO_BUILD_DIR:-$root/build}
    build_in "$build" OFF "${targets[@]}"
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
        "$root/deploy/stack.sh" start
        trap '"$root/deploy/stack.sh" stop' EXIT
        ctest --test-dir "$build" --output-on-failure -j "${ORDO_TEST_JOBS:-4}" "$@"
        # The unit and integration tests again under address and undefined-behaviour
        # sanitizers (ORDO_TEST_SANITIZE=0 skips this).
        if [[ ${ORDO_TEST_SANITIZE:-1} == 1 && ${ORDO_SANITIZE:-0} != 1 ]]; then
            asan=${ORDO_ASAN_BUILD_DIR:-$root/build-asan}
            echo "building and testing with sanitizers in $asan" >&2
            build_in "$asan" ON
            ORDO_BIN="$asan/ordo" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
                LSAN_OPTIONS=suppressions="$root/tests/lsan.supp" \
                UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
                ctest --test-dir "$asan" --output-on-failure -j "${ORDO_TEST_JOBS:-4}" \
                -L 'unit|integration' "$@"
        fi
        ;;
    build) ;;
    *)
        echo "usage: ordo.sh dev|test|build [args]" >&2
        exit 2
        ;;
esac
