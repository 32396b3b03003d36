#!/usr/bin/env bash
# Order fulfillment end to end, in each saga mode: POSTs ORDO_BENCH_ORDERS orders (default
# 300) through the command API with wrk at ORDO_BENCH_CONNECTIONS (16), then prints
# completed sagas per second and p50/p99 from OrderPlaced to OrderConfirmed, read from the
# events' recorded_at in the store, and orders visible per second (until the orders read model
# shows the last one settled). Each mode runs in a database and JetStream stream of its
# own, with `ordo serve command`, `relay`, `projector` and `sagas` as separate processes.
# Then ORDO_BENCH_PACED_ORDERS (100) at ORDO_BENCH_PACED_RATE (10) orders/s, for the latency
# of a saga that does not queue. ORDO_BENCH_MODES (orchestration choreography),
# ORDO_BENCH_TIMEOUT (300 s for each phase). A burst that queues longer than the saga's
# fulfillment deadline (30 s) ends in cancellations; the table counts them. Then, per mode,
# what one order of the burst cost (committed transactions in the database, from
# pg_stat_database, and events appended, per order placed) and the hop breakdown of the
# burst and of the paced phase from the services' /metrics (ordo_hop_seconds,
# docs/performance.md). On a stack of two PostgreSQL clusters (ORDO_PG_SHARDS=2) every mode
# runs on one store and on a store sharded over both clusters (a relay per shard), and the
# table gives the ratio; and on two databases of the first cluster ("2@1"): the routing's
# own cost, without a second cluster's WAL, buffers and processes on the same cores.
# ORDO_BENCH_SHARDS ("1 2 2@1" there, else "1 2@1") chooses. ORDO_BENCH_ROUNDS (1)
# runs every mode and layout that many times, in turn, and prints each round's ratios and
# their median: two runs of one build scatter by tens of percent on a small machine.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
orders=${ORDO_BENCH_ORDERS:-300}
connections=${ORDO_BENCH_CONNECTIONS:-16}
modes=${ORDO_BENCH_MODES:-orchestration choreography}
timeout=${ORDO_BENCH_TIMEOUT:-300}
paced_orders=${ORDO_BENCH_PACED_ORDERS:-100}
paced_rate=${ORDO_BENCH_PACED_RATE:-10}
rounds=${ORDO_BENCH_ROUNDS:-1}
skus=100
accounts=50
number() {  # number <name> <value> <low> <high>
    if ! [[ $2 =~ ^[1-9][0-9]{0,5}$ ]] || (($2 < $3 || $2 > $4)); then
        echo "$1 must be a number from $3 to $4" >&2
        exit 2
    fi
}
number ORDO_BENCH_ORDERS "$orders" 2 100000
number ORDO_BENCH_CONNECTIONS "$connections" 2 256
number ORDO_BENCH_TIMEOUT "$timeout" 10 3600
number ORDO_BENCH_PACED_ORDERS "$paced_orders" 2 10000
number ORDO_BENCH_PACED_RATE "$paced_rate" 1 1000
number ORDO_BENCH_ROUNDS "$rounds" 1 20
for mode in $modes; do
    [[ $mode == orchestration || $mode == choreography ]] ||
        { echo "ORDO_BENCH_MODES: orchestration and/or choreography, not $mode" >&2; exit 2; }
done

start_stack
# host:port of the stack's second PostgreSQL cluster, when it runs one.
second_hosts=$(tr ',' '\n' <<<"${ORDO_PG_SHARD_LOCATIONS:-}" | sed -n 's#^1=\([^/]*\)/.*#\1#p')
shard_counts=${ORDO_BENCH_SHARDS:-$([[ -n $second_hosts ]] && echo "1 2 2@1" || echo "1 2@1")}
for shards in $shard_counts; do
    [[ $shards == 1 || $shards == 2@1 || ($shards == 2 && -n $second_hosts) ]] || {
        echo "ORDO_BENCH_SHARDS: 1, 2@1, and 2 on a stack of two clusters (ORDO_PG_SHARDS=2)," \
            "not $shards" >&2
        exit 2
    }
