#!/usr/bin/env bash
# Builds Ordo, starts the local stack if needed, and prints offline-rebuild throughput over
# ORDO_BENCH_EVENTS events (default 1,000,000) beside raw COPY and raw multi-row INSERT into
# a comparable table. ORDO_BENCH_PER_EVENT=0 skips the slow event-by-event rebuild.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
start_stack
exec "$build/bench/rebuild"
