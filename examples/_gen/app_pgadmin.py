"""Namespace ``pgadmin``: pgAdmin on a ReadWriteMany volume (uid 5050) with an HPA, and an external database.

The claim asks for ``ReadWriteMany`` on ``scw-bssd-retain`` (the HPA may run several replicas),
which K3s's node-local ``local-path`` cannot honour (docs/cleaning-rules.md T2). ``postgres-external`` is
a selectorless Service whose hand-written Endpoints point at a managed PostgreSQL outside the
cluster: they must be kept (KEEP3).
"""

from __future__ import annotations

from _gen import basics, networking
from _gen.common import Obj, secret_token
from _gen.server import Cluster, Write, applied
from _gen.storage import provision
from _gen.topology import NODES
from _gen.workloads import Placement, deployment

NS = "pgadmin"
CREATED = "2024-07-22T15:10:00Z"
EXTERNAL_DB_IP = "172.16.8.10"
_LABELS = {"app.kubernetes.io/name": "pgadmin"}


def _deployment() -> Obj:
    container: Obj = {
        "name": "pgadmin",
        "image": "docker.io/dpage/pgadmin4:8.9",
        "env": [
            {"name": "PGADMIN_DEFAULT_EMAIL", "value": "admin@example.org"},
            {
                "name": "PGADMIN_DEFAULT_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "pgadmin", "key": "PGADMIN_DEFAULT_PASSWORD"}},
            },
            {"name": "PGADMIN_LISTEN_PORT", "value": "8080"},
        ],
        "ports": [{"name": "http", "containerPort": 8080}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "500m", "memory": "512Mi"},
        },
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/pgadmin"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "pgadmin", "namespace": NS, "labels": dict(_LABELS)},
        "spec": {
            "selector": {"matchLabels": dict(_LABELS)},
            "template": {
                "metadata": {"labels": dict(_LABELS)},
                "spec": {
                    "securityContext": {"fsGroup": 5050, "runAsGroup": 5050, "runAsUser": 5050},
                    "containers": [container],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "pgadmin-data"}}],
                },
            },
        },
    }


_HPA_CONDITIONS = [
    ("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size", "2024-07-22T15:13:10Z"),
    (
        "ScalingActive",
        "True",
        "ValidMetricFound",
        "the HPA was able to successfully calculate a replica count from cpu resource utilization "
        "(percentage of request)",
        "2024-07-22T15:13:40Z",
    ),
    (
        "ScalingLimited",
        "False",
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
        "2025-01-06T11:20:12Z",
    ),
]


def _hpa(c: Cluster) -> None:
    cpu = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "pgadmin", "namespace": NS, "labels": dict(_LABELS)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "pgadmin"},
            "minReplicas": 1,
            "maxReplicas": 3,
            "metrics": [cpu],
        },
    }
    conditions = [
        {"lastTransitionTime": at, "message": message, "reason": reason, "status": status, "type": kind}
        for kind, status, reason, message, at in _HPA_CONDITIONS
    ]
    current = {
        "type": "Resource",
        "resource": {"name": "cpu", "current": {"averageUtilization": 4, "averageValue": "4m"}},
    }
    status = {"conditions": conditions, "currentMetrics": [current], "currentReplicas": 1, "desiredReplicas": 1}
    write = Write("kube-controller-manager", "2025-01-20T09:58:45Z", {"status": status}, "status")
    applied(c, hpa, "2024-07-22T15:12:40Z", writes=(write,))


def _external_db(c: Cluster) -> None:
    labels = {"app.kubernetes.io/name": "postgres-external"}
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "postgres-external", "namespace": NS, "labels": labels},
        "spec": {"ports": [{"name": "postgres", "port": 5432, "targetPort": 5432}]},
    }
    obj = networking.service(c, svc, "2024-07-22T15:10:30Z")
    networking.manual_endpoints(
        c,
        obj,
        [EXTERNAL_DB_IP],
        [{"name": "postgres", "port": 5432, "protocol": "TCP"}],
        "2024-07-22T15:10:31Z",
    )


def build(c: Cluster) -> None:
    """Create pgAdmin, its RWX claim, Secret, Service, HPA and the external-database Service."""
    basics.namespace(c, NS, CREATED)
    basics.secret(
        c,
        NS,
        "pgadmin",
        "2024-07-22T15:10:20Z",
        {"PGADMIN_DEFAULT_PASSWORD": secret_token("pgadmin-default-password", 24)},
        labels=dict(_LABELS),
    )
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "pgadmin-data", "namespace": NS, "labels": dict(_LABELS)},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "scw-bssd-retain",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    provision(c, pvc, "2024-07-22T15:10:25Z", NODES[1])
    _external_db(c)
    deployment(c, _deployment(), "2024-07-22T15:11:00Z", [Placement(NODES[1], "2025-01-06T11:07:15Z")])
    pods = [o for o in c.objects if o["kind"] == "Pod" and o["metadata"]["namespace"] == NS]
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "pgadmin", "namespace": NS, "labels": dict(_LABELS)},
        "spec": {"selector": dict(_LABELS), "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    networking.service(c, svc, "2024-07-22T15:11:01Z", pods=pods)
    _hpa(c)