done
first_hosts=$(sed -E 's#^[^@]+@([^/]+)/.*#\1#' <<<"$(no_password "$ORDO_PG_ADMIN_URL")")
# The second shard's cluster in this run: the second cluster, or for 2@1 the first.
shard1_hosts=$second_hosts
# A stack URL moved to the second shard's cluster.
on_second() { sed -E "s#@[^/]+/#@$shard1_hosts/#" <<<"$1"; }
second_psql() { psql "$(on_second "$(no_password "$ORDO_PG_ADMIN_URL")")" -qAtc "$1"; }

services=()
databases=()
second_databases=()
scratch=$(mktemp -d)
stop_services() {
    for pid in "${services[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${services[@]}"; do wait "$pid" 2>/dev/null || true; done
    services=()
}
cleanup() {
    stop_services
    for d in "${databases[@]}"; do admin_psql "DROP DATABASE IF EXISTS $d WITH (FORCE)" || true; done
    for entry in "${second_databases[@]}"; do
        shard1_hosts=${entry%% *} second_psql "DROP DATABASE IF EXISTS ${entry#* } WITH (FORCE)" ||
            true
    done
    rm -rf "$scratch"
}
trap cleanup EXIT


# shard_urls: the benchmark's database on each shard, as the sagas role (it may read events).
# over_shards <sql>: the rows of <sql> on every shard, one after another.
over_shards() {
    for url in "${shard_urls[@]}"; do psql "$url" -qAt -F ' ' -c "$1"; done
}
# "placed finished": the orders placed so far, and those confirmed or cancelled.
count_orders() {
    over_shards "SELECT count(*) FILTER (WHERE event_type = 'OrderPlaced'),
        count(*) FILTER (WHERE event_type IN ('OrderConfirmed', 'OrderCancelled'))
        FROM ordo.events WHERE category = 'order'" |
        awk '{ p += $1; f += $2 } END { print p + 0, f + 0 }'
}

# final_orders: the orders the read model (read.orders, in the read database) shows
# confirmed or cancelled.
final_orders() {
    psql "$(db_url "$ORDO_MIGRATOR_URL")" -qAt -c \
        "SELECT count(*) FROM read.orders WHERE status IN ('confirmed', 'cancelled')"
}

# post_orders <count> <connections> <delay ms per connection>: places the orders, then waits
# until each has been confirmed or cancelled, and then until the read model shows it so;
# `visible_rate` is then the orders placed over the seconds from the first post to the last
# shown: what a customer sees, with the projector's work in it (the completed sagas/s count
# only the saga's own events, so a projector that falls behind during a burst lifts them).
# wrk runs for its whole duration even when its threads stop after their share, so it is
# interrupted once the orders are in.
post_orders() {
    local before placed finished shown_before started deadline=$((SECONDS + timeout))
    read -r before finished < <(count_orders)
    shown_before=$(final_orders)
    started=$(date +%s.%N)
    ORDO_BENCH_SKUS=$skus ORDO_BENCH_ACCOUNTS=$accounts ORDO_BENCH_ORDERS_PER_THREAD=$(($1 / 2)) \
        ORDO_BENCH_DELAY_MS=$3 wrk -t2 -c"$2" -d"${timeout}s" -s "$root/bench/sagas/orders.lua" \
        "http://127.0.0.1:$command_port" >/dev/null &
    local wrk_pid=$!
    while kill -0 "$wrk_pid" 2>/dev/null; do
        read -r placed finished < <(count_orders)
        ((placed - before >= $1 || SECONDS >= deadline)) && break
        sleep 0.2
    done
    kill -INT "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" 2>/dev/null || true
    while :; do
        read -r placed finished < <(count_orders)
        ((finished >= placed || SECONDS >= deadline)) && break
        sleep 0.5
    done
    while (($(final_orders) - shown_before < placed - before && SECONDS < deadline)); do
        sleep 0.1
    done
    visible_rate=$(awk -v n=$((placed - before)) -v a="$started" -v b="$(date +%s.%N)" \
        'BEGIN { printf "%.1f", (b > a ? n / (b - a) : 0) }')
}

