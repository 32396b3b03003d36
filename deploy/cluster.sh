#!/usr/bin/env bash
# Starts and stops Ordo's highly available local cluster, every part on loopback ports with its
# data under one folder: three etcd members; PostgreSQL 15 managed by Patroni, a primary and a
# synchronous standby; three nats-server nodes forming one JetStream cluster; HAProxy in front
# of the two command and the two query instances. `ordo dev --ha` runs the Ordo services on it
# (two of each); the HA fault test runs the soak against it. docs/deploy.md explains the
# choices.
#
#   cluster.sh start | stop | status | wipe
#   cluster.sh nats-node-kill <0-2>   SIGKILL one NATS node (fault tests)
#   cluster.sh pg-primary-kill        SIGKILL the primary's Patroni and PostgreSQL (a machine lost)
#   cluster.sh restore                start whatever was killed, wait until all is in sync again
#   cluster.sh primary                print the PostgreSQL member that leads
#
# Settings (environment): ORDO_STACK_DIR (default .ordo/cluster in the repository),
# ORDO_CLUSTER_BASE_PORT (56000; every port is the base plus a fixed offset, listed in
# stack.env). After start, $ORDO_STACK_DIR/stack.env holds the connection settings, as for
# deploy/stack.sh, with the HA addresses added (ORDO_HA_*).
#
# Services reach PostgreSQL through libpq multi-host URLs with target_session_attrs=primary (not
# read-write: the query role's sessions are read-only by default, yet must find the primary),
# and NATS through the list of its three nodes; the Command and Query APIs through HAProxy.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${ORDO_STACK_DIR:-$root/.ordo/cluster}
base=${ORDO_CLUSTER_BASE_PORT:-56000}
stack_name=cluster
extra_secrets="pg_replication pg_rewind patroni_api nats_route"
# shellcheck source=deploy/stack-common.sh
source "$root/deploy/stack-common.sh"

[[ $base =~ ^[0-9]{4,5}$ ]] && ((base >= 1024 && base <= 65400)) \
    || die "ORDO_CLUSTER_BASE_PORT must be 1024 to 65400"

# The ports, by offset from the base.
etcd_client() { echo $((base + 10 + $1)); }
etcd_peer() { echo $((base + 20 + $1)); }
pg_port() { echo $((base + 30 + $1)); }
patroni_port() { echo $((base + 40 + $1)); }
nats_port() { echo $((base + 50 + $1)); }
nats_route_port() { echo $((base + 60 + $1)); }
nats_monitor_port() { echo $((base + 70 + $1)); }
haproxy_command=$((base + 80))
haproxy_query=$((base + 81))
haproxy_stats=$((base + 82))
# Where the two instances of each service listen (HAProxy forwards to command and query).
service_addrs() {  # service_addrs <offset of the first>
    echo "127.0.0.1:$((base + $1)),127.0.0.1:$((base + $1 + 1))"
}
etcd_members="0 1 2"
pg_members="0 1"
nats_nodes="0 1 2"

