#!/usr/bin/env bash
# The HA fault test: the highly available cluster (deploy/cluster.sh: etcd, Patroni with a
# synchronous standby, three NATS nodes, HAProxy) on a folder and ports of its own, and the
# soak against it (two of every service, clients through HAProxy) while NATS nodes, the
# PostgreSQL primary and service instances are killed; then every acknowledged command is
# checked. Arguments after the soak binary go to it.
#
#   tests/ha/run.sh <ordo-soak> [soak arguments]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
soak=$1
shift

cluster_dir=${ORDO_TEST_CLUSTER_DIR:-$root/.ordo/test-cluster}
cluster_base_port=${ORDO_TEST_CLUSTER_BASE_PORT:-26000}
# Only the cluster's settings: those of the single-server test stack, which the test command
# exports, would send the soak there.
while read -r name; do
    [[ $name == ORDO_BIN ]] || unset "$name"
done < <(compgen -e | grep -E '^(ORDO_|PG)')
export ORDO_STACK_DIR=$cluster_dir ORDO_CLUSTER_BASE_PORT=$cluster_base_port

# A fresh cluster every run: what an earlier run left in JetStream (its streams, replicas
# still catching up) must not slow or decide this one.
"$root/deploy/cluster.sh" wipe
trap '"$root/deploy/cluster.sh" stop' EXIT  # before start: a start that fails stops too
"$root/deploy/cluster.sh" start
"$soak" "$@"
