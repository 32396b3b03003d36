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

if [[ ${ORDO_SANITIZE:-0} == 1 ]]; then
    build=${ORDO_BUILD_DIR:-$root/build-asan}
    sanitize=ON
else
    build=${ORDO_BUILD_DIR:-$root/build}
    sanitize=OFF
fi
if [[ ! -f $build/build.ninja ]]; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DORDO_SANITIZE=$sanitize >/dev/null
fi
cmake --build "$build" -- -j"$(nproc)" --quiet

case $command in
    dev)
        exec "$build/ordo" dev "$@"
        ;;
    test)
        # A stack of its own, on its own ports, so tests never touch `ordo dev` data.
        export ORDO_STACK_DIR=${ORDO_TEST_STACK_DIR:-$root/.ordo/test}
        export ORDO_PG_PORT=${ORDO_TEST_PG_PORT:-56432}
        export ORDO_NATS_PORT=${ORDO_TEST_NATS_PORT:-56222}
        export ORDO_NATS_MONITOR_PORT=${ORDO_TEST_NATS_MONITOR_PORT:-56822}
        export ORDO_BIN="$build/ordo"
        "$root/deploy/stack.sh" start
        trap '"$root/deploy/stack.sh" stop' EXIT
        ctest --test-dir "$build" --output-on-failure -j "${ORDO_TEST_JOBS:-4}" "$@"
        ;;
    build) ;;
    *)
        echo "usage: ordo.sh dev|test|build [args]" >&2
        exit 2
        ;;
esac
