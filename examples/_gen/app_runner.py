"""Namespace ``gitlab-runner``: a runner pinned to one node, its tokens, a completed Job and a CronJob.

The Deployment's ``nodeSelector`` names a source node (``kubernetes.io/hostname``), which does not
exist on K3s (docs/cleaning-rules.md K9). Images come from a private GitLab registry through a
``kubernetes.io/dockerconfigjson`` pull Secret. The namespace also carries RBAC, a legacy token
Secret, a ResourceQuota and a LimitRange for CI job pods.
"""

from __future__ import annotations

import json

from _gen import basics
from _gen.batch import completed_job, cronjob
from _gen.common import Obj, b64, secret_token
from _gen.events import Seen, event
from _gen.server import Cluster, Write, applied
from _gen.topology import NODES
from _gen.workloads import Placement, deployment

NS = "gitlab-runner"
CREATED = "2024-09-16T12:00:00Z"
PINNED = NODES[1]
REGISTRY = "registry.gitlab.com"
TOOLS_IMAGE = f"{REGISTRY}/example-org/ops/cache-tools:1.4.2"
_LABELS = {"app.kubernetes.io/name": "gitlab-runner"}
CONFIG_TOML = """\
concurrent = 4
check_interval = 3
log_level = "info"
shutdown_timeout = 0

[session_server]
  session_timeout = 1800

[[runners]]
  name = "prod-k8s-runner"
  url = "https://gitlab.com/"
  executor = "kubernetes"
  [runners.kubernetes]
    namespace = "gitlab-runner"
    image = "docker.io/library/alpine:3.20"
    privileged = false
    cpu_request = "500m"
    memory_request = "512Mi"
    service_account = "gitlab-runner"
    image_pull_secrets = ["gitlab-registry"]
    [runners.kubernetes.node_selector]
      "kubernetes.io/os" = "linux"
  [runners.cache]
    Type = "s3"
    Shared = true
    [runners.cache.s3]
      ServerAddress = "s3.fr-par.scw.cloud"
      BucketName = "prod-k8s-runner-cache"
      BucketLocation = "fr-par"
"""


def docker_config() -> str:
    """The ``.dockerconfigjson`` of the GitLab deploy token."""
    user, password = "gitlab+deploy-token-4821937", "gldt-" + secret_token("gitlab-deploy-token", 20)
    auth = {"auths": {REGISTRY: {"username": user, "password": password, "auth": b64(f"{user}:{password}")}}}
    return json.dumps(auth, separators=(",", ":"))


def _rbac(c: Cluster) -> None:
    rbac = "rbac.authorization.k8s.io"
    subjects = [{"kind": "ServiceAccount", "name": "gitlab-runner", "namespace": NS}]
    job_pods = ["pods", "pods/exec", "pods/attach", "pods/log", "secrets", "configmaps", "services"]
    verbs = ["get", "list", "watch", "create", "patch", "update", "delete"]
    meta = {"name": "gitlab-runner", "namespace": NS}
    rules = [{"apiGroups": [""], "resources": job_pods, "verbs": verbs}]
    applied(c, {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": meta, "rules": rules}, "2024-09-16T12:00:10Z")
    role_ref = {"apiGroup": rbac, "kind": "Role", "name": "gitlab-runner"}
    binding = {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": dict(meta), "roleRef": role_ref}
    applied(c, {**binding, "subjects": subjects}, "2024-09-16T12:00:11Z")
    nodes_meta = {"name": "gitlab-runner-nodes"}
    node_rules = [{"apiGroups": [""], "resources": ["nodes", "namespaces"], "verbs": ["get", "list"]}]
    cluster_role = {"apiVersion": f"{rbac}/v1", "kind": "ClusterRole", "metadata": nodes_meta, "rules": node_rules}
    applied(c, cluster_role, "2024-09-16T12:00:12Z")
    cluster_ref = {"apiGroup": rbac, "kind": "ClusterRole", "name": "gitlab-runner-nodes"}
    cluster_binding = {"apiVersion": f"{rbac}/v1", "kind": "ClusterRoleBinding", "metadata": dict(nodes_meta)}
    applied(c, {**cluster_binding, "roleRef": cluster_ref, "subjects": subjects}, "2024-09-16T12:00:12Z")


def _limits(c: Cluster) -> None:
    hard = {"limits.memory": "12Gi", "pods": "20", "requests.cpu": "6", "requests.memory": "8Gi"}
    used = {"limits.memory": "256Mi", "pods": "1", "requests.cpu": "100m", "requests.memory": "128Mi"}
    applied(
        c,
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "ci-quota", "namespace": NS},
            "spec": {"hard": hard},
        },
        "2024-09-16T12:00:05Z",
        writes=(
            Write(
                "kube-controller-manager",
                "2025-01-20T03:00:49Z",
                {"status": {"hard": hard, "used": used}},
                "status",
            ),
        ),
    )
    applied(
        c,
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "ci-defaults", "namespace": NS},
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": "1", "memory": "1Gi"},
                        "defaultRequest": {"cpu": "250m", "memory": "256Mi"},
                        "max": {"memory": "4Gi"},
                    }
                ]
            },
        },
        "2024-09-16T12:00:05Z",
    )


