#!/usr/bin/env bash
# What an idle stack costs at each partition count: a relay, a projector and a saga runner
# over an empty store of their own, each count in turn (ORDO_BENCH_PARTITIONS, default
# "16 64", each run ORDO_BENCH_ROUNDS times, default 2), measured for ORDO_BENCH_SECONDS (10)
# after they settle: the database's committed transactions per second and the services' CPU
# (user + system, from /proc) as a share of one core. Prints each run and the ratio of every
# count to the first one, measured in the same run.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
counts=${ORDO_BENCH_PARTITIONS:-16 64}
rounds=${ORDO_BENCH_ROUNDS:-2}
seconds=${ORDO_BENCH_SECONDS:-10}
for p in $counts; do
    [[ $p =~ ^[1-9][0-9]{0,3}$ && $p -le 1024 ]] ||
        { echo "ORDO_BENCH_PARTITIONS: counts from 1 to 1024, not $p" >&2; exit 2; }
done
[[ $rounds =~ ^[1-9]$ ]] || { echo "ORDO_BENCH_ROUNDS must be 1 to 9" >&2; exit 2; }
[[ $seconds =~ ^[1-9][0-9]{0,2}$ ]] || { echo "ORDO_BENCH_SECONDS must be 1 to 999" >&2; exit 2; }

start_stack
services=()
databases=()
cleanup() {
    for pid in "${services[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${services[@]}"; do wait "$pid" 2>/dev/null || true; done
    for d in "${databases[@]}"; do admin_psql "DROP DATABASE IF EXISTS $d WITH (FORCE)" || true; done
}
trap cleanup EXIT
ticks=$(getconf CLK_TCK)
cpu_ticks() {  # the user and system CPU ticks of the services so far
    local sum=0 pid
    for pid in "${services[@]}"; do sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$pid/stat"))); done
    echo "$sum"
}
commits() { admin_psql "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'"; }

declare -A tps cpu
echo "an idle relay, projector and saga runner over an empty store, ${seconds} s per run;" \
    "load average $(cut -d' ' -f1,2 /proc/loadavg)"
printf '%-10s %6s %16s %14s\n' partitions run "transactions/s" "CPU % of core"
for ((round = 1; round <= rounds; round++)); do
    for p in $counts; do
        db="ordo_bench_idle_${p}_$$_$round"
        databases+=("$db")
        admin_psql "CREATE DATABASE $db OWNER ordo_migrator" >/dev/null
        "$build/ordo" migrate --database-url "$(db_url "$ORDO_MIGRATOR_URL")" 2>/dev/null
        ports=()
        for service in relay projector sagas; do
            url_name="ORDO_${service^^}_DATABASE_URL"
            port=$(free_port)
            env "ORDO_${service^^}_DATABASE_URL=$(db_url "${!url_name}")" \
                "ORDO_${service^^}_NATS_URL=$ORDO_NATS_ADMIN_URL" \
                ORDO_NATS_STREAM="BENCH_IDLE_${p}_$$_$round" \
                ORDO_NATS_SUBJECT_PREFIX="benchidle${p}x$$x$round.events" ORDO_NATS_MAX_AGE=1 \
                ORDO_PARTITIONS="$p" ORDO_LOG_LEVEL=error \
                "$build/ordo" serve "$service" --address "127.0.0.1:$port" &
            services+=($!)
            ports+=("$port")
        done
        for port in "${ports[@]}"; do wait_ready "$port"; done
        # Settled: every slot leased and swept once.
        sleep 3
        c0=$(commits) t0=$(cpu_ticks)
        sleep "$seconds"
        c1=$(commits) t1=$(cpu_ticks)
        tps[$p]+=" $(((c1 - c0) / seconds))"
        cpu[$p]+=" $(awk -v t=$((t1 - t0)) -v hz="$ticks" -v s="$seconds" 'BEGIN { printf "%.1f", 100 * t / hz / s }')"
        printf '%-10s %6s %16s %14s\n' "$p" "$round" "$(((c1 - c0) / seconds))" "${cpu[$p]##* }"
        for pid in "${services[@]}"; do kill "$pid" 2>/dev/null || true; done
        for pid in "${services[@]}"; do wait "$pid" 2>/dev/null || true; done
        services=()
        admin_psql "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    done
done
mean() { awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.1f", NF ? s / NF : 0 }' <<<"$1"; }
first=${counts%% *}
echo
for p in $counts; do
    echo "$p partitions / $first: transactions/s $(mean "${tps[$p]}") / $(mean "${tps[$first]}") = $(awk \
        -v a="$(mean "${tps[$p]}")" -v b="$(mean "${tps[$first]}")" 'BEGIN { printf "%.2f", b ? a / b : 0 }');" \
        "CPU $(mean "${cpu[$p]}")% / $(mean "${cpu[$first]}")% = $(awk -v a="$(mean "${cpu[$p]}")" \
        -v b="$(mean "${cpu[$first]}")" 'BEGIN { printf "%.2f", b ? a / b : 0 }')"
done
