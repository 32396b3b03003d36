#!/usr/bin/env bash
# `ordo dev --shards 2` end to end: two PostgreSQL clusters and a relay for each, the map
# written once, the README's order flow with its streams spread over both shards (and the
# events API giving both shards' events), tokens that name their shard, `ordo shards list`,
# one shard's cluster killed and restarted (its streams' commands refused meanwhile, the
# other's going on), a partition moved between the shards under the running services, every
# partition then moved off shard 1 and the stack started again, a third shard added and given
# a partition (its relay started by `ordo dev`), and one SIGTERM stopping everything.
#
#   tests/shards/dev_test.sh <ordo binary>
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ordo=$1
# shellcheck source=tests/support/dev_test_lib.sh
source "$root/tests/support/dev_test_lib.sh"

dir=${ORDO_TEST_DEV_SHARDS_DIR:-$root/.ordo/test-dev-shards}
base=${ORDO_TEST_DEV_SHARDS_BASE_PORT:-26300}
clear_stack_settings
export ORDO_PG_PORT=$((base + 32)) ORDO_NATS_PORT=$((base + 22)) ORDO_NATS_MONITOR_PORT=$((base + 82))
export ORDO_COMMAND_ADDR=127.0.0.1:$((base + 80)) ORDO_QUERY_ADDR=127.0.0.1:$((base + 81))
export ORDO_RELAY_ADDR=127.0.0.1:$((base + 90)) ORDO_PROJECTOR_ADDR=127.0.0.1:$((base + 91))
export ORDO_SAGAS_ADDR=127.0.0.1:$((base + 92))
command_api=http://$ORDO_COMMAND_ADDR
query_api=http://$ORDO_QUERY_ADDR
log=$(mktemp)

"$ordo" dev --shards 2 --fresh --data-dir "$dir" >"$log" 2>&1 &
dev=$!
cleanup() {
    kill -TERM "$dev" 2>/dev/null || true
    wait "$dev" 2>/dev/null || true
    ORDO_STACK_DIR=$dir "$root/deploy/stack.sh" stop >/dev/null 2>&1 || true
    rm -f "$log"
}
trap cleanup EXIT

ready() { curl -sf -o /dev/null --max-time 2 "$1/readyz"; }
until_true 180 "the Command API ready" ready "$command_api"
until_true 60 "the Query API ready" ready "$query_api"
grep -q '"message":"shard map written"' "$log" || fail "no shard map written"

post() {  # post <path> <json> [key]: prints the answer body; fails on a status other than 2xx
    curl -sf --max-time 10 -X POST "$command_api$1" -H 'Content-Type: application/json' \
        -H "Idempotency-Key: ${3:-dev-shards-$1}" -d "$2"
}
position() { sed -E 's/.*"position":"([^"]*)".*/\1/'; }

# sku-1's stream is on shard 1, acct-1's on shard 0, o-1's on shard 1 (partition mod 2).
receipt=$(post /v1/inventory/sku-1/receipts '{"quantity": 5}') || fail "a receipt"
[[ $(position <<<"$receipt") == 1:* ]] || fail "sku-1's token names no shard 1: $receipt"
deposit=$(post /v1/accounts/acct-1/deposits '{"amount": 1000}') || fail "a deposit"
[[ $(position <<<"$deposit") == 0:* ]] || fail "acct-1's token names no shard 0: $deposit"
token=$(position <<<"$receipt")
stock=$(curl -sf --max-time 10 "$query_api/v1/inventory/sku-1?wait_ms=10000" \
    -H "X-Consistency-Token: $token") || fail "a read with shard 1's token"
grep -q '"on_hand":5' <<<"$stock" || fail "the receipt not visible with its token: $stock"
order=$(post /v1/orders '{"order_id": "o-1", "customer_id": "c-1", "account_id": "acct-1",
    "lines": [{"sku": "sku-1", "quantity": 2, "unit_price": 100}]}') || fail "an order"
# A list read with shard 1's token waits on shard 1's partitions, whose xids are not shard 0's.
listed=$(curl -sf --max-time 10 "$query_api/v1/orders?customer_id=c-1&wait_ms=10000" \
    -H "X-Consistency-Token: $(position <<<"$order")") || fail "a list read with shard 1's token"
