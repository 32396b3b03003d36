#!/usr/bin/env python3
"""Checks the Kubernetes manifests offline, without a cluster (in the test command).

- ordo.yaml: a Deployment for every service, each with its image, `serve <service>`, the
  shared ConfigMap and its own Secret, readiness on /readyz and liveness on /healthz at
  its container port behind a startup probe, resource requests and a memory limit, Prometheus scrape annotations
  on that port, a non-root read-only sandbox, and a PodDisruptionBudget selecting exactly
  its pods; the command and query APIs behind a Service; the migration Job.
- monitoring.yaml: the PrometheusRule's groups identical to deploy/prometheus/alerts.yml,
  and a PodMonitor that names each service's job as the rules expect (ordo-<service>).
  `check.py --write` writes monitoring.yaml from alerts.yml.
- postgres-cluster.yaml: a CloudNativePG Cluster of three with a synchronous standby and
  every service role managed.
- nats-values.yaml: a three-node JetStream cluster with TLS and a user per service, and
  ordo.yaml's ORDO_NATS_REPLICAS at its size.
Prints what is wrong and exits 1; exits 0 when all holds.
"""
import copy
import pathlib
import sys

try:
    import yaml
except ImportError:  # ctest's skip code; deploy/install.sh installs python3-yaml
    print("PyYAML not found; install the python3-yaml package (deploy/install.sh)",
          file=sys.stderr)
    sys.exit(77)

HERE = pathlib.Path(__file__).resolve().parent
ALERTS = HERE.parent / "prometheus" / "alerts.yml"
SERVICES = {"command": 8080, "query": 8081, "relay": 8090, "projector": 8091, "sagas": 8092}
API_SERVICES = {"command", "query"}
ROLES = {"ordo_command", "ordo_relay", "ordo_projector", "ordo_sagas", "ordo_query"}

problems = []


def need(condition, what):
    if not condition:
        problems.append(what)
    return condition


def load_all(name):
    with open(HERE / name) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


def monitoring_documents():
    """monitoring.yaml's content, made from alerts.yml."""
    with open(ALERTS) as f:
        alerts = yaml.safe_load(f)
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "ordo", "labels": {"app.kubernetes.io/name": "ordo"}},
        "spec": {"groups": copy.deepcopy(alerts["groups"])},
    }
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "ordo", "labels": {"app.kubernetes.io/name": "ordo"}},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "ordo"}},
            "podMetricsEndpoints": [{
                "port": "https",
                "path": "/metrics",
                "scheme": "https",
                "tlsConfig": {"ca": {"secret": {"name": "ordo-tls", "key": "ca.crt"}},
                              # The name the services' certificate must carry for scrapes.
                              "serverName": "ordo-metrics"},
                # The rules name jobs ordo-<service>, as deploy/prometheus/prometheus.yml does.
                "relabelings": [{
                    "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
                    "targetLabel": "job",
                    "replacement": "ordo-$1",
                }, {
                    "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
                    "targetLabel": "service",
                }],
            }],
        },
    }
    return [monitor, rule]


def write_monitoring():
    header = ("# Made from deploy/prometheus/alerts.yml by `deploy/kubernetes/check.py --write`;\n"
              "# check.py fails when the two differ. For the Prometheus Operator: the alert\n"
              "# rules, and a PodMonitor that scrapes every Ordo pod as job ordo-<service>.\n")
    with open(HERE / "monitoring.yaml", "w") as f:
        f.write(header)
        yaml.safe_dump_all(monitoring_documents(), f, sort_keys=False, width=100)


