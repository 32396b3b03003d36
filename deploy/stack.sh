#!/usr/bin/env bash
# Starts and stops Ordo's local stack: a private PostgreSQL 15 cluster and nats-server with
# JetStream, each on its own loopback port with its data under one folder. `ordo dev`,
# the test suite and CI all use this script.
#
#   stack.sh start | stop | status | wipe
#   stack.sh pg-stop | pg-start | pg-kill [shard] | nats-stop | nats-start | nats-kill   (fault tests)
#
# Settings (environment): ORDO_STACK_DIR (default .ordo/dev in the repository),
# ORDO_PG_PORT (55432), ORDO_NATS_PORT (54222), ORDO_NATS_MONITOR_PORT (58222),
# ORDO_PG_FSYNC (on), ORDO_PG_MAX_PREPARED_TRANSACTIONS (64; bench/two_phase raises it),
# ORDO_PG_STATEMENT_STATS (off; on loads pg_stat_statements, for profiling a benchmark: takes
# effect when PostgreSQL starts), ORDO_PG_SHARDS (1: the number of PostgreSQL clusters, one per
# shard of a sharded store, docs/scaling.md; shard i listens on ORDO_PG_PORT + i, and stack.env
# names each in ORDO_PG_SHARD_LOCATIONS; pg-stop, pg-start and pg-kill take a shard, 0 first).
# After start, $ORDO_STACK_DIR/stack.env holds the connection settings.
#
# Both servers speak TLS only, with certificates from a private CA the script makes once per
# stack folder ($ORDO_STACK_DIR/tls/ca.crt; clients verify against it). NATS admits only the
# users of its generated config, one per service with the least it needs (docs/security.md).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${ORDO_STACK_DIR:-$root/.ordo/dev}
pg_port=${ORDO_PG_PORT:-55432}
nats_port=${ORDO_NATS_PORT:-54222}
nats_monitor_port=${ORDO_NATS_MONITOR_PORT:-58222}
max_prepared=${ORDO_PG_MAX_PREPARED_TRANSACTIONS:-64}
# shellcheck source=deploy/stack-common.sh
source "$root/deploy/stack-common.sh"

[[ $max_prepared =~ ^[0-9]{1,4}$ ]] || die "ORDO_PG_MAX_PREPARED_TRANSACTIONS must be 0 to 9999"
case ${ORDO_PG_STATEMENT_STATS:-off} in
    on) preload=pg_stat_statements ;;
    off) preload= ;;
    *) die "ORDO_PG_STATEMENT_STATS must be on or off" ;;
esac

shards=${ORDO_PG_SHARDS:-1}
[[ $shards =~ ^[1-8]$ ]] || die "ORDO_PG_SHARDS must be 1 to 8"

# The pg_* functions act on one cluster: shard 0's (the first, which also holds the control
# database) unless use_cluster chose another.
first_pg_home=$pg_home
first_pg_port=$pg_port
use_cluster() {  # use_cluster <shard>
    [[ $1 =~ ^[0-7]$ ]] || die "no shard '$1' (0 to 7)"
    if (($1 == 0)); then
        pg_home=$first_pg_home
        pg_port=$first_pg_port
    else
        pg_home="$first_pg_home-shard$1"
        pg_port=$((first_pg_port + $1))
    fi
    pgdata="$pg_home/data"
    pgrun="$pg_home/run"
}
use_cluster 0

# The shards whose clusters exist, started or not: those asked for now and any an earlier
# start made (stop and status reach them all).
existing_shards() {
    local i
    for ((i = 0; i < 8; i++)); do
        if ((i < shards)) || [[ -d "$first_pg_home-shard$i/data" ]]; then echo "$i"; fi
    done
}

ensure_tls() {
    ensure_ca
    ensure_server_cert postgres "$pg_user"
    ensure_server_cert nats "$(id -un)"
}

