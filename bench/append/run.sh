#!/usr/bin/env bash
# Builds Ordo, starts the local stack if needed, and prints append throughput beside raw
# PostgreSQL INSERT throughput. ORDO_BENCH_SECONDS sets the length of each measurement.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
"$root/ordo.sh" build
"$root/deploy/stack.sh" start
set -a
# shellcheck disable=SC1091
source "${ORDO_STACK_DIR:-$root/.ordo/dev}/stack.env"
set +a
exec "${ORDO_BUILD_DIR:-$root/build}/bench/append"
