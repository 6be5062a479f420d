"""Namespace ``monitoring``, part 2: Grafana (uid/gid 472) behind a Scaleway LoadBalancer *and* an Ingress.

``grafana-lb`` is a LoadBalancer Service with Scaleway annotations, an allocated NodePort and an
external IP; the Ingress ``grafana`` routes to the same Service. On K3s this pattern must become a
ClusterIP Service behind ingress-nginx (docs/cleaning-rules.md K6). A PodDisruptionBudget with one
replica (no disruption allowed) and an explicitly applied Certificate complete the picture.
"""

from __future__ import annotations

from _gen import basics, certmanager, kit, networking
from _gen.common import Obj, secret_token
from _gen.server import Cluster, Write, applied
from _gen.storage import provision
from _gen.topology import NODES
from _gen.workloads import Placement, deployment

NS = "monitoring"
HOST = "grafana.example.org"
LB_IP = "51.159.113.27"
INGRESS_LB_IP = "51.159.26.118"
RESTARTED = "2025-01-06T11:06:02Z"
LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/scw-loadbalancer-type": "LB-S",
    "service.beta.kubernetes.io/scw-loadbalancer-zone": "fr-par-1",
    "service.beta.kubernetes.io/scw-loadbalancer-health-check-type": "http",
    "service.beta.kubernetes.io/scw-loadbalancer-health-check-http-uri": "/api/health",
    "service.beta.kubernetes.io/scw-loadbalancer-timeout-server": "60s",
}
_LABELS = {"app.kubernetes.io/name": "grafana"}


def _deployment() -> Obj:
    container: Obj = {
        "name": "grafana",
        "image": "docker.io/grafana/grafana:11.1.0",
        "env": [
            {
                "name": "GF_SECURITY_ADMIN_USER",
                "valueFrom": {"secretKeyRef": {"name": "grafana-admin", "key": "admin-user"}},
            },
            {
                "name": "GF_SECURITY_ADMIN_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "grafana-admin", "key": "admin-password"}},
            },
            {"name": "GF_SERVER_ROOT_URL", "value": f"https://{HOST}"},
            {"name": "GF_PATHS_DATA", "value": "/var/lib/grafana"},
        ],
        "ports": [{"name": "http", "containerPort": 3000}],
        "readinessProbe": {"httpGet": {"path": "/api/health", "port": "http"}},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/grafana"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "grafana", "namespace": NS, "labels": dict(_LABELS)},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": dict(_LABELS)},
            "template": {
                "metadata": {"labels": dict(_LABELS)},
                "spec": {
                    "securityContext": {"fsGroup": 472, "runAsGroup": 472, "runAsUser": 472},
                    "containers": [container],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "grafana-data"}}],
                },
            },
        },
    }


def _front(c: Cluster, pods: list[Obj]) -> None:
    svc = kit.service(NS, "grafana-lb", _LABELS, _LABELS, [{"name": "http", "port": 80, "targetPort": "http"}])
    svc["metadata"]["annotations"] = dict(LB_ANNOTATIONS)
    svc["spec"]["type"] = "LoadBalancer"
    lb_id = ("service.beta.kubernetes.io/scw-loadbalancer-id", "fr-par-1/2c9e7b14-5d3a-4c1f-8e62-7a0b9d4f1e35")
    networking.service(
        c, svc, "2024-06-10T09:03:00Z", pods=pods, lb=networking.LoadBalancer(LB_IP, annotations=(lb_id,))
    )
    ing = kit.ingress(NS, "grafana", _LABELS, HOST, ("grafana-lb", {"number": 80}), class_name="nginx")
    networking.ingress(c, ing, "2024-06-10T09:04:00Z", INGRESS_LB_IP)
    issued = certmanager.Issued(
        NS, "grafana-tls", (HOST,), "2024-06-10T09:04:02Z", certmanager.before_now(44, 3_288), 4
    )
    certmanager.issue(c, issued)


def _pdb(c: Cluster) -> None:
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "grafana", "namespace": NS, "labels": dict(_LABELS)},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": dict(_LABELS)}},
    }
    at = "2025-01-06T11:06:10Z"
    status = {
        "conditions": [
            {
                "lastTransitionTime": at,
                "message": "",
                "observedGeneration": 1,
                "reason": "InsufficientPods",
                "status": "False",
                "type": "DisruptionAllowed",
            }
        ],
        "currentHealthy": 1,
        "desiredHealthy": 1,
        "disruptionsAllowed": 0,
        "expectedPods": 1,
        "observedGeneration": 1,
    }
    applied(
        c,
        pdb,
        "2024-06-12T10:00:00Z",
        writes=(Write("kube-controller-manager", at, {"status": status}, "status"),),
    )


def build(c: Cluster) -> None:
    """Create Grafana with its data volume, admin Secret, LoadBalancer Service, Ingress and PDB."""
    basics.secret(
        c,
        NS,
        "grafana-admin",
        "2024-06-10T09:01:00Z",
        {"admin-user": "admin", "admin-password": secret_token("grafana-admin-password", 28)},
        labels=dict(_LABELS),
    )
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "grafana-data", "namespace": NS, "labels": dict(_LABELS)},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "scw-bssd",
            "resources": {"requests": {"storage": "2Gi"}},
        },
    }
    provision(c, pvc, "2024-06-10T09:01:05Z", NODES[0])
    deployment(
        c,
        _deployment(),
        "2024-06-10T09:02:00Z",
        [Placement(NODES[0], RESTARTED)],
        upgraded_from=("docker.io/grafana/grafana:10.4.2", "2024-07-01T13:30:00Z"),
    )
    pods = [
        o
        for o in c.objects
        if o["kind"] == "Pod"
        and o["metadata"]["namespace"] == NS
        and o["metadata"]["labels"].get("app.kubernetes.io/name") == "grafana"
    ]
    _front(c, pods)
    _pdb(c)
