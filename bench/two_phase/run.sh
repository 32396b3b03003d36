#!/usr/bin/env bash
# Two-phase commit against saga-style local transactions: reserve stock in one database and
# authorize the payment in another, under contention, and with a coordinator that stalls
# after PREPARE. Runs on a PostgreSQL cluster of its own (stopped again at the end), so the
# stalled coordinator's locks touch nothing else.
#   ORDO_BENCH_SECONDS (8) per measurement, ORDO_BENCH_CLIENTS (16),
#   ORDO_BENCH_HOT_ROWS (4) skus and accounts under contention, ORDO_BENCH_STALL_SECONDS (5),
#   ORDO_2PC_STACK_DIR (.ordo/bench-two-phase), ORDO_2PC_PG_PORT (55442).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

clients=${ORDO_BENCH_CLIENTS:-16}
[[ $clients =~ ^[0-9]{1,3}$ ]] || { echo "ORDO_BENCH_CLIENTS must be a number" >&2; exit 2; }
export ORDO_STACK_DIR=${ORDO_2PC_STACK_DIR:-$root/.ordo/bench-two-phase}
export ORDO_PG_PORT=${ORDO_2PC_PG_PORT:-55442}
export ORDO_NATS_PORT=${ORDO_2PC_NATS_PORT:-54232}
export ORDO_NATS_MONITOR_PORT=${ORDO_2PC_NATS_MONITOR_PORT:-58232}
# Each client holds up to two prepared transactions at once.
export ORDO_PG_MAX_PREPARED_TRANSACTIONS=$((2 * clients + 8 > 64 ? 2 * clients + 8 : 64))
start_stack
trap '"$root/deploy/stack.sh" stop' EXIT
"$build/bench/two_phase"