grep -q '"order_id":"o-1"' <<<"$listed" || fail "the order not in the list with its token: $listed"
confirmed() { curl -sf --max-time 5 "$query_api/v1/orders/o-1" | grep -q '"status":"confirmed"'; }
until_true 60 "the order confirmed" confirmed
available() { curl -sf --max-time 5 "$query_api/v1/inventory/sku-1" | grep -q '"available":3'; }
until_true 30 "the stock reserved" available
# The events API reads both shards: a page's position names each.
events=$(curl -sf --max-time 10 "$query_api/v1/events?limit=1000") || fail "GET /v1/events"
grep -q '"next_after":"0:[0-9]*\.[0-9]*,1:[0-9]*\.[0-9]*"' <<<"$events" ||
    fail "the events API's position does not name both shards: ${events: -200}"
for stream in inventory-sku-1 account-acct-1; do
    grep -q "\"stream\":\"$stream\"" <<<"$events" || fail "the events API lacks $stream: ${events: -400}"
done

set -a
# shellcheck disable=SC1091
source "$dir/stack.env"
set +a
listed=$("$ordo" shards list --json) || fail "ordo shards list: $listed"
leaders=$(grep -o '"relay_leader":"[^"]*"' <<<"$listed" | wc -l)
[[ $leaders == 2 ]] || fail "not a relay leader per shard: $listed"

# Shard 1's cluster killed: its streams' commands are refused (503, Retry-After), shard 0's
# go on; back, the refused one goes through once.
ORDO_STACK_DIR=$dir "$root/deploy/stack.sh" pg-kill 1
status() {  # status <path> <json> <key>: the HTTP status
    curl -s -o /dev/null -w '%{http_code}' --max-time 15 -X POST "$command_api$1" \
        -H 'Content-Type: application/json' -H "Idempotency-Key: $3" -d "$2"
}
[[ $(status /v1/inventory/sku-1/receipts '{"quantity": 1}' down-1) == 503 ]] \
    || fail "a command on the killed shard was not refused"
[[ $(status /v1/accounts/acct-1/deposits '{"amount": 1}' down-0) == 200 ]] \
    || fail "a command on the live shard did not go through"
ORDO_STACK_DIR=$dir "$root/deploy/stack.sh" pg-start 1
again() { [[ $(status /v1/inventory/sku-1/receipts '{"quantity": 1}' down-1) == 200 ]]; }
until_true 60 "the refused command through once its shard is back" again
on_hand() { curl -sf --max-time 5 "$query_api/v1/inventory/sku-1" | grep -q '"on_hand":4'; }
until_true 60 "the stock with the late receipt once" on_hand

# sku-1's partition moved to shard 0 while everything runs: the services started with the old
# map follow it, its next receipt lands on shard 0, and the read with that token sees it.
partition=$(psql "$ORDO_MIGRATOR_URL" -Atc \
    "SELECT ordo.stream_hash('inventory-sku-1') % ordo.recorded_partition_count()") \
    || fail "the partition of sku-1"
moved=$("$ordo" shards move --partition "$partition" --to 0 2>&1) || fail "ordo shards move: $moved"
receipt=$(post /v1/inventory/sku-1/receipts '{"quantity": 1}' after-move) || fail "a receipt after the move"
[[ $(position <<<"$receipt") == 0:* ]] || fail "sku-1's token after its move names no shard 0: $receipt"
stock=$(curl -sf --max-time 15 "$query_api/v1/inventory/sku-1?wait_ms=10000" \
    -H "X-Consistency-Token: $(position <<<"$receipt")") || fail "a read after the move"
grep -q '"on_hand":5' <<<"$stock" || fail "the receipt after the move not visible once: $stock"

