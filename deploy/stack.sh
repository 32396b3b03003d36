#!/usr/bin/env bash
# Starts and stops Ordo's local stack: a private PostgreSQL 15 cluster and nats-server with
# JetStream, each on its own loopback port with its data under one folder. `ordo dev`,
# the test suite and CI all use this script.
#
#   stack.sh start | stop | status | wipe
#   stack.sh pg-stop | pg-start | pg-kill | nats-stop | nats-start | nats-kill   (fault tests)
#
# Settings (environment): ORDO_STACK_DIR (default .ordo/dev in the repository),
# ORDO_PG_PORT (55432), ORDO_NATS_PORT (54222), ORDO_NATS_MONITOR_PORT (58222),
# ORDO_PG_FSYNC (on), ORDO_PG_MAX_PREPARED_TRANSACTIONS (64; bench/two_phase raises it).
# After start, $ORDO_STACK_DIR/stack.env holds the connection settings.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${ORDO_STACK_DIR:-$root/.ordo/dev}
pg_port=${ORDO_PG_PORT:-55432}
nats_port=${ORDO_NATS_PORT:-54222}
nats_monitor_port=${ORDO_NATS_MONITOR_PORT:-58222}
pg_bin=/usr/lib/postgresql/15/bin
max_prepared=${ORDO_PG_MAX_PREPARED_TRANSACTIONS:-64}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

say() { echo "stack: $*" >&2; }
die() { echo "stack: $*" >&2; exit 1; }

[[ $max_prepared =~ ^[0-9]{1,4}$ ]] || die "ORDO_PG_MAX_PREPARED_TRANSACTIONS must be 0 to 9999"

# Postgres refuses to run as root: when we are root, the cluster belongs to `postgres`.
if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    pg_user=postgres
    as_pg() { runuser -u postgres -- "$@"; }
else
    pg_user=$(id -un)
    as_pg() { "$@"; }
fi

# The data folder must be reachable by the cluster's owner; a checkout under a private
# home folder is not, so fall back to a folder keyed by the stack's path.
# The fallback's name is random (mktemp) and recorded in the stack folder, so that nobody can
# prepare it in the shared temporary folder beforehand; a recorded folder is used again only
# while it is still a real folder of ours.
pg_home="$dir/pg"
if [[ $(id -u) -eq 0 ]] && ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
    fallback=$(cat "$dir/pg-home" 2>/dev/null || true)
    if [[ -z $fallback || -L $fallback || ! -d $fallback || $(stat -c %u "$fallback") != 0 ]]; then
        fallback=$(mktemp -d /var/tmp/ordo-stack-XXXXXXXXXX)
        chmod 711 "$fallback"  # the cluster's owner passes through; nobody lists it
        printf '%s\n' "$fallback" >"$dir/pg-home"
    fi
    pg_home="$fallback/pg"
fi
pgdata="$pg_home/data"
pgrun="$pg_home/run"

secret() { head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }

wait_for() {  # wait_for <what> <seconds> <command...>
    local what=$1 seconds=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        ((SECONDS < deadline)) || die "$what did not become ready within ${seconds}s"
        sleep 0.1
    done
}

# One password per role (ordo_<name>), generated once; a secrets file from an older
# release gets the roles it lacks added.
roles="migrator command relay projector sagas query"

