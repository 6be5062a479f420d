"""Namespace ``vaultwarden``: the password manager with its SQLite volume, admin token and TLS.

The Deployment keeps upstream's security context (the image runs as root, no ``runAsUser``),
uses the ``Recreate`` strategy because the volume is ReadWriteOnce, and was upgraded from 1.30.5
to 1.32.0 (so an old ReplicaSet scaled to zero is still there). The Ingress uses the deprecated
``kubernetes.io/ingress.class`` annotation and lets cert-manager's ingress-shim create its Certificate.
"""

from __future__ import annotations

from _gen import basics, certmanager, kit, networking
from _gen.common import Obj, secret_token
from _gen.events import Seen, event
from _gen.server import Cluster, applied
from _gen.storage import provision
from _gen.topology import NODES
from _gen.workloads import Placement, deployment

NS = "vaultwarden"
IMAGE = "docker.io/vaultwarden/server:1.32.0"
HOST = "vault.example.org"
CREATED = "2024-03-02T19:30:00Z"
RESTARTED = "2025-01-06T11:04:12Z"
INGRESS_LB_IP = "51.159.26.118"
_LABELS = {"app.kubernetes.io/name": "vaultwarden", "app.kubernetes.io/instance": "vaultwarden"}


def _deployment_manifest() -> Obj:
    container: Obj = {
        "name": "vaultwarden",
        "image": IMAGE,
        "envFrom": [{"configMapRef": {"name": "vaultwarden-env"}}],
        "env": [
            {
                "name": "ADMIN_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": "vaultwarden-admin", "key": "ADMIN_TOKEN"}},
            }
        ],
        "ports": [{"name": "http", "containerPort": 80}],
        "livenessProbe": {"httpGet": {"path": "/alive", "port": "http"}, "initialDelaySeconds": 10},
        "readinessProbe": {"httpGet": {"path": "/alive", "port": "http"}},
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "vaultwarden", "namespace": NS, "labels": dict(_LABELS)},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app.kubernetes.io/name": "vaultwarden"}},
            "template": {
                "metadata": {"labels": dict(_LABELS)},
                "spec": {
                    "priorityClassName": "prod-critical",
                    "containers": [container],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "vaultwarden-data"}}],
                },
            },
        },
    }


def _config(c: Cluster) -> None:
    basics.secret(
        c,
        NS,
        "vaultwarden-admin",
        "2024-03-02T19:31:10Z",
        {"ADMIN_TOKEN": secret_token("vaultwarden-admin-token", 64)},
        labels=dict(_LABELS),
    )
    basics.config_map(
        c,
        NS,
        "vaultwarden-env",
        "2024-03-02T19:31:10Z",
        {
            "DOMAIN": f"https://{HOST}",
            "SIGNUPS_ALLOWED": "false",
            "INVITATIONS_ALLOWED": "true",
            "WEBSOCKET_ENABLED": "true",
            "LOG_LEVEL": "warn",
            "SMTP_HOST": "smtp.tem.scw.cloud",
            "SMTP_PORT": "587",
            "SMTP_SECURITY": "starttls",
            "SMTP_FROM": "vault@example.org",
        },
        labels=dict(_LABELS),
    )
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "vaultwarden-data", "namespace": NS, "labels": dict(_LABELS)},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "scw-bssd",
            "resources": {"requests": {"storage": "5Gi"}},
        },
    }
    provision(c, pvc, "2024-03-02T19:31:12Z", NODES[0])


def _network(c: Cluster, pods: list[Obj]) -> None:
    selector = {"app.kubernetes.io/name": "vaultwarden"}
    http = [{"name": "http", "port": 80, "targetPort": "http"}]
    networking.service(c, kit.service(NS, "vaultwarden", _LABELS, selector, http), "2024-03-02T19:31:15Z", pods=pods)
    annotations = {
        "kubernetes.io/ingress.class": "nginx",
        "cert-manager.io/cluster-issuer": "letsencrypt-prod",
        "nginx.ingress.kubernetes.io/proxy-body-size": "525m",
    }
    manifest = kit.ingress(NS, "vaultwarden", _LABELS, HOST, ("vaultwarden", {"name": "http"}), annotations=annotations)
    ingress = networking.ingress(c, manifest, "2024-03-02T19:32:00Z", INGRESS_LB_IP)
    issued = certmanager.Issued(
        NS, "vaultwarden-tls", (HOST,), "2024-03-02T19:32:01Z", certmanager.before_now(24, 51_831), 6, ingress
    )
    certmanager.issue(c, issued)
    from_ingress_nginx = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "vaultwarden-from-ingress", "namespace": NS},
        "spec": {
            "podSelector": {"matchLabels": selector},
            "ingress": [{"from": [from_ingress_nginx], "ports": [{"port": 80, "protocol": "TCP"}]}],
        },
    }
    applied(c, policy, "2024-03-05T08:12:40Z")


def build(c: Cluster) -> None:
    """Create everything in the ``vaultwarden`` namespace."""
    basics.namespace(c, NS, CREATED, labels={"pod-security.kubernetes.io/enforce": "baseline"})
    _config(c)
    deployment(
        c,
        _deployment_manifest(),
        "2024-03-02T19:31:20Z",
        [Placement(NODES[0], RESTARTED)],
        upgraded_from=("docker.io/vaultwarden/server:1.30.5", "2024-11-18T20:05:00Z"),
        priority=1_000_000,
    )
    pods = [o for o in c.objects if o["kind"] == "Pod" and o["metadata"]["namespace"] == NS]
    _network(c, pods)
    pod = pods[0]["metadata"]["name"]
    event(
        c,
        Seen(
            NS,
            ("v1", "Pod", pod),
            "Unhealthy",
            f'Liveness probe failed: Get "http://{pods[0]["status"]["podIP"]}:80/alive": context deadline '
            "exceeded (Client.Timeout exceeded while awaiting headers)",
            "2025-01-20T09:12:44Z",
            "2025-01-20T09:13:04Z",
            count=2,
            type="Warning",
            host=NODES[0].name,
            field_path="spec.containers{vaultwarden}",
        ),
    )
