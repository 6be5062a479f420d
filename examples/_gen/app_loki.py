"""Namespace ``monitoring``, part 3: Loki, installed with Helm (release ``loki``, three revisions).

A single-binary StatefulSet with a ``storage`` volumeClaimTemplate (so its claim is
``storage-loki-0``), a headless governing Service ``loki-headless`` (``clusterIP: None``), a
ClusterIP Service, its config in a ConfigMap and the ``sh.helm.release.v1.loki.v1..v3`` Secrets.
"""

from __future__ import annotations

from _gen import helm, networking
from _gen.common import Obj
from _gen.server import Cluster, applied, helm_managed
from _gen.topology import NODES
from _gen.workloads import Placement, statefulset

NS = "monitoring"
RELEASE = "loki"
CHART = helm.Chart(
    "loki",
    "6.6.4",
    "3.0.0",
    "Helm chart for Grafana Loki and Grafana Enterprise Logs supporting both simple scalable and single binary mode.",
    "https://grafana.github.io/helm-charts",
    {
        "single-binary/statefulset.yaml": "apiVersion: apps/v1\nkind: StatefulSet\n{{- /* trimmed */}}\n",
        "single-binary/service.yaml": "apiVersion: v1\nkind: Service\n{{- /* trimmed */}}\n",
    },
    {"deploymentMode": "SimpleScalable", "loki": {"auth_enabled": True}},
)
REVISIONS = [
    helm.Revision("2024-06-10T09:20:14Z", {"deploymentMode": "SingleBinary", "loki": {"auth_enabled": False}}),
    helm.Revision(
        "2024-09-03T16:02:51Z",
        {
            "deploymentMode": "SingleBinary",
            "loki": {"auth_enabled": False},
            "singleBinary": {"persistence": {"size": "10Gi"}},
        },
    ),
    helm.Revision(
        "2024-12-09T10:44:37Z",
        {
            "deploymentMode": "SingleBinary",
            "loki": {"auth_enabled": False, "limits_config": {"retention_period": "744h"}},
            "singleBinary": {"persistence": {"size": "10Gi", "storageClass": "scw-bssd"}},
        },
    ),
]
LOKI_CONFIG = """\
auth_enabled: false
server:
  http_listen_port: 3100
  grpc_listen_port: 9095
common:
  path_prefix: /var/loki
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory
  storage:
    filesystem:
      chunks_directory: /var/loki/chunks
      rules_directory: /var/loki/rules
schema_config:
  configs:
    - from: "2024-04-01"
      store: tsdb
      object_store: filesystem
      schema: v13
      index:
        prefix: index_
        period: 24h
limits_config:
  retention_period: 744h
compactor:
  working_directory: /var/loki/compactor
  retention_enabled: true
  delete_request_store: filesystem
"""
_SELECTOR = {
    "app.kubernetes.io/component": "single-binary",
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/name": "loki",
}


def _helm(manifest: Obj) -> Obj:
    return helm_managed(manifest, RELEASE, NS, CHART.label, CHART.app_version)


def _container() -> Obj:
    mounts = [("config", "/etc/loki/config"), ("storage", "/var/loki"), ("tmp", "/tmp")]
    return {
        "name": "loki",
        "image": "docker.io/grafana/loki:3.0.0",
        "args": ["-config.file=/etc/loki/config/config.yaml", "-target=all"],
        "ports": [{"name": "http-metrics", "containerPort": 3100}, {"name": "grpc", "containerPort": 9095}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http-metrics"}, "initialDelaySeconds": 30},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        "volumeMounts": [{"name": n, "mountPath": p} for n, p in mounts],
    }


def _statefulset() -> Obj:
    claim = {
        "metadata": {"name": "storage"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "scw-bssd",
            "resources": {"requests": {"storage": "10Gi"}},
        },
    }
    pod_spec = {
        "serviceAccountName": "loki",
        "terminationGracePeriodSeconds": 30,
        "securityContext": {"fsGroup": 10001, "runAsGroup": 10001, "runAsNonRoot": True, "runAsUser": 10001},
        "containers": [_container()],
        "volumes": [{"name": "config", "configMap": {"name": "loki"}}, {"name": "tmp", "emptyDir": {}}],
    }
    checksum = {"checksum/config": "5f0e8e2c1b7e7f1f7c6d0c9a3c1b2e4d8f9a6b3c2d1e0f9a8b7c6d5e4f3a2b1c"}
    spec = {
        "replicas": 1,
        "serviceName": "loki-headless",
        "selector": {"matchLabels": dict(_SELECTOR)},
        "template": {"metadata": {"labels": dict(_SELECTOR), "annotations": checksum}, "spec": pod_spec},
        "volumeClaimTemplates": [claim],
    }
    labels = {"app.kubernetes.io/component": "single-binary", "app.kubernetes.io/name": "loki"}
    meta = {"name": "loki", "namespace": NS, "labels": labels}
    return _helm({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta, "spec": spec})


def _services(c: Cluster, pods: list[Obj], created: str) -> list[Obj]:
    ports = [
        {"name": "http-metrics", "port": 3100, "targetPort": "http-metrics"},
        {"name": "grpc", "port": 9095, "targetPort": "grpc"},
    ]
    labels = {"app.kubernetes.io/name": "loki"}
    headless = _helm(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "loki-headless",
                "namespace": NS,
                "labels": {**labels, "variant": "headless"},
            },
            "spec": {"clusterIP": "None", "selector": dict(_SELECTOR), "ports": ports[:1]},
        }
    )
    svc = _helm(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "loki", "namespace": NS, "labels": labels},
            "spec": {"selector": dict(_SELECTOR), "ports": ports},
        }
    )
    return [networking.service(c, m, created, pods=pods, manager="helm") for m in (headless, svc)]


def build(c: Cluster) -> None:
    """Create Loki, its claim ``storage-loki-0`` and the Helm release Secrets."""
    created = REVISIONS[0].time
    objects: list[Obj] = []
    sa = _helm(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "automountServiceAccountToken": True,
            "metadata": {"name": "loki", "namespace": NS, "labels": {"app.kubernetes.io/name": "loki"}},
        }
    )
    objects.append(applied(c, sa, created, manager="helm"))
    cm = _helm(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "data": {"config.yaml": LOKI_CONFIG},
            "metadata": {"name": "loki", "namespace": NS, "labels": {"app.kubernetes.io/name": "loki"}},
        }
    )
    objects.append(applied(c, cm, created, manager="helm"))
    sts = statefulset(c, _statefulset(), created, [Placement(NODES[1], "2025-01-06T11:06:30Z")], manager="helm")
    objects.append(sts)
    pods = [o for o in c.objects if o["kind"] == "Pod" and o["metadata"]["name"] == "loki-0"]
    objects += _services(c, pods, created)
    helm.release_secrets(c, CHART, RELEASE, NS, REVISIONS, objects)
