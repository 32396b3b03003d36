# What the local stacks share, sourced by deploy/stack.sh (one PostgreSQL, one nats-server) and
# deploy/cluster.sh (Patroni over etcd, three NATS nodes, HAProxy): the secrets, the private CA
# and its certificates, the folder PostgreSQL's owner can reach, the NATS users and their
# permissions, and stack.env, the one file every service, test and tool reads the connection
# settings from. The caller sets `root` (the repository) and `dir` (the stack folder) first.
# shellcheck shell=bash

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pg_bin=/usr/lib/postgresql/15/bin
stack_name=${stack_name:-stack}

say() { echo "$stack_name: $*" >&2; }
die() { echo "$stack_name: $*" >&2; exit 1; }

wait_for() {  # wait_for <what> <seconds> <command...>
    local what=$1 seconds=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        ((SECONDS < deadline)) || die "$what did not become ready within ${seconds}s"
        sleep 0.1
    done
}

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

# Removes the stack folder and the PostgreSQL folder beside it, when it is a fallback.
wipe_folders() {
    rm -rf "$(dirname "$pg_home")/pg" "$dir"
    [[ $pg_home == "$dir/pg" ]] || rm -rf "$(dirname "$pg_home")"
}

secret() { head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }

# One password per database role (ordo_<name>) and per NATS user (nats_<name>, one per
# service and an administrator for operators, tools and the test suite), generated once; a
# secrets file from an older release gets those it lacks added. `extra_secrets` names more
# (the cluster's replication, rewind and API users).
roles="migrator command relay projector sagas query"
nats_users="command query relay projector sagas admin"

ensure_secrets() {
    local file="$dir/secrets" name
    # Only this file is private; a umask left behind would also close the folders the
    # cluster's owner must traverse.
    (umask 077 && touch "$file")
    for name in admin $roles ${extra_secrets:-}; do
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
    rm -f "$tls"/postgres.crt "$tls"/nats*.crt "$tls"/etcd*.crt  # issued by a CA that is gone
}

# A third argument sets the extended key usage (default serverAuth; a peer that is both
# server and client of its kind, as etcd members are, needs serverAuth,clientAuth).
ensure_server_cert() {  # ensure_server_cert <name> <owner of the key> [extended key usage]
    local name=$1 owner=$2 usage=${3:-serverAuth} crt="$tls/$1.crt" key="$tls/$1.key"
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
                    "extendedKeyUsage=$usage") 2>/dev/null
    ) || die "cannot issue the $name certificate"
    chmod 644 "$crt"
    chown "$owner" "$key"
}

# The script's own connections verify the server like every client.
export PGSSLMODE=verify-full PGSSLROOTCERT="$tls/ca.crt"

# The subjects of the defaults the services run with; a stack for other names takes them from
# the same settings as the services.
nats_stream=${ORDO_NATS_STREAM:-ORDO_EVENTS}
nats_subjects=${ORDO_NATS_SUBJECT_PREFIX:-ordo.events}
breaker_bucket=${ORDO_BREAKER_BUCKET:-ordo_breakers}

# nats_healthy <monitoring port> [query]: whether that nats-server's /healthz answers 200
# within 3 s (with `?js-enabled-only=true`, only that JetStream runs; without, also that every
# stream it holds a copy of is current).
nats_healthy() (
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || exit 1
    printf 'GET /healthz%s HTTP/1.0\r\n\r\n' "${2:-}" >&3
    reply=$(timeout 3 cat <&3)
    [[ $reply == *"200 OK"* ]]
)

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

