#!/usr/bin/env bash
# Starts and stops Prometheus and Alertmanager (Debian's packages) against the running
# stack of `ordo dev`, with their data under the stack's folder. Prometheus scrapes every
# Ordo service (deploy/prometheus/prometheus.yml) and evaluates the alert rules
# (alerts.yml); Alertmanager routes them (alertmanager.yml).
#
#   monitoring.sh start | stop | status
#
# Settings (environment): ORDO_STACK_DIR (default .ordo/dev in the repository),
# ORDO_PROMETHEUS_PORT (9090), ORDO_ALERTMANAGER_PORT (9093; prometheus.yml sends alerts
# there), ORDO_PROMETHEUS_CONFIG (deploy/prometheus/prometheus.yml),
# ORDO_ALERTMANAGER_CONFIG (deploy/prometheus/alertmanager.yml).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${ORDO_STACK_DIR:-$root/.ordo/dev}/monitoring
prometheus_port=${ORDO_PROMETHEUS_PORT:-9090}
alertmanager_port=${ORDO_ALERTMANAGER_PORT:-9093}
prometheus_config=${ORDO_PROMETHEUS_CONFIG:-$root/deploy/prometheus/prometheus.yml}
alertmanager_config=${ORDO_ALERTMANAGER_CONFIG:-$root/deploy/prometheus/alertmanager.yml}

say() { echo "monitoring: $*" >&2; }
die() { echo "monitoring: $*" >&2; exit 1; }

for port in "$prometheus_port" "$alertmanager_port"; do
    [[ $port =~ ^[0-9]{1,5}$ && $port -ge 1 && $port -le 65535 ]] || die "invalid port: $port"
done

running() { [[ -f $dir/$1.pid ]] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

wait_ready() {  # name url
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null "$2" 2>/dev/null; then return 0; fi
        running "$1" || die "$1 exited; see $dir/$1.log"
        sleep 0.1
    done
    die "$1 did not become ready; see $dir/$1.log"
}

start() {
    command -v prometheus >/dev/null || die "prometheus not installed (deploy/install.sh)"
    command -v prometheus-alertmanager >/dev/null ||
        die "prometheus-alertmanager not installed (deploy/install.sh)"
    mkdir -p "$dir/prometheus" "$dir/alertmanager"
    if running alertmanager; then
        say "alertmanager already running"
    else
        prometheus-alertmanager --config.file="$alertmanager_config" \
            --storage.path="$dir/alertmanager" \
            --web.listen-address="127.0.0.1:$alertmanager_port" \
            --cluster.listen-address= >>"$dir/alertmanager.log" 2>&1 &
        echo $! >"$dir/alertmanager.pid"
        wait_ready alertmanager "http://127.0.0.1:$alertmanager_port/-/ready"
    fi
    if running prometheus; then
        say "prometheus already running"
    else
        prometheus --config.file="$prometheus_config" --storage.tsdb.path="$dir/prometheus" \
            --storage.tsdb.retention.time=7d \
            --web.listen-address="127.0.0.1:$prometheus_port" >>"$dir/prometheus.log" 2>&1 &
        echo $! >"$dir/prometheus.pid"
        wait_ready prometheus "http://127.0.0.1:$prometheus_port/-/ready"
    fi
    say "Prometheus on http://127.0.0.1:$prometheus_port (targets: /targets, alerts: /alerts)"
    say "Alertmanager on http://127.0.0.1:$alertmanager_port (data and logs in $dir)"
}

stop() {
    for name in prometheus alertmanager; do
        if running "$name"; then
            kill "$(cat "$dir/$name.pid")"
            for _ in $(seq 1 100); do running "$name" || break; sleep 0.1; done
            say "$name stopped"
        fi
        rm -f "$dir/$name.pid"
    done
}

status() {
    for name in prometheus alertmanager; do
        if running "$name"; then say "$name running (pid $(cat "$dir/$name.pid"))"; else say "$name stopped"; fi
    done
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: monitoring.sh start | stop | status" ;;
esac
