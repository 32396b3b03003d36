#!/usr/bin/env bash
# Validates the monitoring configuration: the Prometheus config and rules, the rule unit
# tests, and the Alertmanager configs. Exits 77 (skipped) when promtool is not installed;
# deploy/install.sh installs it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool not found; install the prometheus package (deploy/install.sh)" >&2
    exit 77
fi
promtool check config "$here/prometheus.yml"
promtool test rules "$here"/*_test.yml
if command -v amtool >/dev/null 2>&1; then
    for config in "$here"/alertmanager*.yml; do
        amtool check-config "$config"
    done
else
    echo "amtool not found; Alertmanager configs not checked" >&2
fi
