#!/usr/bin/env bash
# Builds Ordo, starts the local stack if needed, and prints offline-rebuild throughput over
# ORDO_BENCH_EVENTS events (default 1,000,000) beside raw COPY and raw multi-row INSERT into
# a comparable table. ORDO_BENCH_PER_EVENT=0 skips the slow event-by-event rebuild.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
"$root/ordo.sh" build
"$root/deploy/stack.sh" start
set -a
# shellcheck disable=SC1091
source "${ORDO_STACK_DIR:-$root/.ordo/dev}/stack.env"
set +a
exec "${ORDO_BUILD_DIR:-$root/build}/bench/rebuild"