# figures <time>: for the orders placed after it (the database's clock, which every shard on
# this machine shares), "placed|confirmed|cancelled|completed sagas/s|placed/s|p50 ms|p99 ms"
# (placed to confirmed). The order events of every shard are gathered first, in a temporary
# table of the migrator's (the services' roles may not create one).
figures() {
    {
        echo "CREATE TEMPORARY TABLE order_events (stream_id text, event_type text,"
        echo "    recorded_at timestamptz);"
        echo "COPY order_events FROM STDIN;"
        for url in "${shard_urls[@]}"; do
            psql "$url" -qAt -c "COPY (SELECT stream_id, event_type, recorded_at FROM ordo.events
                WHERE category = 'order' AND event_type IN ('OrderPlaced', 'OrderConfirmed',
                'OrderCancelled')) TO STDOUT"
        done
        echo '\.'
        cat <<SQL
WITH placed AS (
    SELECT stream_id, recorded_at FROM order_events
    WHERE event_type = 'OrderPlaced' AND recorded_at > '$1'),
finished AS (
    SELECT stream_id, event_type, recorded_at FROM order_events
    WHERE event_type IN ('OrderConfirmed', 'OrderCancelled')),
timed AS (
    SELECT f.event_type, extract(epoch FROM f.recorded_at - p.recorded_at) * 1000 AS ms,
           p.recorded_at AS placed_at, f.recorded_at AS finished_at
    FROM placed p JOIN finished f USING (stream_id))
SELECT (SELECT count(*) FROM placed),
       count(*) FILTER (WHERE event_type = 'OrderConfirmed'),
       count(*) FILTER (WHERE event_type = 'OrderCancelled'),
       round((count(*) / nullif(extract(epoch FROM max(finished_at) - min(placed_at)), 0))::numeric, 1),
       round((SELECT count(*) / nullif(extract(epoch FROM max(recorded_at) - min(recorded_at)), 0)
              FROM placed)::numeric, 1),
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)
              FILTER (WHERE event_type = 'OrderConfirmed'))::numeric, 1),
       round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)
              FILTER (WHERE event_type = 'OrderConfirmed'))::numeric, 1)
FROM timed;
SQL
    } | psql "$(db_url "$ORDO_MIGRATOR_URL")" -qAt -F '|' -v ON_ERROR_STOP=1
}
# now: the database's clock, for figures.
now() { psql "${shard_urls[0]}" -qAt -c "SELECT now()"; }

scrape() {  # scrape <file>: every service's /metrics, one after another
    for port in "${ports[@]}"; do curl -fsS "http://127.0.0.1:$port/metrics"; done >"$1"
}
# committed: the committed transactions so far of the benchmark's database on every shard.
# The statistics reach the view up to a second late, so it waits that out first.
committed() {
    sleep 1.5
    local n
    n=$(admin_psql "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'")
    if [[ -n $db2 ]]; then
        n=$((n + $(second_psql "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db2'")))
    fi
    echo "$n"
}
cmake --build "$build" --target ordo_bench_hops >/dev/null

