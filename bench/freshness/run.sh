#!/usr/bin/env bash
# Read-your-writes freshness: how long after the command API answers is a change visible
# through the Query API with the answer's consistency token. `ordo serve command`, `relay`,
# `projector` and `query` run as separate processes on a database and JetStream stream of
# their own. First the peak command rate (wrk, receipts over 1,000 skus, 16 connections,
# ORDO_BENCH_PEAK_SECONDS, default 5); then one client at ORDO_BENCH_RATE (40) commands/s for
# ORDO_BENCH_SECONDS (15) posts a receipt, takes the token from the answer and reads the sku
# with it until visible: p50/p99 of answered -> visible, idle and again while wrk adds about
# half of the peak rate. After each phase, the hop breakdown of that phase from the services'
# /metrics (ordo_hop_seconds, docs/performance.md).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rate=${ORDO_BENCH_RATE:-40}
seconds=${ORDO_BENCH_SECONDS:-15}
peak_seconds=${ORDO_BENCH_PEAK_SECONDS:-5}
for setting in "ORDO_BENCH_RATE=$rate" "ORDO_BENCH_SECONDS=$seconds" \
    "ORDO_BENCH_PEAK_SECONDS=$peak_seconds"; do
    [[ ${setting#*=} =~ ^[1-9][0-9]{0,3}$ ]] || { echo "${setting%%=*} must be 1 to 9999" >&2; exit 2; }
done

start_stack
cmake --build "$build" --target ordo_bench_freshness ordo_bench_hops >/dev/null

db="ordo_bench_freshness_$$"
services=()
scratch=$(mktemp -d)
cleanup() {
    for pid in "${services[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${services[@]}"; do wait "$pid" 2>/dev/null || true; done
    admin_psql "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT

admin_psql "CREATE DATABASE $db OWNER ordo_migrator" >/dev/null
"$build/ordo" migrate --database-url "$(db_url "$ORDO_MIGRATOR_URL")" 2>/dev/null
# A JetStream stream of its own; its retention (an hour) empties it afterwards. The services'
# own NATS users may use only the default stream, so every service is the NATS administrator.
common=(env ORDO_COMMAND_DATABASE_URL="$(db_url "$ORDO_COMMAND_DATABASE_URL")"
    ORDO_RELAY_DATABASE_URL="$(db_url "$ORDO_RELAY_DATABASE_URL")"
    ORDO_PROJECTOR_DATABASE_URL="$(db_url "$ORDO_PROJECTOR_DATABASE_URL")"
    ORDO_QUERY_DATABASE_URL="$(db_url "$ORDO_QUERY_DATABASE_URL")"
    ORDO_COMMAND_NATS_URL="$ORDO_NATS_ADMIN_URL" ORDO_RELAY_NATS_URL="$ORDO_NATS_ADMIN_URL"
    ORDO_PROJECTOR_NATS_URL="$ORDO_NATS_ADMIN_URL" ORDO_QUERY_NATS_URL="$ORDO_NATS_ADMIN_URL"
    ORDO_NATS_STREAM="BENCH_FRESH_$$" ORDO_NATS_SUBJECT_PREFIX="benchfresh$$.events"
    ORDO_NATS_MAX_AGE=1 ORDO_LOG_LEVEL=warn)
declare -A port
for service in command query relay projector; do
    port[$service]=$(free_port)
    auth=()
    [[ $service == command || $service == query ]] && auth=(--insecure-no-auth)
    "${common[@]}" "$build/ordo" serve "$service" "${auth[@]}" \
        --address "127.0.0.1:${port[$service]}" &
    services+=($!)
done
for service in command query relay projector; do wait_ready "${port[$service]}"; done

scrape() {  # scrape <file>: every service's /metrics, one after another
    for service in command query relay projector; do
        curl -fsS "http://127.0.0.1:${port[$service]}/metrics"
    done >"$1"
}
# wrk_receipts <connections> <seconds> [delay ms]: requests per second answered
wrk_receipts() {
    ORDO_BENCH_DELAY_MS=${3:-0} wrk -t2 -c"$1" -d"$2s" -s "$root/bench/freshness/receipts.lua" \
        "http://127.0.0.1:${port[command]}" | awk '/^Requests\/sec:/ {printf "%.0f", $2}'
}
freshness() {  # freshness <phase name>: the client's figures, then the hop table
    scrape "$scratch/before"
    local figures
    figures=$(ORDO_BENCH_RATE=$rate ORDO_BENCH_SECONDS=$seconds \
        "$build/bench/freshness" "127.0.0.1:${port[command]}" "127.0.0.1:${port[query]}")
    scrape "$scratch/after"
    results+=("$1 $figures")
    tables+=("$("$build/bench/hops" "$scratch/before" "$scratch/after")")
}

results=()
tables=()
peak=$(wrk_receipts 16 "$peak_seconds")
# The relay and the projector catch up on the peak's events before the idle phase: every
# projection partition at the head of the log (an idle partition moves up to it). The head
# in commit order, (transaction_id, global_position): positions are taken before commit, so
# the highest position need not be the last event committed.
caught_up="SELECT NOT EXISTS (SELECT 1 FROM ordo.projection_checkpoints c
    WHERE (c.transaction_id, c.global_position) < (SELECT transaction_id, global_position
        FROM ordo.events ORDER BY transaction_id DESC, global_position DESC LIMIT 1))"
for _ in $(seq 600); do
    [[ $(psql "$(db_url "$ORDO_MIGRATOR_URL")" -qAtc "$caught_up") == t ]] && break
    sleep 0.5
done
freshness idle
# About half the peak: 16 connections, each pausing so that 16 / (pause + latency) is near
# peak / 2 (wrk paces by a pause per connection, not by rate).
half=$((peak / 2))
delay=$((16000 / (half > 0 ? half : 1)))
wrk_receipts 16 $((seconds + 4)) "$delay" >"$scratch/load" &
load=$!
sleep 2
freshness "half-load"
wait "$load"
load_rate=$(cat "$scratch/load")

echo "freshness benchmark: one client at $rate receipts/s for $seconds s, command answered ->" \
    "visible through the Query API with its consistency token; peak $peak commands/s" \
    "(wrk, 16 connections); half-load phase with wrk at $load_rate/s beside it;" \
    "$(nproc) cores, load average $(cut -d' ' -f1,2 /proc/loadavg)"
printf '%-10s %8s %14s %14s %14s %12s %12s %9s %7s\n' phase samples "visible p50" \
    "visible p99" "visible max" "command p50" "command p99" "lagging" failed
for row in "${results[@]}"; do
    read -r phase samples p50 p99 max c50 c99 lagging failed <<<"$row"
    printf '%-10s %8s %14s %14s %14s %12s %12s %9s %7s\n' "$phase" "$samples" "$p50" "$p99" \
        "$max" "$c50" "$c99" "$lagging" "$failed"
done
echo "ms; lagging: reads answered 503 projection_lagging (then read again); failed: commands" \
    "not answered 2xx or never visible"
for i in "${!results[@]}"; do
    echo
    echo "hops, ${results[$i]%% *} phase:"
    echo "${tables[$i]}"
done
