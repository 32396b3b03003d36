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
