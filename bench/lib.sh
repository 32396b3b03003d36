# shellcheck shell=bash disable=SC2034,SC2154  # `build`, `root` serve the scripts that source this; `db` is theirs
# Sourced by the benchmarks' run.sh scripts: where Ordo is, and the stack they run against.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${ORDO_BUILD_DIR:-$root/build}

# Builds Ordo, starts the local stack unless it runs (ORDO_STACK_DIR and the port settings
# choose which), and exports its settings.
start_stack() {
    "$root/ordo.sh" build
    "$root/deploy/stack.sh" start
    set -a
    # shellcheck disable=SC1091
    source "${ORDO_STACK_DIR:-$root/.ordo/dev}/stack.env"
    set +a
    # PostgreSQL's own psql (deploy/stack-common.sh's pg_bin), not Debian's Perl wrapper of
    # it, which costs about 25 ms of processor time a call beside the services measured.
    PATH=$(sed -n 's/^pg_bin=//p' "$root/deploy/stack-common.sh"):$PATH
}

# A stack URL without its password: libpq finds that in PGPASSFILE (stack.env names it),
# so that no password appears on a command line.
no_password() { sed -E 's#^(postgresql://[^:/@]+):[^@]*@#\1@#' <<<"$1"; }

# A stack URL ($1, naming the database ordo) for the benchmark's database, $db, without
# its password.
db_url() {
    local url
    url=$(no_password "$1")
    echo "${url%%/ordo\?*}/$db?${url#*\?}"
}

# psql as the stack's administrator, quiet and unaligned: one statement, its rows.
admin_psql() { psql "$(no_password "$ORDO_PG_ADMIN_URL")" -qAtc "$1"; }

# A random port below the ephemeral range that nothing listens on, above the ports tests
# reserve for their services (10000-24000) and the test stack's (25xxx).
free_port() {
    local port
    while :; do
        port=$((26000 + RANDOM % 6000))
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    done
}

# Waits until the service on port $1 answers /readyz with 200 (30 s at most).
wait_ready() {
    for _ in $(seq 300); do
        curl -fs "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "service on port $1 did not become ready" >&2
    exit 1
}