pid_of() { cat "$1" 2>/dev/null || true; }
alive() { local pid; pid=$(pid_of "$1"); [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; }
# Kills what the pid file names and waits for it to be gone.
kill_pidfile() {  # kill_pidfile <file> <signal>
    local pid
    pid=$(pid_of "$1")
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill "-$2" "$pid" 2>/dev/null || true
        wait_for "process $pid to end" 60 bash -c "! kill -0 $pid 2>/dev/null"
    fi
    rm -f "$1"
}
# A process of ours in the background, its pid in a file; stdout and stderr to a log.
launch() {  # launch <pid file> <log> <command...>
    local pidfile=$1 log=$2
    shift 2
    setsid "$@" </dev/null >>"$log" 2>&1 &
    echo $! >"$pidfile"
}

ensure_tls() {
    ensure_ca
    ensure_server_cert postgres "$pg_user"
    ensure_server_cert nats "$(id -un)"
    ensure_server_cert etcd "$(id -un)"
    ensure_server_cert etcd-peer "$(id -un)" serverAuth,clientAuth
    ensure_server_cert nats-route "$(id -un)" serverAuth,clientAuth
}

# --- etcd: Patroni's consensus store, three members; peers authenticate each other by TLS

etcd_cluster() {
    local out="" m
    for m in $etcd_members; do out+="${out:+,}etcd$m=https://127.0.0.1:$(etcd_peer "$m")"; done
    echo "$out"
}

etcd_start() {
    local m started=0
    for m in $etcd_members; do
        alive "$dir/etcd$m.pid" && continue
        mkdir -p "$dir/etcd/$m" && chmod 700 "$dir/etcd/$m"
        launch "$dir/etcd$m.pid" "$dir/etcd$m.log" etcd --name "etcd$m" \
            --data-dir "$dir/etcd/$m" \
            --listen-client-urls "https://127.0.0.1:$(etcd_client "$m")" \
            --advertise-client-urls "https://127.0.0.1:$(etcd_client "$m")" \
            --listen-peer-urls "https://127.0.0.1:$(etcd_peer "$m")" \
            --initial-advertise-peer-urls "https://127.0.0.1:$(etcd_peer "$m")" \
            --initial-cluster "$(etcd_cluster)" --initial-cluster-token "ordo-$base" \
            --initial-cluster-state new \
            --cert-file "$tls/etcd.crt" --key-file "$tls/etcd.key" \
            --peer-cert-file "$tls/etcd-peer.crt" --peer-key-file "$tls/etcd-peer.key" \
            --peer-trusted-ca-file "$tls/ca.crt" --peer-client-cert-auth \
            --log-level warn
        started=1
    done
    ((started)) || return 0
    wait_for "etcd" 60 etcd_healthy
}

etcd_endpoints() {
    local out="" m
    for m in $etcd_members; do out+="${out:+,}https://127.0.0.1:$(etcd_client "$m")"; done
    echo "$out"
}

etcd_healthy() {
    ETCDCTL_API=3 etcdctl --endpoints "$(etcd_endpoints)" --cacert "$tls/ca.crt" \
        --dial-timeout 1s --command-timeout 2s endpoint health >/dev/null 2>&1
}

# --- PostgreSQL under Patroni ---------------------------------------------------------------

# The cluster-wide settings Patroni keeps in etcd, as JSON (YAML takes it as it is). Synchronous
# mode: a commit returns only once the standby has it, and only a synchronous standby may be
# promoted, so a failover loses no acknowledged commit. remote_apply: the standby has also
# applied it, so whatever a commit made (a new database too) is there when a client's
# connection tries the standby first: libpq moves on to the next host of a multi-host URL when
# a server is not the primary, but stops at a server's error such as a database that does not
# exist there yet. ttl 10 s with a 2 s loop: a lost primary is replaced in about 10 s.
dcs_config() {
    cat <<JSON | tr -d ' \n'
{"ttl": 10, "loop_wait": 2, "retry_timeout": 3, "maximum_lag_on_failover": 1048576,
 "synchronous_mode": true,
 "postgresql": {"use_pg_rewind": true, "use_slots": true, "parameters": {
   "synchronous_commit": "remote_apply", "max_connections": 400, "shared_buffers": "256MB",
   "max_prepared_transactions": 64, "max_wal_senders": 10, "max_replication_slots": 10,
   "wal_keep_size": "256MB", "idle_in_transaction_session_timeout": "60s",
   "log_min_messages": "warning"}}}
JSON
}

# The settings above on a cluster bootstrapped before they changed (Patroni takes them from
# its bootstrap section only once).
patroni_configure() {
    local m
    m=$(primary) || die "no PostgreSQL primary to configure"
    # The password goes to curl on standard input, never on a command line.
    printf 'user = "patroni:%s"\n' "$patroni_api" \
        | curl -sf --max-time 10 -o /dev/null -K - -X PATCH \
            -H 'Content-Type: application/json' -d "$(dcs_config)" \
            "http://127.0.0.1:$(patroni_port "$m")/config" || die "Patroni refused its settings"
}

# Patroni's configuration of member $1.
patroni_config() {
    local m=$1 data="$pg_home/$1"
    local ssl="sslmode: verify-full
      sslrootcert: $data/ca.crt"
    cat <<YAML
# Written by deploy/cluster.sh; edits are lost at the next start.
scope: ordo
namespace: /ordo-$base/
name: pg$m
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:$(patroni_port "$m")
  connect_address: 127.0.0.1:$(patroni_port "$m")
  authentication:
    username: patroni
    password: "$patroni_api"
etcd3:
  hosts: $(etcd_endpoints | sed 's|https://||g')
  protocol: https
  cacert: $data/ca.crt
bootstrap:
  dcs: $(dcs_config)
  initdb:
    - encoding: UTF8
    - no-locale
    - auth-host: scram-sha-256
    - auth-local: scram-sha-256
postgresql:
  listen: 127.0.0.1:$(pg_port "$m")
  connect_address: 127.0.0.1:$(pg_port "$m")
  data_dir: $data/data
  bin_dir: $pg_bin
  pgpass: $data/pgpass
  authentication:
    superuser:
      username: postgres
      password: "$admin"
      $ssl
    replication:
      username: replicator
      password: "$pg_replication"
      $ssl
    rewind:
      username: rewinder
      password: "$pg_rewind"
      $ssl
  parameters:
    unix_socket_directories: $data/run
    ssl: "on"
    ssl_cert_file: $data/server.crt
    ssl_key_file: $data/server.key
    ssl_min_protocol_version: TLSv1.2
  # TCP only with TLS; the socket is the owner's own door.
  pg_hba:
    - local all all scram-sha-256
    - hostssl replication replicator 127.0.0.1/32 scram-sha-256
    - hostssl all all 127.0.0.1/32 scram-sha-256
    - host all all 0.0.0.0/0 reject
    - host all all ::/0 reject
YAML
}

patroni_start() {  # patroni_start <member>
    local m=$1 data="$pg_home/$1"
    alive "$dir/patroni$m.pid" && return 0
    mkdir -p "$data/run"
    # Everything Patroni and PostgreSQL read lives in the member's folder, which their owner
    # can always reach (the stack folder may not be).
    install -m 644 -o "$pg_user" "$tls/ca.crt" "$data/ca.crt"
    install -m 644 -o "$pg_user" "$tls/postgres.crt" "$data/server.crt"
    install -m 600 -o "$pg_user" "$tls/postgres.key" "$data/server.key"
    (umask 077 && patroni_config "$m" >"$data/patroni.yml")
    chown -R "$pg_user" "$data"
    chmod 700 "$data"
    touch "$dir/patroni$m.log" && chown "$pg_user" "$dir/patroni$m.log"
    # setpriv executes Patroni in its own process (runuser would stay between as a parent
    # that a SIGKILL leaves the agent running behind).
    local as_owner=()
    [[ $(id -u) -eq 0 ]] && as_owner=(setpriv --reuid="$pg_user" --regid="$pg_user" --init-groups)
    # From its own folder: the caller's working directory (a checkout in a 0700 folder) may be
    # closed to the postgres user, and initdb and pg_ctl then refuse to start.
    launch "$dir/patroni$m.pid" "$dir/patroni$m.log" \
        env --chdir="$data" HOME="$data" PGSSLROOTCERT="$data/ca.crt" "${as_owner[@]}" patroni "$data/patroni.yml"
}

# What member $1's Patroni says of itself ("primary", "replica", "" when it does not answer;
# Patroni 3.0 still says "master" for a primary).
patroni_role() {
    local answer
    answer=$(curl -sf --max-time 2 "http://127.0.0.1:$(patroni_port "$1")/patroni" 2>/dev/null) || return 0
    python3 -c 'import json,sys; d=json.load(sys.stdin); r=d.get("role",""); print(("primary" if r=="master" else r) if d.get("state")=="running" else "")' \
        <<<"$answer" 2>/dev/null || true
}

# The member that holds the leader lock and runs as primary (Patroni's /primary answers 200).
primary() {
    local m
    for m in $pg_members; do
        if curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$(patroni_port "$m")/primary"; then
            echo "$m"
            return 0
        fi
    done
    return 1
}

has_primary() { primary >/dev/null; }
promoted_other_than() { local m; m=$(primary) && [[ $m != "$1" ]]; }

# The primary takes a connection (the password in the environment, not on a command line).
pg_writable() { PGPASSWORD=$admin psql "$(pg_url_of)" -Atqc 'select 1' >/dev/null 2>&1; }

pg_url_of() {  # a URL to the cluster's primary for the superuser
    local hosts="" m
    for m in $pg_members; do hosts+="${hosts:+,}127.0.0.1:$(pg_port "$m")"; done
    echo "postgresql://postgres@$hosts/postgres?target_session_attrs=primary&connect_timeout=3"
}

# Every member running, one primary, and every other member a synchronous standby streaming
# from it (Patroni's /sync answers 200 on a synchronous standby).
pg_in_sync() {
    local m leader
    leader=$(primary) || return 1
    for m in $pg_members; do
        [[ $m == "$leader" ]] && continue
        curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$(patroni_port "$m")/sync" || return 1
    done
}

pg_start_all() {
    local m
    for m in $pg_members; do patroni_start "$m"; done
    wait_for "a PostgreSQL primary" 120 has_primary
    wait_for "PostgreSQL ready for writes" 60 pg_writable
    patroni_configure
    apply_roles "$(pg_url_of)"
    wait_for "the PostgreSQL standby in sync" 180 pg_in_sync
}

pg_kill_member() {  # the machine lost: Patroni and its PostgreSQL SIGKILLed
    local m=$1 postmaster
    postmaster=$(head -1 "$pg_home/$m/data/postmaster.pid" 2>/dev/null || true)
    kill_pidfile "$dir/patroni$m.pid" KILL
    if [[ -n $postmaster ]]; then
        kill -KILL "$postmaster" 2>/dev/null || true
        wait_for "PostgreSQL member $m to end" 30 bash -c "! kill -0 $postmaster 2>/dev/null"
    fi
}

pg_stop_all() {
    local m postmaster
    for m in $pg_members; do
        kill_pidfile "$dir/patroni$m.pid" TERM  # Patroni stops its PostgreSQL first
        # A PostgreSQL whose Patroni was already gone (killed, crashed) runs on by itself.
        postmaster=$(head -1 "$pg_home/$m/data/postmaster.pid" 2>/dev/null || true)
        if [[ $postmaster =~ ^[0-9]+$ ]] && kill -0 "$postmaster" 2>/dev/null; then
            kill -TERM "$postmaster" 2>/dev/null || true
            wait_for "PostgreSQL member $m to stop" 60 bash -c "! kill -0 $postmaster 2>/dev/null"
        fi
    done
}

# --- NATS: three nodes, one JetStream cluster -----------------------------------------------

nats_routes() {
    local out="" n
    for n in $nats_nodes; do
        out+="${out:+, }\"nats-route://ordo_route:$nats_route@127.0.0.1:$(nats_route_port "$n")\""
    done
    echo "$out"
}

nats_node_config() {
    local n=$1
    cat <<CONF
# Written by deploy/cluster.sh; edits are lost at the next start.
server_name: "n$n"
listen: "127.0.0.1:$(nats_port "$n")"
http: "127.0.0.1:$(nats_monitor_port "$n")"
pid_file: "$dir/nats$n.pid"
log_file: "$dir/nats$n.log"
jetstream { store_dir: "$dir/nats/$n" }
# Routes speak mutual TLS and carry a password; clients get the full list from their settings, so the
# cluster does not advertise addresses to them.
cluster {
    name: "ordo"
    listen: "127.0.0.1:$(nats_route_port "$n")"
    no_advertise: true
    authorization { user: "ordo_route", password: "$nats_route" }
    routes: [ $(nats_routes) ]
    tls {
        cert_file: "$tls/nats-route.crt"
        key_file: "$tls/nats-route.key"
        ca_file: "$tls/ca.crt"
        timeout: 2
    }
}
CONF
    nats_client_config
}

nats_node_start() {
    local n=$1
    nats_node_running "$n" && return 0
    mkdir -p "$dir/nats/$n"
    (umask 077 && nats_node_config "$n" >"$dir/nats$n.conf")
    setsid nats-server -c "$dir/nats$n.conf" </dev/null >/dev/null 2>&1 &
}

nats_node_running() { alive "$dir/nats$1.pid"; }

nats_node_ready() { nats_healthy "$(nats_monitor_port "$1")"; }

nats_all_ready() {
    local n
    for n in $nats_nodes; do nats_node_ready "$n" || return 1; done
}

nats_start_all() {
    local n
    for n in $nats_nodes; do nats_node_start "$n"; done
    # Healthy means the node's JetStream is current with the cluster's meta leader and
    # every stream it holds a replica of.
    wait_for "the NATS cluster" 120 nats_all_ready
}

nats_node_kill() {
    kill_pidfile "$dir/nats$1.pid" KILL
}

nats_stop_all() {
    local n
    for n in $nats_nodes; do kill_pidfile "$dir/nats$n.pid" TERM; done
}

# --- HAProxy in front of the Command and Query APIs -----------------------------------------

haproxy_config() {
    local backend name front offset i
    cat <<CONF
# Written by deploy/cluster.sh; edits are lost at the next start.
global
    maxconn 4096
    log stderr format short local0 warning
defaults
    mode http
    log global
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # Another instance is tried only when the request never reached the first: a retried
    # POST must not run twice.
    retries 2
    option redispatch
    retry-on conn-failure
    default-server inter 500ms fall 2 rise 2
    # HAProxy's own 503, when no instance is ready (during a failover), in the APIs' shape and
    # with their hint to retry.
    http-error status 503 content-type application/problem+json string "{\\"type\\":\\"unavailable\\",\\"title\\":\\"Service unavailable\\",\\"status\\":503,\\"detail\\":\\"no instance is ready\\"}" hdr Retry-After 1
listen stats
    bind 127.0.0.1:$haproxy_stats
    stats enable
    stats uri /
CONF
    for backend in command:80:90 query:81:92; do
        IFS=: read -r name front offset <<<"$backend"
        cat <<CONF
frontend $name
    bind 127.0.0.1:$((base + front))
    default_backend $name
backend $name
    balance roundrobin
    # An instance takes requests while its /readyz says it can serve them.
    option httpchk GET /readyz
    http-check expect status 200
CONF
        if [[ $name == query ]]; then
            # Every Query API route only reads: a read whose instance was killed mid-answer is
            # asked again of the other, instead of reaching the client as HAProxy's 502.
            echo "    retry-on conn-failure empty-response junk-response"
        fi
        for i in 0 1; do
            echo "    server ${name}$i 127.0.0.1:$((base + offset + i)) check"
        done
    done
}

haproxy_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$haproxy_stats") 2>/dev/null; }

haproxy_start() {
    haproxy_config >"$dir/haproxy.cfg"
    haproxy -c -q -f "$dir/haproxy.cfg" || die "HAProxy refused its configuration"
    if alive "$dir/haproxy.pid"; then
        # A reload: the new process takes over the listeners, the old one finishes.
        haproxy -D -f "$dir/haproxy.cfg" -p "$dir/haproxy.pid" -sf "$(pid_of "$dir/haproxy.pid")" \
            2>>"$dir/haproxy.log"
    else
        haproxy -D -f "$dir/haproxy.cfg" -p "$dir/haproxy.pid" 2>>"$dir/haproxy.log"
    fi
    wait_for "HAProxy" 30 haproxy_listening
}

# --- the whole ------------------------------------------------------------------------------

write_cluster_env() {
    local pg_hosts="" nats_hosts="" m
    for m in $pg_members; do pg_hosts+="${pg_hosts:+,}127.0.0.1:$(pg_port "$m")"; done
    for m in $nats_nodes; do nats_hosts+="${nats_hosts:+,}127.0.0.1:$(nats_port "$m")"; done
    write_env "$pg_hosts" "&target_session_attrs=primary" "$nats_hosts" \
        "ORDO_NATS_MONITOR_PORT=$(nats_monitor_port 0)" \
        "ORDO_STACK_TOPOLOGY=ha" \
        "ORDO_STACK_SCRIPT=$root/deploy/cluster.sh" \
        "ORDO_CLUSTER_BASE_PORT=$base" \
        "ORDO_NATS_REPLICAS=3" \
        "ORDO_HA_COMMAND_URL=http://127.0.0.1:$haproxy_command" \
        "ORDO_HA_QUERY_URL=http://127.0.0.1:$haproxy_query" \
        "ORDO_HA_STATS_URL=http://127.0.0.1:$haproxy_stats" \
        "ORDO_HA_COMMAND_ADDRS=$(service_addrs 90)" \
        "ORDO_HA_QUERY_ADDRS=$(service_addrs 92)" \
        "ORDO_HA_RELAY_ADDRS=$(service_addrs 94)" \
        "ORDO_HA_PROJECTOR_ADDRS=$(service_addrs 96)" \
        "ORDO_HA_SAGAS_ADDRS=$(service_addrs 98)"
}

start_all() {
    rm -f "$dir/pg-killed"  # a fault test's, interrupted
    ensure_tls
    etcd_start
    pg_start_all
    nats_start_all
    haproxy_start
    write_cluster_env
    local m
    say "etcd on $(etcd_endpoints)"
    for m in $pg_members; do
        say "PostgreSQL pg$m on 127.0.0.1:$(pg_port "$m") ($(patroni_role "$m")), Patroni API on 127.0.0.1:$(patroni_port "$m")"
    done
    for m in $nats_nodes; do
        say "nats-server n$m on 127.0.0.1:$(nats_port "$m"), monitoring on 127.0.0.1:$(nats_monitor_port "$m")"
    done
    say "HAProxy: Command API 127.0.0.1:$haproxy_command, Query API 127.0.0.1:$haproxy_query, stats 127.0.0.1:$haproxy_stats"
    say "settings in $dir/stack.env"
}

stop_all() {
    kill_pidfile "$dir/haproxy.pid" TERM
    nats_stop_all
    pg_stop_all
    local m
    for m in $etcd_members; do kill_pidfile "$dir/etcd$m.pid" TERM; done
}

# After faults: every member started again, then in sync (a killed primary comes back as a
# standby, rewound by Patroni if it had WAL the new primary never saw). A killed primary stays
# down until another member has been promoted: started again within the leader key's ttl, it
# would find its own key and lead again, and no failover would have happened.
restore() {
    ensure_tls
    etcd_start
    local m killed
    killed=$(cat "$dir/pg-killed" 2>/dev/null || true)
    if [[ -n $killed ]]; then
        wait_for "a standby promoted in place of pg$killed" 120 promoted_other_than "$killed"
        rm -f "$dir/pg-killed"
    fi
    for m in $pg_members; do patroni_start "$m"; done
    wait_for "the PostgreSQL standby in sync" 180 pg_in_sync
    for m in $nats_nodes; do nats_node_start "$m"; done
    wait_for "the NATS cluster" 120 nats_all_ready
}

status() {
    local m
    for m in $etcd_members; do
        alive "$dir/etcd$m.pid" && say "etcd$m running" || say "etcd$m stopped"
    done
    for m in $pg_members; do
        local role
        role=$(patroni_role "$m")
        say "pg$m ${role:-not answering}"
    done
    for m in $nats_nodes; do
        nats_node_running "$m" && say "n$m running" || say "n$m stopped"
    done
    alive "$dir/haproxy.pid" && say "HAProxy running" || say "HAProxy stopped"
}

ensure_secrets
case ${1:-} in
    start) start_all ;;
    stop) stop_all ;;
    status) status ;;
    wipe) stop_all; wipe_folders; say "wiped $dir" ;;
    primary) primary || die "no primary" ;;
    pg-primary-kill)
        m=$(primary) || die "no primary to kill"
        pg_kill_member "$m"
        echo "$m" >"$dir/pg-killed"
        say "killed pg$m, the primary"
        ;;
    nats-node-kill)
        [[ ${2:-} =~ ^[0-2]$ ]] || die "usage: cluster.sh nats-node-kill <0-2>"
        nats_node_kill "$2"
        ;;
    restore) restore ;;
    *) die "usage: cluster.sh start|stop|status|wipe|primary|pg-primary-kill|nats-node-kill N|restore" ;;
esac