results=()
costs=()
hop_tables=()
for ((round = 1; round <= rounds; round++)); do
for shards in $shard_counts; do
for mode in $modes; do
    run="$mode $shards"
    layout=${shards/@/on}
    db="ordo_bench_sagas_${mode}_${layout}_${round}_$$"
    databases+=("$db")
    admin_psql "CREATE DATABASE $db OWNER ordo_migrator" >/dev/null
    "$build/ordo" migrate --database-url "$(db_url "$ORDO_MIGRATOR_URL")" 2>/dev/null
    # The figures read events and the saga schedule, as the sagas role may.
    shard_urls=("$(db_url "$ORDO_SAGAS_DATABASE_URL")")
    relays=("")
    db2=
    if [[ $shards != 1 ]]; then
        # The spread map over this database and one on the second cluster (2@1: on this
        # one); `shards init` migrates that one.
        db2="${db}_1"
        shard1_hosts=$([[ $shards == 2@1 ]] && echo "$first_hosts" || echo "$second_hosts")
        second_databases+=("$shard1_hosts $db2")
        second_psql "CREATE DATABASE $db2 OWNER ordo_migrator" >/dev/null
        "$build/ordo" shards --database-url "$(db_url "$ORDO_MIGRATOR_URL")" init \
            --shard "0=$first_hosts/$db" --shard "1=$shard1_hosts/$db2" >/dev/null 2>&1
        shard_urls+=("$(on_second "$(db=$db2 db_url "$ORDO_SAGAS_DATABASE_URL")")")
        relays=("--shard 0" "--shard 1")
    fi
    # A JetStream stream per run; the relay's retention (an hour) empties it afterwards. The
    # services' own NATS users may use only the default stream, so every service is the
    # stack's NATS administrator here.
    suffix="${mode:0:5}${layout}_${round}_$$"
    # Each service on its own role, as in a deployment.
    common=(env ORDO_COMMAND_DATABASE_URL="$(db_url "$ORDO_COMMAND_DATABASE_URL")"
        ORDO_RELAY_DATABASE_URL="$(db_url "$ORDO_RELAY_DATABASE_URL")"
        ORDO_PROJECTOR_DATABASE_URL="$(db_url "$ORDO_PROJECTOR_DATABASE_URL")"
        ORDO_SAGAS_DATABASE_URL="$(db_url "$ORDO_SAGAS_DATABASE_URL")"
        ORDO_COMMAND_NATS_URL="$ORDO_NATS_ADMIN_URL" ORDO_RELAY_NATS_URL="$ORDO_NATS_ADMIN_URL"
        ORDO_PROJECTOR_NATS_URL="$ORDO_NATS_ADMIN_URL" ORDO_SAGAS_NATS_URL="$ORDO_NATS_ADMIN_URL"
        ORDO_NATS_STREAM="BENCH_SAGAS_${suffix^^}" ORDO_NATS_SUBJECT_PREFIX="benchsagas${suffix}.events"
        ORDO_NATS_MAX_AGE=1 ORDO_SAGA_MODE="$mode" ORDO_LOG_LEVEL=warn)
    command_port=$(free_port)
    "${common[@]}" "$build/ordo" serve command --insecure-no-auth --address "127.0.0.1:$command_port" &
    services+=($!)
    ports=("$command_port")
    for relay in "${relays[@]}"; do
        port=$(free_port)
        # shellcheck disable=SC2086  # $relay: none, or "--shard N"
        "${common[@]}" "$build/ordo" serve relay $relay --address "127.0.0.1:$port" &
        services+=($!)
        ports+=("$port")
    done
    for service in projector sagas; do
        port=$(free_port)
        "${common[@]}" "$build/ordo" serve "$service" --address "127.0.0.1:$port" &
        services+=($!)
        ports+=("$port")
    done
    for port in "${ports[@]}"; do wait_ready "$port"; done

    api="http://127.0.0.1:$command_port/v1"
    seq 1 "$skus" | xargs -P 8 -I{} curl -fsS -o /dev/null -H 'Content-Type: application/json' \
        -d '{"quantity": 1000000}' "$api/inventory/sku-{}/receipts"
    seq 1 "$accounts" | xargs -P 8 -I{} curl -fsS -o /dev/null -H 'Content-Type: application/json' \
        -d '{"amount": 1000000000000}' "$api/accounts/acct-{}/deposits"

    # Burst: every order at once, so the saga runner's capacity shows. Paced: a few orders a
    # second, well below it, so the latency is the saga's own and not a queue's.
    start=$(now)
    start_commits=$(committed)
    scrape "$scratch/before"
    post_orders "$orders" "$connections" 0
    burst=$(figures "$start")
    burst_visible=$visible_rate
    # The burst's orders are settled, but its reactors may still commit and capture: wait
    # until every saga process has ended, so the paced orders find an idle stack.
    for ((i = 0; i < timeout * 2; i++)); do
        [[ $(psql "${shard_urls[0]}" -qAt -c "SELECT count(*) FROM ordo.saga_schedule") == 0 ]] &&
            break
        sleep 0.5
    done
    scrape "$scratch/burst"
    end_commits=$(committed)
    # Every event the burst appended, over the orders it placed.
    costs+=("$run $(over_shards "SELECT count(*) FILTER (WHERE event_type = 'OrderPlaced'),
        count(*) FROM ordo.events WHERE recorded_at > '$start'" |
        awk '{ p += $1; e += $2 } END { print p + 0, e + 0 }') $((end_commits - start_commits))")
    # The hop breakdown of the last round only.
    ((round < rounds)) ||
        hop_tables+=("$mode, $shards shard(s), burst:" "$("$build/bench/hops" "$scratch/before" "$scratch/burst")")
    after=$(now)
    post_orders "$paced_orders" 4 $((4000 / paced_rate))
    paced=$(figures "$after")
    scrape "$scratch/paced"
    ((round < rounds)) ||
        hop_tables+=("$mode, $shards shard(s), paced:" "$("$build/bench/hops" "$scratch/burst" "$scratch/paced")")
    results+=("$round|$mode|$shards|$burst|$(cut -d'|' -f6,7 <<<"$paced")|$burst_visible")
    stop_services