# Every other partition of shard 1 moved to shard 0 too: shard 1 is empty and leaves the map.
# `ordo dev --shards 2` started again knows the store (shard 1 registered, every partition
# fenced there), runs no relay for shard 1, and serves everything from shard 0.
owned=$(psql "$ORDO_MIGRATOR_URL" -Atc "SELECT p - 1 FROM ordo.shard_map m,
    generate_subscripts(m.owners, 1) p WHERE m.version = (SELECT max(version) FROM
    ordo.shard_map) AND m.owners[p] = 1") || fail "the partitions of shard 1"
for p in $owned; do
    moved=$("$ordo" shards move --partition "$p" --to 0 2>&1) || fail "ordo shards move $p: $moved"
done
kill -TERM "$dev"
wait "$dev" || fail "ordo dev --shards exited with $?"
"$ordo" dev --shards 2 --data-dir "$dir" >"$log" 2>&1 &
dev=$!
until_true 180 "the Command API ready again with shard 1 emptied" ready "$command_api"
until_true 60 "the Query API ready again with shard 1 emptied" ready "$query_api"
grep -q '"message":"the shard map is written already"' "$log" || fail "the map not known again"
# The list shows shard 1 still (registered, owning nothing); only shard 0 has partitions, and
# a relay leader that reports.
listed=$("$ordo" shards list --json) || fail "ordo shards list: $listed"
python3 -c '
import json, sys
shards = {s["id"]: s for s in json.load(sys.stdin)["shards"]}
assert sorted(shards) == [0, 1], shards
assert shards[1]["partitions"] == [], shards[1]
assert shards[0]["relay_leader"] and shards[0]["relay_seen_seconds_ago"] < 30, shards[0]
' <<<"$listed" || fail "not shard 0 alone with partitions and a relay leader: $listed"
fenced=$(psql "$(sed -E "s#:$ORDO_PG_PORT/#:$((ORDO_PG_PORT + 1))/#" <<<"$ORDO_MIGRATOR_URL")" -Atc \
    "SELECT count(*) FROM ordo.partition_fences") || fail "the fences of shard 1"
[[ $fenced == "$(psql "$ORDO_MIGRATOR_URL" -Atc "SELECT ordo.recorded_partition_count()")" ]] ||
    fail "shard 1 does not fence every partition: $fenced"
# received <key> <shard> <on hand> <when>: a receipt of 2 for sku-2 lands on <shard>, and the
# read with its token shows <on hand>.
received() {
    local receipt stock
    receipt=$(post /v1/inventory/sku-2/receipts '{"quantity": 2}' "$1") || fail "a receipt $4"
    [[ $(position <<<"$receipt") == "$2":* ]] || fail "a token $4 names no shard $2: $receipt"
    stock=$(curl -sf --max-time 15 "$query_api/v1/inventory/sku-2?wait_ms=10000" \
        -H "X-Consistency-Token: $(position <<<"$receipt")") || fail "a read $4"
    grep -q "\"on_hand\":$3" <<<"$stock" || fail "the receipt $4 not visible: $stock"
}
received after-emptied 0 2 "with shard 1 emptied"

# A third shard added (a database of its own on the second cluster) and given sku-2's
# partition while the stack runs: `ordo dev` starts its relay once the map names it, the
# next receipt lands there, and the read with its token sees it.
psql "$(sed -E "s#:$ORDO_PG_PORT/#:$((ORDO_PG_PORT + 1))/#" <<<"$ORDO_PG_ADMIN_URL")" -qc \
    "CREATE DATABASE ordo_added OWNER ordo_migrator" || fail "the added shard's database"
added=$("$ordo" shards add --shard "2=127.0.0.1:$((ORDO_PG_PORT + 1))/ordo_added" 2>&1) ||
    fail "ordo shards add: $added"
partition=$(psql "$ORDO_MIGRATOR_URL" -Atc \
    "SELECT ordo.stream_hash('inventory-sku-2') % ordo.recorded_partition_count()") \
    || fail "the partition of sku-2"
moved=$("$ordo" shards move --partition "$partition" --to 2 2>&1) || fail "ordo shards move to 2: $moved"
relayed() {
    "$ordo" shards list --json | python3 -c '
import json, sys
shards = {s["id"]: s for s in json.load(sys.stdin)["shards"]}
assert shards[2]["relay_leader"] and shards[2]["relay_seen_seconds_ago"] < 30
' 2>/dev/null
}
until_true 30 "a relay leader for the added shard" relayed
grep -q '"message":"the map names a new shard: its relay starts"' "$log" ||
    fail "ordo dev started no relay for the added shard"
received on-added 2 4 "on the added shard"

kill -TERM "$dev"
wait "$dev" || fail "ordo dev --shards exited with $?"
for port in $ORDO_PG_PORT $((ORDO_PG_PORT + 1)) $((base + 80)) $((base + 90)) $((base + 93)) \
    $((base + 94)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then fail "port $port still open"; fi
done
echo "ordo dev --shards 2: order confirmed over both shards, a shard killed and back, a partition moved, shard 1 emptied and the stack started again, a shard added and given a partition, stopped"
