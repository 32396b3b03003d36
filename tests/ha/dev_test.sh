#!/usr/bin/env bash
# `ordo dev --ha` end to end: it brings the cluster and two of every service up, the README's
# order flow works through HAProxy, killing one command instance changes nothing a client
# sees, and one SIGTERM stops every process it started.
#
#   tests/ha/dev_test.sh <ordo binary>
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ordo=$1
# shellcheck source=tests/support/dev_test_lib.sh
source "$root/tests/support/dev_test_lib.sh"

cluster_dir=${ORDO_TEST_DEV_CLUSTER_DIR:-$root/.ordo/test-dev-cluster}
cluster_base_port=${ORDO_TEST_DEV_CLUSTER_BASE_PORT:-26100}
clear_stack_settings
export ORDO_STACK_DIR=$cluster_dir ORDO_CLUSTER_BASE_PORT=$cluster_base_port
command_api=http://127.0.0.1:$((ORDO_CLUSTER_BASE_PORT + 80))
query_api=http://127.0.0.1:$((ORDO_CLUSTER_BASE_PORT + 81))
log=$(mktemp)

"$ordo" dev --ha >"$log" 2>&1 &
dev=$!
cleanup() {
    kill -TERM "$dev" 2>/dev/null || true
    wait "$dev" 2>/dev/null || true
    "$root/deploy/cluster.sh" stop >/dev/null 2>&1 || true
    rm -f "$log"
}
trap cleanup EXIT

ready() { curl -sf -o /dev/null --max-time 2 "$1/readyz"; }
until_true 240 "the Command API ready through HAProxy" ready "$command_api"
until_true 60 "the Query API ready through HAProxy" ready "$query_api"
grep -q '"message":"ordo dev --ha is up' "$log" || fail "no line saying where everything listens"

# post <path> <json>: one write, answered 2xx or shown with its status. The same idempotency key
# every time, so a write that is sent again takes effect once.
post() {
    local answer
    answer=$(curl -s -w '\n%{http_code}' --max-time 10 -X POST "$command_api$1" \
        -H 'Content-Type: application/json' -H "Idempotency-Key: dev-test-$1" -d "$2")
    [[ ${answer##*$'\n'} == 2* ]] || { echo "$1 answered: ${answer//$'\n'/ }" >&2; return 1; }
}
# A write may meet an instance that HAProxy has not yet seen through two health checks, or a
# pool still opening its connections: the client sends it again, as any client of an
# idempotent API does, for a bounded time.
until_true 30 "a receipt" post /v1/inventory/sku-1/receipts '{"quantity": 5}'
until_true 10 "a deposit" post /v1/accounts/acct-1/deposits '{"amount": 1000}'

# One command instance killed: HAProxy sends everything to the other, once it has seen that
# other one ready (two health checks): a write before that meets HAProxy's own 503.
both_up() {
    [[ $(curl -sf --max-time 2 "http://127.0.0.1:$((ORDO_CLUSTER_BASE_PORT + 82))/;csv" |
        awk -F, '$1 == "command" && $2 ~ /^command[01]$/ && $18 == "UP"' | wc -l) == 2 ]]
}
until_true 60 "both command instances up in HAProxy" both_up
pid=$(pgrep -f -- "serve command .*--address 127\.0\.0\.1:$((ORDO_CLUSTER_BASE_PORT + 90))" || true)
[[ $pid =~ ^[0-9]+$ ]] || fail "not one first command instance: '$pid'"
kill -KILL "$pid"
# Gone, not only signalled: its listening socket is closed, so HAProxy's connection to it is
# refused and the request goes to the other instance.
gone() { [[ ! -e /proc/$pid || $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]]; }
until_true 10 "the killed instance gone" gone
# HAProxy marks the dead instance down after two failed checks (1 s); until then a request
# whose connection it refuses is sent to the other instance, so no client sees the kill: the
# order must go through at its first try. (Its body, byte for byte, and its key are those of
# every earlier run: a cluster kept from one replays the order instead of refusing the key.)
post /v1/orders '{"order_id": "o-1", "customer_id": "c-1", "account_id": "acct-1",
        "lines": [{"sku": "sku-1", "quantity": 2, "unit_price": 100}]}' ||
    fail "the order was refused with one command instance killed"

confirmed() { curl -sf --max-time 5 "$query_api/v1/orders/o-1" | grep -q '"status":"confirmed"'; }
until_true 60 "the order confirmed" confirmed
available() {
    curl -sf --max-time 5 "$query_api/v1/inventory/sku-1" | grep -q '"available":3'
}
until_true 30 "the stock reserved" available

# One SIGTERM ends it all: the services, then the cluster.
kill -TERM "$dev"
wait "$dev" || fail "ordo dev --ha exited with $?"
left=$(pgrep -f -- "$ORDO_STACK_DIR|--address 127\.0\.0\.1:$((ORDO_CLUSTER_BASE_PORT / 100))[0-9]{2}" || true)
[[ -z $left ]] || fail "processes left after the stop: $(ps -o pid=,args= -p "${left//$'\n'/,}")"
for port in $((ORDO_CLUSTER_BASE_PORT + 90)) $((ORDO_CLUSTER_BASE_PORT + 30)) \
    $((ORDO_CLUSTER_BASE_PORT + 50)) $((ORDO_CLUSTER_BASE_PORT + 80)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then fail "port $port still open"; fi
done
echo "ordo dev --ha: up, order confirmed through HAProxy with a command instance killed, stopped"