def _runner_deployment() -> Obj:
    token_env = [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": "gitlab-runner", "key": key}}}
        for name, key in (
            ("CI_SERVER_TOKEN", "runner-token"),
            ("REGISTRATION_TOKEN", "runner-registration-token"),
        )
    ]
    container: Obj = {
        "name": "gitlab-runner",
        "image": f"{REGISTRY}/gitlab-org/gitlab-runner:alpine-v17.2.0",
        "args": ["run", "--config", "/etc/gitlab-runner/config.toml"],
        "env": token_env + [{"name": "CI_SERVER_URL", "value": "https://gitlab.com/"}],
        "ports": [{"name": "metrics", "containerPort": 9252}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/gitlab-runner"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "gitlab-runner", "namespace": NS, "labels": dict(_LABELS)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(_LABELS)},
            "template": {
                "metadata": {
                    "labels": dict(_LABELS),
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9252"},
                },
                "spec": {
                    "serviceAccountName": "gitlab-runner",
                    "nodeSelector": {"kubernetes.io/hostname": PINNED.name},
                    "imagePullSecrets": [{"name": "gitlab-registry"}],
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": "gitlab-runner-config"}}],
                },
            },
        },
    }


def _job_template(command: list[str]) -> Obj:
    return {
        "spec": {
            "backoffLimit": 2,
            "template": {
                "spec": {
                    "restartPolicy": "OnFailure",
                    "serviceAccountName": "gitlab-runner",
                    "imagePullSecrets": [{"name": "gitlab-registry"}],
                    "containers": [
                        {
                            "name": "cache-tools",
                            "image": TOOLS_IMAGE,
                            "command": command,
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                        }
                    ],
                }
            },
        }
    }


def _batch(c: Cluster) -> None:
    manual = _job_template(["cache-tools", "prune", "--bucket", "prod-k8s-runner-cache", "--older-than", "720h"])
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "runner-cache-prune-manual",
            "namespace": NS,
            "labels": {"app.kubernetes.io/name": "cache-tools"},
        },
        **manual,
    }
    completed_job(c, job, "2024-12-02T09:14:00Z", "2024-12-02T09:16:31Z", PINNED)
    nightly = _job_template(["cache-tools", "prune", "--bucket", "prod-k8s-runner-cache", "--older-than", "168h"])
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": "runner-cache-cleanup",
            "namespace": NS,
            "labels": {"app.kubernetes.io/name": "cache-tools"},
        },
        "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Paris", "jobTemplate": nightly},
    }
    cronjob(c, cron, "2024-09-16T12:05:00Z", "2025-01-20T02:00:00Z", NODES[0])


def _ci_job_events(c: Cluster) -> None:
    """Events of a CI job pod that has already gone (events outlive their pods by up to an hour)."""
    ci_pod = "runner-t3ab9xk2-project-4281-concurrent-0-q9x2m1fz"
    pulled = 'Container image "docker.io/library/alpine:3.20" already present on machine'
    for reason, message, first in (
        ("Scheduled", f"Successfully assigned {NS}/{ci_pod} to {NODES[0].name}", "2025-01-20T09:31:02Z"),
        ("Pulled", pulled, "2025-01-20T09:31:04Z"),
        ("Started", "Started container build", "2025-01-20T09:31:05Z"),
        ("Killing", "Stopping container build", "2025-01-20T09:33:47Z"),
    ):
        component = "default-scheduler" if reason == "Scheduled" else "kubelet"
        seen = Seen(NS, ("v1", "Pod", ci_pod), reason, message, first, first, host=NODES[0].name, component=component)
        event(c, seen)


def _credentials(c: Cluster) -> None:
    pull = {".dockerconfigjson": docker_config()}
    basics.secret(c, NS, "gitlab-registry", "2024-09-16T12:00:02Z", pull, secret_type="kubernetes.io/dockerconfigjson")
    basics.service_account(
        c, NS, "gitlab-runner", "2024-09-16T12:00:03Z", labels=dict(_LABELS), image_pull_secrets=["gitlab-registry"]
    )
    basics.token_secret(c, NS, "gitlab-runner", "gitlab-runner-token", "2024-09-16T12:00:04Z", "2025-01-20T00:00:00Z")
    tokens = {
        "runner-registration-token": "glrt-" + secret_token("gitlab-runner-registration", 20),
        "runner-token": "glrt-t1_" + secret_token("gitlab-runner-auth", 20),
    }
    basics.secret(c, NS, "gitlab-runner", "2024-09-16T12:00:06Z", tokens, labels=dict(_LABELS))


def build(c: Cluster) -> None:
    """Create the runner namespace and everything in it."""
    basics.namespace(c, NS, CREATED)
    _credentials(c)
    config = {"config.toml": CONFIG_TOML}
    basics.config_map(c, NS, "gitlab-runner-config", "2024-09-16T12:00:07Z", config, labels=dict(_LABELS))
    _rbac(c)
    _limits(c)
    deployment(c, _runner_deployment(), "2024-09-16T12:01:00Z", [Placement(PINNED, "2025-01-06T11:08:02Z")])
    _batch(c)
    _ci_job_events(c)