# The client side of a nats-server config: TLS with the stack's certificate, and the users.
# What each service may do, and nothing else (docs/security.md, "What NATS trusts"). Replies
# to a client's JetStream API requests and its consumers' deliveries arrive on its inbox,
# _INBOX.>; no service may publish there, so none can forge another's replies.
nats_client_config() {
    # shellcheck disable=SC2016  # $JS is a literal subject token
    local api='$JS.API' s=$nats_stream kv="KV_$breaker_bucket"
    # The subjects cnats 3.4 uses, as a trace of the services shows: an ordered consumer is
    # an unnamed ephemeral consumer, deleted on unsubscribe, that asks for flow control.
    local consume=("$api.CONSUMER.CREATE.$s" "$api.CONSUMER.DELETE.$s.*" "\$JS.FC.$s.>")
    cat <<CONF
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
}

# write_env <pg host:port,...> <libpq parameters to add> <nats host:port,...> [more lines]:
# $dir/stack.env, the connection settings of every role and NATS user, and $dir/pgpass. A
# list of hosts becomes a multi-host URL (libpq tries them in turn; with
# target_session_attrs=primary it keeps only the primary) and a NATS server list.
write_env() {
    local pg_hosts=$1 pg_params=$2 nats_hosts=$3
    shift 3
    # Every PostgreSQL URL verifies the server against the stack's CA and name. Values with
    # `&` are in single quotes so that shells can source the file (ordo reads them alike).
    local url_params="connect_timeout=3&sslmode=verify-full&sslrootcert=$tls/ca.crt$pg_params"
    local first_pg=${pg_hosts%%,*} first_nats=${nats_hosts%%,*}
    pg_url() { echo "'postgresql://$1:$2@$pg_hosts/$3?$url_params'"; }
    nats_url() {  # nats_url [user password]
        local out="" hostport
        for hostport in ${nats_hosts//,/ }; do
            out+="${out:+,}tls://${1:+$1:$2@}$hostport"
        done
        echo "$out"
    }
    umask 077
    {
        echo "ORDO_PG_HOST=${first_pg%:*}"
        echo "ORDO_PG_PORT=${first_pg##*:}"
        echo "ORDO_PG_ADMIN_URL=$(pg_url postgres "$admin" postgres)"
        echo "ORDO_MIGRATOR_URL=$(pg_url ordo_migrator "$migrator" ordo)"
        local name upper
        for name in command relay projector sagas query; do
            upper=${name^^}
            echo "ORDO_${upper}_DATABASE_URL=$(pg_url "ordo_$name" "${!name}" ordo)"
        done
        echo "ORDO_NATS_URL=$(nats_url)"
        echo "ORDO_NATS_CA_FILE=$tls/ca.crt"
        for name in command query relay projector sagas; do
            local var="nats_$name"
            upper=${name^^}
            echo "ORDO_${upper}_NATS_URL=$(nats_url "ordo_$name" "${!var}")"
        done
        echo "ORDO_NATS_ADMIN_URL=$(nats_url ordo_admin "$nats_admin")"
        echo "ORDO_NATS_PORT=${first_nats##*:}"
        echo "ORDO_STACK_DIR=$dir"
        echo "PGPASSFILE=$dir/pgpass"
        echo "PGSSLMODE=verify-full"
        echo "PGSSLROOTCERT=$tls/ca.crt"
        local line
        for line in "$@"; do echo "$line"; done
    } >"$dir/stack.env"
    # The same passwords for libpq, so that scripts can pass URLs without them on command
    # lines (psql, pgbench, ordo migrate --database-url).
    local hostport
    for hostport in ${pg_hosts//,/ }; do
        echo "$hostport:*:postgres:$admin"
        for name in $roles; do echo "$hostport:*:ordo_$name:${!name}"; done
    done >"$dir/pgpass"
    umask 022
}

# Creates Ordo's roles and database through `psql` arguments (a URL reaching the primary).
apply_roles() {
    # The roles' passwords go in on standard input, never on a command line.
    {
        local name
        for name in $roles; do
            printf "\\set %s_password '%s'\n" "$name" "${!name}"
        done
        cat "$root/deploy/postgres/roles.sql"
    } | PGPASSWORD=$admin psql "$@" -qAt -v ON_ERROR_STOP=1 -f - >/dev/null
}
