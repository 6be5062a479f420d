"""Namespace ``monitoring``, part 1: Prometheus (TSDB volume owned by 65534) and AlertManager.

``prometheus-config`` holds ``prometheus.yml`` and the ``alerts.yml`` rule file it names with a
path relative to the config file, so ``promtool check config`` passes when every key of the
ConfigMap is written into one folder (as the pod mounts it at ``/etc/prometheus``). AlertManager's
whole configuration is a Secret, because it embeds the SMTP password and the Slack webhook URL.
"""

from __future__ import annotations

from _gen import basics, kit, networking
from _gen.common import Obj, secret_token
from _gen.server import Cluster, applied
from _gen.storage import provision
from _gen.topology import NODES
from _gen.workloads import Placement, deployment

NS = "monitoring"
CREATED = "2024-06-10T08:55:00Z"
RESTARTED = "2025-01-06T11:05:47Z"

PROMETHEUS_YML = """\
global:
  scrape_interval: 30s
  evaluation_interval: 30s
  external_labels:
    cluster: prod-k8s
alerting:
  alertmanagers:
    - static_configs:
        - targets:
            - alertmanager.monitoring.svc:9093
rule_files:
  - alerts.yml
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets:
          - localhost:9090
  - job_name: kubernetes-pods
    kubernetes_sd_configs:
      - role: pod
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
        action: replace
        target_label: __metrics_path__
        regex: (.+)
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
  - job_name: kubernetes-service-endpoints
    kubernetes_sd_configs:
      - role: endpoints
    relabel_configs:
      - source_labels: [__meta_kubernetes_service_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - source_labels: [__meta_kubernetes_service_name]
        target_label: service
  - job_name: grafana
    static_configs:
      - targets:
          - grafana-lb.monitoring.svc:80
  - job_name: loki
    static_configs:
      - targets:
          - loki.monitoring.svc:3100
  - job_name: alertmanager
    static_configs:
      - targets:
          - alertmanager.monitoring.svc:9093
"""

ALERTS_YML = """\
groups:
  - name: prod-k8s
    rules:
      - alert: TargetDown
        expr: up == 0
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.job }} target {{ $labels.instance }} is down"
      - alert: PersistentVolumeFillingUp
        expr: kubelet_volume_stats_available_bytes / kubelet_volume_stats_capacity_bytes < 0.10
        for: 15m
        labels:
          severity: critical
        annotations:
          summary: "PVC {{ $labels.persistentvolumeclaim }} in {{ $labels.namespace }} is almost full"
      - record: namespace:container_cpu_usage_seconds:rate5m
        expr: sum by (namespace) (rate(container_cpu_usage_seconds_total[5m]))
"""


def alertmanager_yml() -> str:
    """AlertManager's configuration (held in a Secret: it embeds credentials)."""
    smtp = secret_token("alertmanager-smtp-password", 32)
    hook = "https://hooks.slack.com/services/T04EXAMPLE/B07EXAMPLE/" + secret_token("slack-webhook", 24)
    return f"""\
global:
  resolve_timeout: 5m
  smtp_smarthost: smtp.tem.scw.cloud:587
  smtp_from: alerts@example.org
  smtp_auth_username: alerts@example.org
  smtp_auth_password: {smtp}
templates:
  - /etc/alertmanager/templates/*.tmpl
route:
  receiver: ops-email
  group_by: [alertname, namespace]
  routes:
    - matchers:
        - severity="critical"
      receiver: ops-slack
receivers:
  - name: ops-email
    email_configs:
      - to: ops@example.org
  - name: ops-slack
    slack_configs:
      - api_url: {hook}
        channel: "#ops-alerts"
        send_resolved: true
"""


def _prometheus_access(c: Cluster, labels: dict[str, str]) -> None:
    basics.service_account(c, NS, "prometheus", "2024-06-10T08:58:00Z", labels=labels)
    basics.token_secret(c, NS, "prometheus", "prometheus-token", "2024-06-10T08:58:02Z", "2025-01-19T00:00:00Z")
    read = ["get", "list", "watch"]
    rules = [
        {"apiGroups": [""], "resources": ["nodes", "nodes/metrics", "services", "endpoints", "pods"], "verbs": read},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
    ]
    _cluster_rbac(c, "prometheus", rules, "prometheus", "2024-06-10T08:58:01Z")


