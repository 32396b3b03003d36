#!/usr/bin/env bash
# Checks the systemd units offline: `systemd-analyze verify` of every instance of the
# template, the migration unit and the target (with ExecStart pointed at the binary under
# test, which verify requires to exist), and `systemd-analyze security` of each service,
# whose exposure must stay at or below 2.0 ("OK"; an unsandboxed service scores 9.6).
# Usage: check.sh ORDO_BINARY. Exits 77 (skipped) when systemd-analyze is not installed;
# deploy/install.sh installs it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary=$(realpath "${1:?usage: check.sh ORDO_BINARY}")
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "systemd-analyze not found; install the systemd package (deploy/install.sh)" >&2
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in ordo@.service ordo-migrate.service ordo.target; do
    sed "s|/usr/local/bin/ordo|$binary|g" "$here/$unit" >"$work/$unit"
done
services=(command query relay projector sagas)
units=(ordo-migrate.service ordo.target)
for s in "${services[@]}"; do
    ln -s ordo@.service "$work/ordo@$s.service"
    units+=("ordo@$s.service")
done
cd "$work"
# verify prints its findings (unknown settings, bad values, a missing binary) and fails.
out=$(systemd-analyze verify --man=no "${units[@]}" 2>&1) || {
    echo "$out" >&2
    exit 1
}
if [[ -n $out ]]; then
    echo "systemd-analyze verify complained:" >&2
    echo "$out" >&2
    exit 1
fi
status=0
for unit in ordo-migrate.service "ordo@command.service"; do
    line=$(systemd-analyze security --offline=yes "$unit" | grep 'Overall exposure level')
    echo "$line"
    level=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$line")
    if awk -v l="$level" 'BEGIN { exit !(l > 2.0) }'; then
        echo "$unit: exposure $level is above 2.0" >&2
        status=1
    fi
done
echo "systemd units verified: ${units[*]}"
exit $status
