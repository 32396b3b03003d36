#!/usr/bin/env bash
# Installs the public PostgreSQL event stores that bench/append measures beside Ordo, at the
# versions package.json and package-lock.json here pin, into the folder $1 (run.sh passes
# .ordo/bench-peers, which git ignores) with `npm ci`, and copies the Emmett driver script
# beside them so that its imports resolve there. Nothing is downloaded when the folder
# already holds exactly these versions. npm's own output goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dest=${1:?usage: install.sh <folder>}
mkdir -p "$dest"
# `installed.lock` is written only after a complete install, so a broken one is redone.
if ! cmp -s "$here/package-lock.json" "$dest/installed.lock" || [[ ! -d $dest/node_modules ]]; then
    echo "bench/append: installing the peer event stores into $dest" >&2
    rm -f "$dest/installed.lock"
    cp "$here/package.json" "$here/package-lock.json" "$dest/"
    npm ci --prefix "$dest" --no-audit --no-fund --loglevel=error >&2
    cp "$here/package-lock.json" "$dest/installed.lock"
fi
cp "$here/emmett_append.mjs" "$dest/"
