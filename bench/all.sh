#!/usr/bin/env bash
# Every benchmark in turn (`./ordo.sh bench`), then one table: what each measured beside the
# baseline it measured in the same run (raw INSERT, raw COPY, raw JetStream async publishing,
# the append rate REST is held to, the peer event stores when bench/append ran them, an idle
# stack at 16 partitions) and the latency percentiles beside their goals. Each benchmark's whole output (hop tables included) stays in
# .ordo/bench/<UTC time>/. ORDO_BENCH_ONLY="append sagas" runs a subset; every benchmark
# keeps its own settings (ORDO_BENCH_SECONDS, ORDO_BENCH_ORDERS, ...). The rebuild benchmark
# runs on ORDO_BENCH_EVENTS (here 200,000 unless set) without its slow per-event variant.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

all="append commands freshness sagas rebuild relay idle"
only=${ORDO_BENCH_ONLY:-$all}
for b in $only; do
    [[ " $all " == *" $b "* ]] || { echo "ORDO_BENCH_ONLY: one or more of: $all (not $b)" >&2; exit 2; }
done
out="$root/.ordo/bench/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

failed=()
for b in $only; do
    echo "bench/$b ..." >&2
    started=$SECONDS
    if [[ $b == rebuild ]]; then
        run=(env "ORDO_BENCH_EVENTS=${ORDO_BENCH_EVENTS:-200000}" ORDO_BENCH_PER_EVENT=0)
    else
        run=(env)
    fi
    if "${run[@]}" "$root/bench/$b/run.sh" >"$out/$b.txt" 2>"$out/$b.log"; then
        echo "bench/$b done in $((SECONDS - started)) s" >&2
    else
        echo "bench/$b failed; see $out/$b.log" >&2
        failed+=("$b")
    fi
done

row() { printf '%-10s %-40s %18s  %-30s %7s\n' "$@"; }
echo
echo "Ordo benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
row benchmark measure Ordo "baseline (same run) or goal" ratio
for b in $only; do
    file="$out/$b.txt"
    [[ -s $file ]] || { row "$b" "no figures (failed)" - - -; continue; }
    case $b in
        append)
            # scenario, ordo, raw, ratio[, peer, ratio]...: columns are two or more spaces apart.
            awk -F'  +' -v fmt='%-10s %-40s %18s  %-30s %7s\n' '
                /^(single event|100-event)/ {
                    printf fmt, "append", $1, $2 "/s", "raw INSERT " $3 "/s", $4
                    if (NF >= 6 && $5 != "n/a") printf fmt, "append", $1, $2 "/s", "Message DB " $5 "/s", $6
                    if (NF >= 8 && $7 != "n/a") printf fmt, "append", $1, $2 "/s", "Emmett " $7 "/s", $8
                }' "$file"
            ;;
        commands)
            awk -v fmt='%-10s %-40s %18s  %-30s %7s\n' '
                $1 ~ /^(16|64)$/ && NF >= 7 {
                    printf fmt, "commands", "REST, " $1 " connections", $2 "/s", "append, 16 writers " $6 "/s", $7
                    printf fmt, "commands", "REST, " $1 " connections, p50 / p99", $3 " / " $4, "goal p99 <= 50 ms", "-"
                }' "$file"
            ;;
        freshness)
            awk -v fmt='%-10s %-40s %18s  %-30s %7s\n' '
                $1 == "idle" || $1 == "half-load" {
                    printf fmt, "freshness", "answered -> visible p50 / p99, " $1, $3 " / " $4 " ms", "goal <= 5 / <= 25 ms", "-"
                }' "$file"
            ;;
        sagas)
            awk -v fmt='%-10s %-40s %18s  %-30s %7s\n' '
                ($1 == "orchestration" || $1 == "choreography") && NF == 12 && $2 == 1 {
                    goal = $1 == "orchestration" ? 500 : 300
                    printf fmt, "sagas", "completed sagas/s, " $1, $7, "goal >= " goal, sprintf("%.2f", $7 / goal)
                    printf fmt, "sagas", "paced p50 / p99, " $1, $10 " / " $11 " ms", "goal <= 30 / <= 100 ms", "-"
                }
                /^2 shards (on one cluster )?\/ 1 shard, / {
                    # "<layout> / 1 shard, <measure>, <mode>: <a / b, or the rounds> = <ratio>"
                    mode = $0
                    sub(/:.*/, "", mode)
                    sub(/.*, /, "", mode)
                    measure = $0 ~ /visible orders/ ? "visible/s" : "sagas/s"
                    what = $0
                    sub(/^[^:]*: /, "", what)
                    sub(/ = [^=]*$/, "", what)
                    layout = $0 ~ /on one cluster/ ? "2 shards on 1 cluster" : "2 shards"
                    printf fmt, "sagas", measure ", " layout " / 1, " mode, what, "goal >= 0.9", $NF
                }' "$file"
            ;;
        relay)
            awk -F'  +' -v fmt='%-10s %-40s %18s  %-30s %7s\n' '
                /^raw JetStream/ { raw[++n] = $2 }
                /^ordo relay/ { ordo = $2; ratio = $3 }
                END { if (n == 2) printf fmt, "relay", "store -> JetStream, from a backlog", ordo "/s", sprintf("raw JetStream publish %.0f/s", (raw[1] + raw[2]) / 2), ratio }
                ' "$file"
            ;;
        rebuild)
            awk -F'  +' -v fmt='%-10s %-40s %18s  %-30s %7s\n' '
                /^raw COPY/ { copy = $4 }
                /^(ordo rebuild|raw multi-row)/ { printf fmt, "rebuild", $1, $4 " rows/s", "raw COPY " copy " rows/s", $5 }
                ' "$file"
            ;;
        idle)
            awk -v fmt='%-10s %-40s %18s  %-30s %7s\n' '
                / partitions \/ / {
                    base = $4
                    sub(":", "", base)
                    ratio = $10
                    sub(";", "", ratio)
                    if ($1 != base) printf fmt, "idle", "idle transactions/s, " $1 " partitions", $6, base " partitions: " $8, ratio
                }' "$file"
            ;;
    esac
done
echo "each benchmark's whole output: $out"
if ((${#failed[@]})); then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
