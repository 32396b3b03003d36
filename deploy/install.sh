#!/usr/bin/env bash
# Installs, with apt, the Debian packages Ordo needs to build, test and run — only those
# missing. Idempotent, and quiet when everything is there.
set -euo pipefail

packages=(
    build-essential cmake ninja-build pkg-config ccache git
    libpqxx-dev libboost1.81-dev libboost-url1.81-dev nlohmann-json3-dev libnats-dev
    libspdlog-dev libfmt-dev libcli11-dev libgtest-dev libgmock-dev libssl-dev openssl
    postgresql-15 postgresql-client-15 nats-server
    prometheus prometheus-alertmanager
    wrk
    # clock faults in the soak (tests/soak): a service's wall clock jumped
    libfaketime
    # libFuzzer and the sanitizer runtimes clang links in (not always pulled in with it)
    clang-16 libfuzzer-16-dev libclang-rt-16-dev
    # the deploy artifacts' offline checks: systemd-analyze for the units, PyYAML for the
    # Kubernetes manifests (deploy/systemd/check.sh, deploy/kubernetes/check.py)
    systemd python3-yaml
    # the highly available cluster (deploy/cluster.sh, `ordo dev --ha`, the HA fault test);
    # Patroni's etcd client speaks HTTPS through urllib3, which needs idna but only suggests
    # it: without it Patroni never reaches etcd on a bare machine
    patroni python3-etcd python3-idna etcd-server etcd-client haproxy curl
    # headless-browser tests of the console (tests/support/browser.hpp)
    chromium fonts-dejavu-core
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
    echo "install.sh: missing packages: ${missing[*]}; run as root (or with sudo)" >&2
    exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Debian's postgresql package would create and start a cluster of its own; Ordo runs its own.
mkdir -p /etc/postgresql-common
if ! grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
    echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
fi
# Keep the createcluster.conf written above if the package ships its own.
apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