def _prometheus_deployment(labels: dict[str, str]) -> Obj:
    args = ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
    container: Obj = {
        "name": "prometheus",
        "image": "quay.io/prometheus/prometheus:v2.53.0",
        "args": args + ["--storage.tsdb.retention.time=15d", "--web.enable-lifecycle"],
        "ports": [{"name": "web", "containerPort": 9090}],
        "readinessProbe": {"httpGet": {"path": "/-/ready", "port": "web"}},
        "resources": {"requests": {"cpu": "200m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/prometheus"},
            {"name": "data", "mountPath": "/prometheus"},
        ],
    }
    pod_spec = {
        "serviceAccountName": "prometheus",
        "securityContext": {"fsGroup": 65534, "runAsGroup": 65534, "runAsNonRoot": True, "runAsUser": 65534},
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": "prometheus-config"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "prometheus-data"}},
        ],
    }
    return kit.app_deployment(NS, "prometheus", labels, pod_spec, recreate=True)


def _prometheus(c: Cluster) -> None:
    labels = {"app.kubernetes.io/name": "prometheus"}
    _prometheus_access(c, labels)
    config = {"prometheus.yml": PROMETHEUS_YML, "alerts.yml": ALERTS_YML}
    basics.config_map(c, NS, "prometheus-config", "2024-06-10T08:58:03Z", config, labels=labels)
    provision(c, kit.claim(NS, "prometheus-data", labels, "20Gi"), "2024-06-10T08:58:05Z", NODES[1])
    deployment(c, _prometheus_deployment(labels), "2024-06-10T08:58:10Z", [Placement(NODES[1], RESTARTED)])
    _service(c, "prometheus", 9090, "web", labels, "2024-06-10T08:58:11Z")


def _service(c: Cluster, name: str, port: int, target: str, labels: dict[str, str], created: str) -> Obj:
    pods = [
        o
        for o in c.objects
        if o["kind"] == "Pod"
        and o["metadata"]["namespace"] == NS
        and all(o["metadata"]["labels"].get(k) == v for k, v in labels.items())
    ]
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": dict(labels),
            "annotations": {"prometheus.io/scrape": "true"},
        },
        "spec": {"selector": dict(labels), "ports": [{"name": target, "port": port, "targetPort": target}]},
    }
    return networking.service(c, svc, created, pods=pods)


def _cluster_rbac(c: Cluster, name: str, rules: list[Obj], sa: str, created: str) -> None:
    applied(
        c,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        },
        created,
    )
    applied(
        c,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": NS}],
        },
        created,
    )


def _alertmanager(c: Cluster) -> None:
    labels = {"app.kubernetes.io/name": "alertmanager"}
    created = "2024-06-11T14:20:00Z"
    basics.secret(c, NS, "alertmanager-config", created, {"alertmanager.yml": alertmanager_yml()}, labels=labels)
    basics.config_map(
        c,
        NS,
        "alertmanager-templates",
        created,
        {"ops.tmpl": ('{{ define "ops.title" }}[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}{{ end }}\n')},
        labels=labels,
    )
    container: Obj = {
        "name": "alertmanager",
        "image": "quay.io/prometheus/alertmanager:v0.27.0",
        "args": ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"],
        "ports": [{"name": "web", "containerPort": 9093}],
        "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/alertmanager"},
            {"name": "templates", "mountPath": "/etc/alertmanager/templates"},
            {"name": "storage", "mountPath": "/alertmanager"},
        ],
    }
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "alertmanager", "namespace": NS, "labels": dict(labels)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "fsGroup": 65534},
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "secret": {"secretName": "alertmanager-config"}},
                        {"name": "templates", "configMap": {"name": "alertmanager-templates"}},
                        {"name": "storage", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    deployment(c, manifest, created, [Placement(NODES[0], RESTARTED)])
    _service(c, "alertmanager", 9093, "web", labels, "2024-06-11T14:20:01Z")


def build(c: Cluster) -> None:
    """Create the namespace, Prometheus and AlertManager."""
    basics.namespace(c, NS, CREATED)
    _prometheus(c)
    _alertmanager(c)