done
done
done

echo "saga benchmark: a burst of $orders orders (wrk, $connections connections), then" \
    "$paced_orders orders paced at $paced_rate/s; 1 to 3 lines over $skus skus, $accounts accounts;" \
    "load average $(cut -d' ' -f1,2 /proc/loadavg)"
printf '%-14s %6s %7s %9s %9s %9s %17s %11s %11s %11s %11s %9s\n' mode shards placed confirmed \
    cancelled placed/s "completed sagas/s" "burst p50" "burst p99" "paced p50" "paced p99" visible/s
declare -A rates visible
# shellcheck disable=SC2034  # both are read through ratios()'s nameref
for row in "${results[@]}"; do
    IFS='|' read -r round mode shards placed confirmed cancelled rate placed_rate p50 p99 \
        paced_p50 paced_p99 shown_rate <<<"$row"
    rates["$round $mode $shards"]=$rate
    visible["$round $mode $shards"]=$shown_rate
    printf '%-14s %6s %7s %9s %9s %9s %17s %11s %11s %11s %11s %9s\n' "$mode" "$shards" "$placed" \
        "$confirmed" "$cancelled" "${placed_rate:--}" "${rate:--}" "${p50:--}" "${p99:--}" \
        "${paced_p50:--}" "${paced_p99:--}" "${shown_rate:--}"
done
# ratios <measure> <table>: per mode and sharded layout, each round's ratio of the measure
# (from the associative array named <table>) to the same round's one store, then the median
# (the lines bench/all.sh reads).
ratios() {
    local -n table=$2
    local mode layout round one two median name ratios
    for mode in $modes; do
        for layout in 2 2@1; do
            ratios=()
            for ((round = 1; round <= rounds; round++)); do
                one=${table["$round $mode 1"]:-} two=${table["$round $mode $layout"]:-}
                [[ -n $one && -n $two ]] || continue
                ratios+=("$(awk -v a="$two" -v b="$one" 'BEGIN { printf "%.2f", b ? a / b : 0 }')")
                ((rounds == 1)) ||
                    echo "round $round, $layout shards / 1 shard, $1, $mode: $two / $one = ${ratios[-1]}"
            done
            ((${#ratios[@]})) || continue
            median=$(printf '%s\n' "${ratios[@]}" | sort -n |
                awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
            name=$([[ $layout == 2 ]] && echo "2 shards" || echo "2 shards on one cluster")
            if ((rounds == 1)); then
                echo "$name / 1 shard, $1, $mode: $two / $one = $median"
            else
                echo "$name / 1 shard, $1, $mode: median of $rounds rounds (${ratios[*]}) = $median"
            fi
        done
    done
}
ratios "completed sagas/s" rates
ratios "visible orders/s" visible
echo "p50/p99 in ms from OrderPlaced to OrderConfirmed, by the events' recorded_at" \
    "(transaction start); placed, confirmed and cancelled count the burst; visible/s: the" \
    "burst's orders over the seconds from its first post until the orders read model showed" \
    "the last one confirmed or cancelled"

echo
echo "cost of one order in the burst (until every saga process ended):"
printf '%-14s %6s %7s %9s %16s %14s %16s\n' mode shards orders events "events/order" \
    transactions "transactions/order"
for row in "${costs[@]}"; do
    read -r mode shards placed events commits <<<"$row"
    printf '%-14s %6s %7s %9s %16s %14s %16s\n' "$mode" "$shards" "$placed" "$events" \
        "$(awk -v a="$events" -v b="$placed" 'BEGIN {printf "%.1f", b ? a / b : 0}')" "$commits" \
        "$(awk -v a="$commits" -v b="$placed" 'BEGIN {printf "%.1f", b ? a / b : 0}')"
done
echo "transactions: pg_stat_database.xact_commit of the benchmark's database (on every shard)," \
    "every service's committed transactions (read-only ones and idle polls included)"
for ((i = 0; i < ${#hop_tables[@]}; i += 2)); do
    echo
    echo "hops, ${hop_tables[$i]}"
    echo "${hop_tables[$((i + 1))]}"
done