ensure_secrets() {
    local file="$dir/secrets" name
    # Only this file is private; a umask left behind would also close the folders the
    # cluster's owner must traverse.
    (umask 077 && touch "$file")
    for name in admin $roles; do
        grep -q "^$name=" "$file" || echo "$name=$(secret)" >>"$file"
    done
    # shellcheck disable=SC1090
    source "$file"
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
idle_in_transaction_session_timeout = '60s'
log_min_messages = warning
CONF
    chown "$pg_user" "$pgdata/postgresql.auto.conf"
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
    # The roles' passwords go in on standard input, never on a command line.
    {
        for name in $roles; do
            printf "\\set %s_password '%s'\n" "$name" "${!name}"
        done
        cat "$root/deploy/postgres/roles.sql"
    } | PGPASSWORD=$admin psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qAt \
        -v ON_ERROR_STOP=1 -f - >/dev/null
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

nats_ready() (
    { exec 3<>"/dev/tcp/127.0.0.1/$nats_monitor_port"; } 2>/dev/null || exit 1
    printf 'GET /healthz?js-enabled-only=true HTTP/1.0\r\n\r\n' >&3
    reply=$(cat <&3)
    [[ $reply == *"200 OK"* ]]
)

nats_start() {
    mkdir -p "$dir/nats"
    if ! nats_running; then
        setsid nats-server -js -a 127.0.0.1 -p "$nats_port" -m "$nats_monitor_port" \
            -sd "$dir/nats" -P "$dir/nats.pid" -l "$dir/nats.log" </dev/null >/dev/null 2>&1 &
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

write_env() {
    local base="127.0.0.1:$pg_port"
    umask 077
    cat >"$dir/stack.env" <<ENV
ORDO_PG_HOST=127.0.0.1
ORDO_PG_PORT=$pg_port
ORDO_PG_ADMIN_URL=postgresql://postgres:$admin@$base/postgres?connect_timeout=3
ORDO_MIGRATOR_URL=postgresql://ordo_migrator:$migrator@$base/ordo?connect_timeout=3
ORDO_COMMAND_DATABASE_URL=postgresql://ordo_command:$command@$base/ordo?connect_timeout=3
ORDO_RELAY_DATABASE_URL=postgresql://ordo_relay:$relay@$base/ordo?connect_timeout=3
ORDO_PROJECTOR_DATABASE_URL=postgresql://ordo_projector:$projector@$base/ordo?connect_timeout=3
ORDO_SAGAS_DATABASE_URL=postgresql://ordo_sagas:$sagas@$base/ordo?connect_timeout=3
ORDO_QUERY_DATABASE_URL=postgresql://ordo_query:$query@$base/ordo?connect_timeout=3
ORDO_NATS_URL=nats://127.0.0.1:$nats_port
ORDO_NATS_PORT=$nats_port
ORDO_NATS_MONITOR_PORT=$nats_monitor_port
ORDO_STACK_DIR=$dir
PGPASSFILE=$dir/pgpass
ENV
    # The same passwords for libpq, so that scripts can pass URLs without them on command
    # lines (psql, pgbench, ordo migrate --database-url).
    {
        echo "127.0.0.1:$pg_port:*:postgres:$admin"
        for name in $roles; do echo "127.0.0.1:$pg_port:*:ordo_$name:${!name}"; done
    } >"$dir/pgpass"
}

ensure_secrets
case ${1:-} in
    start)
        pg_start
        nats_start
        write_env
        say "PostgreSQL 15 on 127.0.0.1:$pg_port (data $pgdata)"
        say "nats-server (JetStream) on 127.0.0.1:$nats_port, monitoring on 127.0.0.1:$nats_monitor_port"
        say "settings in $dir/stack.env"
        ;;
    stop) nats_stop; pg_stop ;;
    status)
        pg_running && say "PostgreSQL running on 127.0.0.1:$pg_port" || say "PostgreSQL stopped"
        nats_running && say "nats-server running on 127.0.0.1:$nats_port" || say "nats-server stopped"
        ;;
    wipe) nats_stop; pg_stop; rm -rf "$(dirname "$pg_home")/pg" "$dir"; [[ $pg_home == "$dir/pg" ]] || rm -rf "$(dirname "$pg_home")"; say "wiped $dir" ;;
    pg-stop) pg_stop ;;
    pg-start) pg_start ;;
    pg-kill) pg_kill ;;
    nats-stop) nats_stop ;;
    nats-start) nats_start ;;
    nats-kill) nats_kill ;;
    *) die "usage: stack.sh start|stop|status|wipe|pg-stop|pg-start|pg-kill|nats-stop|nats-start|nats-kill" ;;
esac
