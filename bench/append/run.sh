#!/usr/bin/env bash
# Builds Ordo, starts the local stack if needed, and prints append throughput beside raw
# PostgreSQL INSERT throughput and beside two public PostgreSQL event stores, Message DB and
# Emmett, which it installs with npm at pinned versions (bench/append/peers/) into
# .ordo/bench-peers. ORDO_BENCH_SECONDS sets the length of each measurement;
# ORDO_BENCH_PEERS=0 skips the peers (their columns then read n/a, as without node or npm);
# ORDO_BENCH_APPEND_ONLY="1w batches" runs some of the scenarios (1w 4w 16w batches).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
case ${ORDO_BENCH_PEERS:-1} in
    0) ;;
    1)
        export ORDO_BENCH_PEERS_DIR=$root/.ordo/bench-peers
        if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
            echo "bench/append: node or npm is not installed; the peer columns read n/a" >&2
        elif ! "$root/bench/append/peers/install.sh" "$ORDO_BENCH_PEERS_DIR"; then
            echo "bench/append: installing the peers failed; their columns read n/a" >&2
        fi
        ;;
    *) echo "bench/append: ORDO_BENCH_PEERS must be 0 or 1, not ${ORDO_BENCH_PEERS}" >&2; exit 2 ;;
esac
start_stack
exec "$build/bench/append"
