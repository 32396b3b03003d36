#!/usr/bin/env bash
# Builds Ordo, starts the local stack if needed, and prints append throughput beside raw
# PostgreSQL INSERT throughput. ORDO_BENCH_SECONDS sets the length of each measurement.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
start_stack
exec "$build/bench/append"
