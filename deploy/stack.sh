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

# One password per database role (ordo_<name>) and per NATS user (nats_<name>, one per
# service and an administrator for operators, tools and the test suite), generated once; a
# secrets file from an older release gets those it lacks added.
roles="migrator command relay projector sagas query"
nats_users="command query relay projector sagas admin"

ensure_secrets() {
    local file="$dir/secrets" name
    # Only this file is private; a umask left behind would also close the folders the
    # cluster's owner must traverse.
    (umask 077 && touch "$file")
    for name in admin $roles; do
        grep -q "^$name=" "$file" || echo "$name=$(secret)" >>"$file"
    done
    for name in $nats_users; do
        grep -q "^nats_$name=" "$file" || echo "nats_$name=$(secret)" >>"$file"
    done
    # shellcheck disable=SC1090
    source "$file"
}

# The stack's private CA and one server certificate per server, made with openssl into
# $tls (ca.crt for every client to verify against). A server certificate names
# 127.0.0.1 and localhost, lives 397 days and is made again when it is missing, not from this
# CA, or within 30 days of expiry. Keys are made under umask 077 straight into the folder:
# they never pass through a shared temporary folder.
tls="$dir/tls"

ensure_ca() {
    mkdir -p "$tls"
    chmod 755 "$tls"
    [[ -s $tls/ca.key && -s $tls/ca.crt ]] && return
    say "creating the stack's certificate authority in $tls"
    (
        umask 077
        openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -noenc \
            -keyout "$tls/ca.key" -out "$tls/ca.crt" -days 3650 -sha256 \
            -subj "/CN=Ordo local stack CA" \
            -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    ) || die "cannot create the CA"
    chmod 644 "$tls/ca.crt"
    rm -f "$tls"/postgres.crt "$tls"/nats.crt  # issued by a CA that is gone
}

ensure_server_cert() {  # ensure_server_cert <name> <owner of the key>
    local name=$1 owner=$2 crt="$tls/$1.crt" key="$tls/$1.key"
    if [[ -s $crt && -s $key ]] && openssl x509 -in "$crt" -noout -checkend $((30 * 86400)) >/dev/null \
        && openssl verify -CAfile "$tls/ca.crt" "$crt" >/dev/null 2>&1; then
        chown "$owner" "$key"
        return
    fi
    say "issuing the $name server certificate"
    rm -f "$key" "$crt"
    (
        umask 077
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$key" 2>/dev/null
        openssl req -new -key "$key" -subj "/CN=localhost" \
            | openssl x509 -req -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
                -set_serial "0x$(openssl rand -hex 16)" -days 397 -sha256 -out "$crt" \
                -extfile <(printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
                    "basicConstraints=critical,CA:FALSE" \
                    "keyUsage=critical,digitalSignature,keyEncipherment" \
                    "extendedKeyUsage=serverAuth") 2>/dev/null
    ) || die "cannot issue the $name certificate"
    chmod 644 "$crt"
    chown "$owner" "$key"
}

ensure_tls() {
    ensure_ca
    ensure_server_cert postgres "$pg_user"
    ensure_server_cert nats "$(id -un)"
}

