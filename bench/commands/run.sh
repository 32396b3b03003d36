#!/usr/bin/env bash
# Commands per second and latency of the command API under wrk (receipts across 1,000 skus
# at 16 and 64 connections), beside the raw append throughput of bench/append measured in
# the same run. ORDO_BENCH_SECONDS sets the length of each measurement (default 10).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
seconds=${ORDO_BENCH_SECONDS:-10}
start_stack

db="ordo_bench_commands_$$"
admin_psql "CREATE DATABASE $db OWNER ordo_migrator"
port=$((20000 + RANDOM % 20000))
"$build/ordo" migrate --database-url "$(db_url "$ORDO_MIGRATOR_URL")" 2>/dev/null
ORDO_LOG_LEVEL=warn "$build/ordo" serve command --insecure-no-auth \
    --address "127.0.0.1:$port" --database-url "$(db_url "$ORDO_COMMAND_DATABASE_URL")" &
service=$!
cleanup() {
    kill "$service" 2>/dev/null || true
    wait "$service" 2>/dev/null || true
    admin_psql "DROP DATABASE IF EXISTS $db WITH (FORCE)"
}
trap cleanup EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

measure() {  # measure <connections> -> "rps p50 p99"
    local out
    out=$(wrk -t2 -c"$1" -d"${seconds}s" --latency -s "$root/bench/commands/receipts.lua" \
        "http://127.0.0.1:$port")
    local rps p50 p99 non2xx
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    echo "$rps $p50 $p99 ${non2xx:-0}"
}

read -r rps16 p50_16 p99_16 bad16 < <(measure 16)
read -r rps64 p50_64 p99_64 bad64 < <(measure 64)
append_rate=$(ORDO_BENCH_SECONDS=$seconds "$build/bench/append" |
    awk -F'  +' '/single event, 16 writers/ {print $2}')

echo "command benchmark: POST receipts over 1,000 skus, ${seconds} s per measurement"
printf '%-16s %12s %10s %10s %8s %22s %8s\n' connections commands/s p50 p99 non-2xx \
    "raw append/s (16 wr.)" ratio
for row in "16 $rps16 $p50_16 $p99_16 $bad16" "64 $rps64 $p50_64 $p99_64 $bad64"; do
    read -r c rps p50 p99 bad <<<"$row"
    printf '%-16s %12.0f %10s %10s %8s %22s %8.2f\n' "$c" "$rps" "$p50" "$p99" "$bad" \
        "$append_rate" "$(awk -v a="$rps" -v b="$append_rate" 'BEGIN {print a / b}')"
done