pg_running() { as_pg "$pg_bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; }

pg_ready() { PGPASSWORD=$admin psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; }

pg_init() {
    [[ -f $pgdata/PG_VERSION ]] && return
    say "creating PostgreSQL cluster in $pgdata"
    mkdir -p "$pgdata" "$pgrun"
    chown -R "$pg_user" "$pg_home"
    chmod 700 "$pgdata"
    local pwfile="$pg_home/.pw"
    (umask 077 && printf '%s\n' "$admin" >"$pwfile")
    chown "$pg_user" "$pwfile"
    as_pg "$pg_bin/initdb" -D "$pgdata" -U postgres --pwfile="$pwfile" -E UTF8 --no-locale \
        --auth-host=scram-sha-256 --auth-local=scram-sha-256 >/dev/null
    rm -f "$pwfile"
}

pg_configure() {
    cat >"$pgdata/postgresql.auto.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$pgrun'
max_connections = 400
shared_buffers = '256MB'
fsync = ${ORDO_PG_FSYNC:-on}
max_prepared_transactions = $max_prepared
shared_preload_libraries = '$preload'
idle_in_transaction_session_timeout = '60s'
log_min_messages = warning
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
CONF
    # TCP only with TLS; the socket in $pgrun is the owner's own door.
    cat >"$pgdata/pg_hba.conf" <<HBA
local   all all                 scram-sha-256
hostssl all all 127.0.0.1/32    scram-sha-256
hostssl all all ::1/128         scram-sha-256
host    all all 0.0.0.0/0       reject
host    all all ::/0            reject
HBA
    # The server reads its key from the data folder, which its owner can always reach (the
    # stack folder may not be).
    install -m 644 -o "$pg_user" "$tls/postgres.crt" "$pgdata/server.crt"
    install -m 600 -o "$pg_user" "$tls/postgres.key" "$pgdata/server.key"
    chown "$pg_user" "$pgdata/postgresql.auto.conf" "$pgdata/pg_hba.conf"
    # A running server takes the settings (TLS included) on reload.
    if pg_running; then as_pg "$pg_bin/pg_ctl" -D "$pgdata" reload >/dev/null; fi
}

pg_start() {
    pg_init
    pg_configure
    mkdir -p "$pgrun" && chown "$pg_user" "$pgrun"
    if ! pg_running; then
        as_pg "$pg_bin/pg_ctl" -D "$pgdata" -l "$pg_home/postgres.log" -w -t 60 start >/dev/null \
            || { tail -20 "$pg_home/postgres.log" >&2; die "PostgreSQL did not start"; }
    fi
    wait_for PostgreSQL 60 pg_ready
    apply_roles -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres
}

pg_stop() {
    pg_running && as_pg "$pg_bin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null || true
}

pg_kill() {
    local pid
    pid=$(head -1 "$pgdata/postmaster.pid" 2>/dev/null || true)
    [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null || true
    # Its backends notice the postmaster is gone and exit; wait for the port to close.
    wait_for "PostgreSQL exit" 30 pg_down
}

pg_down() { ! pg_running; }

nats_pid() { cat "$dir/nats.pid" 2>/dev/null || true; }

nats_running() { local pid; pid=$(nats_pid); [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; }

nats_ready() { nats_healthy "$nats_monitor_port" '?js-enabled-only=true'; }

nats_write_config() {
    (
        umask 077
        {
            cat <<CONF
# Written by deploy/stack.sh; edits are lost at the next start.
listen: "127.0.0.1:$nats_port"
http: "127.0.0.1:$nats_monitor_port"
pid_file: "$dir/nats.pid"
log_file: "$dir/nats.log"
jetstream { store_dir: "$dir/nats" }
CONF
            nats_client_config
        } >"$dir/nats.conf"
    )
}

nats_start() {
    mkdir -p "$dir/nats"
    # A server of an older stack runs without a config file (and without TLS): restart it.
    [[ -f $dir/nats.conf ]] || nats_stop
    nats_write_config
    if nats_running; then
        kill -HUP "$(nats_pid)"  # takes changed users and permissions
    else
        setsid nats-server -c "$dir/nats.conf" </dev/null >/dev/null 2>&1 &
    fi
    wait_for "nats-server" 30 nats_ready
}

nats_stop() {
    local pid
    pid=$(nats_pid)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait_for "nats-server shutdown" 30 bash -c "! kill -0 $pid 2>/dev/null"
    fi
    rm -f "$dir/nats.pid"
}

nats_kill() {
    local pid
    pid=$(nats_pid)
    [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null || true
    [[ -n $pid ]] && wait_for "nats-server exit" 30 bash -c "! kill -0 $pid 2>/dev/null"
    rm -f "$dir/nats.pid"
}

ensure_secrets
case ${1:-} in
    start)
        ensure_tls
        locations=""
        for ((shard = 0; shard < shards; shard++)); do
            use_cluster "$shard"
            pg_start
            locations+="${locations:+,}$shard=127.0.0.1:$pg_port/ordo"
            say "PostgreSQL 15 on 127.0.0.1:$pg_port (data $pgdata)"
        done
        use_cluster 0
        nats_start
        write_env "127.0.0.1:$pg_port" "" "127.0.0.1:$nats_port" \
            "ORDO_NATS_MONITOR_PORT=$nats_monitor_port" "ORDO_PG_SHARDS=$shards" \
            "ORDO_PG_SHARD_LOCATIONS=$locations"
        # The shards' clusters have the same roles and passwords.
        for ((shard = 1; shard < shards; shard++)); do
            {
                echo "127.0.0.1:$((first_pg_port + shard)):*:postgres:$admin"
                for name in $roles; do echo "127.0.0.1:$((first_pg_port + shard)):*:ordo_$name:${!name}"; done
            } >>"$dir/pgpass"
        done
        say "nats-server (JetStream) on 127.0.0.1:$nats_port, monitoring on 127.0.0.1:$nats_monitor_port"
        say "settings in $dir/stack.env"
        ;;
    stop)
        nats_stop
        for shard in $(existing_shards); do use_cluster "$shard"; pg_stop; done
        ;;
    status)
        for shard in $(existing_shards); do
            use_cluster "$shard"
            pg_running && say "PostgreSQL (shard $shard) running on 127.0.0.1:$pg_port" \
                || say "PostgreSQL (shard $shard) stopped"
        done
        nats_running && say "nats-server running on 127.0.0.1:$nats_port" || say "nats-server stopped"
        ;;
    wipe)
        nats_stop
        for shard in $(existing_shards); do use_cluster "$shard"; pg_stop; done
        use_cluster 0
        wipe_folders
        say "wiped $dir"
        ;;
    pg-stop) use_cluster "${2:-0}"; pg_stop ;;
    pg-start) use_cluster "${2:-0}"; ensure_tls; pg_start ;;
    pg-kill) use_cluster "${2:-0}"; pg_kill ;;
    nats-stop) nats_stop ;;
    nats-start) ensure_tls; nats_start ;;
    nats-kill) nats_kill ;;
    *) die "usage: stack.sh start|stop|status|wipe|pg-stop|pg-start|pg-kill|nats-stop|nats-start|nats-kill" ;;
esac
