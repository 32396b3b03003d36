#!/usr/bin/env bash
# Builds Ordo, starts the local stack if needed, and prints the relay's throughput (store ->
# JetStream, from an empty checkpoint over ORDO_BENCH_EVENTS events, 100,000 unless set)
# beside raw JetStream async publishing of the same messages, before and after it.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
start_stack
cmake --build "$build" --target ordo_bench_relay >/dev/null
exec "$build/bench/relay"