def check_ordo():
    docs = load_all("ordo.yaml")
    deployments = by_kind(docs, "Deployment")
    pdbs = by_kind(docs, "PodDisruptionBudget")
    services = by_kind(docs, "Service")
    config = by_kind(docs, "ConfigMap").get("ordo")
    need(config is not None, "ordo.yaml: no ConfigMap ordo")
    need(set(deployments) == {f"ordo-{s}" for s in SERVICES},
         f"ordo.yaml: Deployments {sorted(deployments)}, want one per service")
    for service, port in SERVICES.items():
        name = f"ordo-{service}"
        d = deployments.get(name)
        if d is None:
            continue
        where = f"ordo.yaml: Deployment {name}"
        spec = d["spec"]
        need(spec.get("replicas", 1) >= 2, f"{where}: fewer than two replicas")
        labels = spec["template"]["metadata"].get("labels", {})
        need(spec["selector"]["matchLabels"].items() <= labels.items(),
             f"{where}: the selector does not match the pod labels")
        pod = spec["template"]["spec"]
        sc = pod.get("securityContext", {})
        need(sc.get("runAsNonRoot") is True, f"{where}: may run as root")
        need(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
             f"{where}: no RuntimeDefault seccomp profile")
        containers = pod.get("containers", [])
        if not need(len(containers) == 1, f"{where}: want one container"):
            continue
        c = containers[0]
        need(bool(c.get("image")), f"{where}: no image")
        need(c.get("args") == ["serve", service], f"{where}: args {c.get('args')}")
        env_from = {(next(iter(k for k in e if k.endswith("Ref"))),
                     next(iter(e.values()))["name"]) for e in c.get("envFrom", [])}
        need(("configMapRef", "ordo") in env_from, f"{where}: without the ConfigMap ordo")
        need(("secretRef", name) in env_from, f"{where}: without its Secret {name}")
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        need(env.get(f"ORDO_{service.upper()}_ADDR") == f"0.0.0.0:{port}",
             f"{where}: ORDO_{service.upper()}_ADDR is not 0.0.0.0:{port}")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        need(ports.get("https") == port, f"{where}: container port https is not {port}")
        for probe, path in (("startupProbe", "/healthz"), ("readinessProbe", "/readyz"),
                            ("livenessProbe", "/healthz")):
            get = c.get(probe, {}).get("httpGet", {})
            need(get.get("path") == path and get.get("port") in ("https", port) and
                 get.get("scheme") == "HTTPS", f"{where}: {probe} is not HTTPS {path} on {port}")
        requests = c.get("resources", {}).get("requests", {})
        need("cpu" in requests and "memory" in requests, f"{where}: no cpu and memory requests")
        need("memory" in c.get("resources", {}).get("limits", {}), f"{where}: no memory limit")
        csc = c.get("securityContext", {})
        need(csc.get("allowPrivilegeEscalation") is False and
             csc.get("readOnlyRootFilesystem") is True and
             csc.get("capabilities", {}).get("drop") == ["ALL"],
             f"{where}: the container is not sandboxed (privilege escalation, writable root, "
             "capabilities)")
        annotations = spec["template"]["metadata"].get("annotations", {})
        need(annotations.get("prometheus.io/scrape") == "true" and
             annotations.get("prometheus.io/port") == str(port) and
             annotations.get("prometheus.io/path") == "/metrics",
             f"{where}: no Prometheus scrape annotations for port {port}")
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        need("/etc/ordo/tls" in mounts, f"{where}: the TLS Secret is not mounted")
        need("/etc/ordo/pg-ca" in mounts, f"{where}: PostgreSQL's CA is not mounted")
        if service in API_SERVICES:
            need("/etc/ordo/tokens" in mounts, f"{where}: the token file is not mounted")
            svc = services.get(name)
            need(svc is not None and svc["spec"]["selector"] == spec["selector"]["matchLabels"],
                 f"ordo.yaml: no Service {name} selecting its pods")
        pdb = pdbs.get(name)
        need(pdb is not None and pdb["spec"]["selector"]["matchLabels"] ==
             spec["selector"]["matchLabels"] and pdb["spec"].get("minAvailable", 0) >= 1,
             f"ordo.yaml: no PodDisruptionBudget keeping one {name} pod")
    jobs = [j for name, j in by_kind(docs, "Job").items() if name.startswith("ordo-migrate")]
    job = jobs[0] if len(jobs) == 1 else None
    if need(job is not None, "ordo.yaml: not exactly one migration Job ordo-migrate-<release>"):
        c = job["spec"]["template"]["spec"]["containers"][0]
        need(c.get("args") == ["migrate"], "ordo.yaml: the Job does not run `ordo migrate`")


def check_monitoring():
    docs = load_all("monitoring.yaml")
    want = monitoring_documents()
    need(docs == want, "monitoring.yaml differs from deploy/prometheus/alerts.yml "
         "(run deploy/kubernetes/check.py --write)")


def check_postgres():
    clusters = by_kind(load_all("postgres-cluster.yaml"), "Cluster")
    c = clusters.get("ordo-pg")
    if not need(c is not None, "postgres-cluster.yaml: no Cluster ordo-pg"):
        return
    spec = c["spec"]
    need(spec.get("instances", 1) >= 3, "postgres-cluster.yaml: fewer than three instances")
    need(spec.get("minSyncReplicas", 0) >= 1, "postgres-cluster.yaml: no synchronous standby")
    need(spec["bootstrap"]["initdb"].get("owner") == "ordo_migrator",
         "postgres-cluster.yaml: the database is not ordo_migrator's")
    managed = {r["name"] for r in spec.get("managed", {}).get("roles", [])}
    need(managed == ROLES, f"postgres-cluster.yaml: managed roles {sorted(managed)}")


def check_nats():
    with open(HERE / "nats-values.yaml") as f:
        values = yaml.safe_load(f)
    config = values.get("config", {})
    need(config.get("cluster", {}).get("enabled") is True and
         config["cluster"].get("replicas") == 3, "nats-values.yaml: not a three-node cluster")
    ordo_config = by_kind(load_all("ordo.yaml"), "ConfigMap").get("ordo") or {}
    need(ordo_config.get("data", {}).get("ORDO_NATS_REPLICAS") == "3",
         "ordo.yaml: ORDO_NATS_REPLICAS is not 3, the NATS cluster's size: a node lost would "
         "take the stream's only copy")
    need(config.get("jetstream", {}).get("enabled") is True, "nats-values.yaml: no JetStream")
    need(config.get("nats", {}).get("tls", {}).get("enabled") is True,
         "nats-values.yaml: clients without TLS")
    users = {u["user"]: u for u in config.get("merge", {}).get("authorization", {})
             .get("users", [])}
    need(set(users) == ROLES, f"nats-values.yaml: users {sorted(users)}")
    for name in ("ordo_command", "ordo_query"):
        if name in users:
            need(users[name]["permissions"]["publish"] == {"deny": [">"]},
                 f"nats-values.yaml: {name} may publish")


def main():
    if sys.argv[1:] == ["--write"]:
        write_monitoring()
    elif sys.argv[1:]:
        print("usage: check.py [--write]", file=sys.stderr)
        return 2
    check_ordo()
    check_monitoring()
    check_postgres()
    check_nats()
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print("Kubernetes manifests: every check holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