pg_running() { as_pg "$pg_bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; }

# The script's own connections verify the server like every client.
export PGSSLMODE=verify-full PGSSLROOTCERT="$tls/ca.crt"

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

# The subjects of the defaults the services run with; a stack for other names takes them from
# the same settings as the services.
nats_stream=${ORDO_NATS_STREAM:-ORDO_EVENTS}
nats_subjects=${ORDO_NATS_SUBJECT_PREFIX:-ordo.events}
breaker_bucket=${ORDO_BREAKER_BUCKET:-ordo_breakers}

# nats_permissions <publish allow...> -- <subscribe allow...>: a permissions block that
# allows exactly these subjects (none: nothing) and denies everything else.
nats_permissions() {
    local pub=() sub=() side=pub item
    for item in "$@"; do
        if [[ $item == -- ]]; then side=sub; continue; fi
        if [[ $side == pub ]]; then pub+=("\"$item\""); else sub+=("\"$item\""); fi
    done
    local IFS=,
    printf 'permissions: { publish: { %s }, subscribe: { %s } }' \
        "$( ((${#pub[@]})) && echo "allow: [${pub[*]}]" || echo 'deny: ">"')" \
        "$( ((${#sub[@]})) && echo "allow: [${sub[*]}]" || echo 'deny: ">"')"
}

# What each service may do, and nothing else (docs/security.md, "What NATS trusts"). Replies
# to a client's JetStream API requests and its consumers' deliveries arrive on its inbox,
# _INBOX.>; no service may publish there, so none can forge another's replies.
nats_write_config() {
    # shellcheck disable=SC2016  # $JS is a literal subject token
    local api='$JS.API' s=$nats_stream kv="KV_$breaker_bucket"
    # The subjects cnats 3.4 uses, as a trace of the services shows: an ordered consumer is
    # an unnamed ephemeral consumer, deleted on unsubscribe, that asks for flow control.
    local consume=("$api.CONSUMER.CREATE.$s" "$api.CONSUMER.DELETE.$s.*" "\$JS.FC.$s.>")
    (
        umask 077
        cat >"$dir/nats.conf" <<CONF
# Written by deploy/stack.sh; edits are lost at the next start.
listen: "127.0.0.1:$nats_port"
http: "127.0.0.1:$nats_monitor_port"
pid_file: "$dir/nats.pid"
log_file: "$dir/nats.log"
jetstream { store_dir: "$dir/nats" }
# Clients speak TLS 1.2 or later (the server's minimum) with the stack's certificate.
tls {
    cert_file: "$tls/nats.crt"
    key_file: "$tls/nats.key"
    timeout: 2
}
authorization {
    users = [
        { user: "ordo_command", password: "$nats_command", $(nats_permissions --) }
        { user: "ordo_query", password: "$nats_query", $(nats_permissions --) }
        { user: "ordo_relay", password: "$nats_relay", $(nats_permissions \
            "$nats_subjects.>" "$api.STREAM.INFO.$s" "$api.STREAM.CREATE.$s" \
            "$api.STREAM.UPDATE.$s" -- "_INBOX.>") }
        { user: "ordo_projector", password: "$nats_projector", $(nats_permissions \
            "${consume[@]}" "\$KV.$breaker_bucket.>" "$api.STREAM.INFO.$kv" \
            "$api.STREAM.CREATE.$kv" "$api.DIRECT.GET.$kv.>" "$api.STREAM.MSG.GET.$kv" \
            -- "_INBOX.>") }
        { user: "ordo_sagas", password: "$nats_sagas", $(nats_permissions "${consume[@]}" -- "_INBOX.>") }
        { user: "ordo_admin", password: "$nats_admin" }
    ]
}
CONF
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

write_env() {
    local base="127.0.0.1:$pg_port"
    # Every PostgreSQL URL verifies the server against the stack's CA and name. Values with
    # `&` are in single quotes so that shells can source the file (ordo reads them alike).
    local tls_query="sslmode=verify-full&sslrootcert=$tls/ca.crt"
    umask 077
    cat >"$dir/stack.env" <<ENV
ORDO_PG_HOST=127.0.0.1
ORDO_PG_PORT=$pg_port
ORDO_PG_ADMIN_URL='postgresql://postgres:$admin@$base/postgres?connect_timeout=3&$tls_query'
ORDO_MIGRATOR_URL='postgresql://ordo_migrator:$migrator@$base/ordo?connect_timeout=3&$tls_query'
ORDO_COMMAND_DATABASE_URL='postgresql://ordo_command:$command@$base/ordo?connect_timeout=3&$tls_query'
ORDO_RELAY_DATABASE_URL='postgresql://ordo_relay:$relay@$base/ordo?connect_timeout=3&$tls_query'
ORDO_PROJECTOR_DATABASE_URL='postgresql://ordo_projector:$projector@$base/ordo?connect_timeout=3&$tls_query'
ORDO_SAGAS_DATABASE_URL='postgresql://ordo_sagas:$sagas@$base/ordo?connect_timeout=3&$tls_query'
ORDO_QUERY_DATABASE_URL='postgresql://ordo_query:$query@$base/ordo?connect_timeout=3&$tls_query'
ORDO_NATS_URL=tls://127.0.0.1:$nats_port
ORDO_NATS_CA_FILE=$tls/ca.crt
ORDO_COMMAND_NATS_URL=tls://ordo_command:$nats_command@127.0.0.1:$nats_port
ORDO_QUERY_NATS_URL=tls://ordo_query:$nats_query@127.0.0.1:$nats_port
ORDO_RELAY_NATS_URL=tls://ordo_relay:$nats_relay@127.0.0.1:$nats_port
ORDO_PROJECTOR_NATS_URL=tls://ordo_projector:$nats_projector@127.0.0.1:$nats_port
ORDO_SAGAS_NATS_URL=tls://ordo_sagas:$nats_sagas@127.0.0.1:$nats_port
ORDO_NATS_ADMIN_URL=tls://ordo_admin:$nats_admin@127.0.0.1:$nats_port
ORDO_NATS_PORT=$nats_port
ORDO_NATS_MONITOR_PORT=$nats_monitor_port
ORDO_STACK_DIR=$dir
PGPASSFILE=$dir/pgpass
PGSSLMODE=verify-full
PGSSLROOTCERT=$tls/ca.crt
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
        ensure_tls
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
    pg-start) ensure_tls; pg_start ;;
    pg-kill) pg_kill ;;
    nats-stop) nats_stop ;;
    nats-start) ensure_tls; nats_start ;;
    nats-kill) nats_kill ;;
    *) die "usage: stack.sh start|stop|status|wipe|pg-stop|pg-start|pg-kill|nats-stop|nats-start|nats-kill" ;;
esac
