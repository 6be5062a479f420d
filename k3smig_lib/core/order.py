"""Apply order on K3s (docs/cleaning-rules.md §8): which object goes before which, and why.

Stages follow the dependency chain of a fresh cluster: CRDs before their CRs, namespaces before
anything namespaced, RBAC and Secrets before the pods that use them, PVCs before the data phase
(stage 8, no objects) and the workloads, cert-manager issuers and certificates *after* their TLS
Secrets so nothing is re-issued, Ingresses after that (they trigger external-dns: the cutover gate),
NetworkPolicies after the data phase (K3s enforces them), admission webhooks last (their backends
must be running, or they block every later create). Unknown kinds (CRs) come at the end, after the
workloads of the operators that serve them.

Within a stage the order is the one §8 gives (ClusterRoles → Roles → ServiceAccounts → bindings;
registry pull Secret → external-dns credentials → application Secrets → cert-manager TLS/ACME
Secrets → ConfigMaps; StatefulSets before Deployments), then namespace and name, so the order is
stable from one run to the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from k3smig_lib.core.objects import Obj


@dataclass(frozen=True)
class Stage:
    """One step of the apply order.

    Attributes:
        rank: position in §8 (1 CRDs … 14 webhooks, 99 unknown kinds).
        name: short name, used for the kustomize directory (:func:`stage_dir_name`).
        kinds: the kinds applied at this stage, in within-stage order where it matters.
    """

    rank: int
    name: str
    kinds: frozenset[str]


def _stage(rank: int, name: str, *kinds: str) -> Stage:
    return Stage(rank, name, frozenset(kinds))


#: Within-stage order, for the stages where §8 names one.
_KIND_PRIORITY: dict[str, int] = {
    "ClusterRole": 0, "Role": 1, "ServiceAccount": 2, "ClusterRoleBinding": 3, "RoleBinding": 4,
    "Secret": 0, "ConfigMap": 10,
    "LimitRange": 0, "ResourceQuota": 1,
    "PersistentVolume": 0, "PersistentVolumeClaim": 1,
    "Service": 0, "Endpoints": 1, "EndpointSlice": 2,
    "StatefulSet": 0, "Deployment": 1, "DaemonSet": 2, "ReplicaSet": 3, "ReplicationController": 4,
    "Pod": 5, "CronJob": 6, "Job": 7,
    "Issuer": 0, "ClusterIssuer": 0, "Certificate": 1,
    "PriorityClass": 0, "RuntimeClass": 1, "StorageClass": 2, "IngressClass": 3,
}

STAGES: list[Stage] = [
    _stage(1, "crds", "CustomResourceDefinition"),
    _stage(2, "namespaces", "Namespace"),
    _stage(3, "priorityclasses", "PriorityClass", "RuntimeClass", "StorageClass", "IngressClass"),
    _stage(4, "rbac", "ClusterRole", "Role", "ServiceAccount", "ClusterRoleBinding", "RoleBinding"),
    _stage(5, "secrets-configmaps", "Secret", "ConfigMap"),
    _stage(6, "limits-quotas", "LimitRange", "ResourceQuota"),
    _stage(7, "pvcs", "PersistentVolume", "PersistentVolumeClaim"),
    _stage(9, "services", "Service", "Endpoints", "EndpointSlice"),
    _stage(10, "workloads", "StatefulSet", "Deployment", "DaemonSet", "ReplicaSet",
           "ReplicationController", "Pod", "CronJob", "Job"),
    _stage(11, "cert-manager", "Issuer", "ClusterIssuer", "Certificate"),
    _stage(12, "ingresses", "Ingress"),
    _stage(13, "policies", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"),
    _stage(14, "webhooks", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
           "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"),
    _stage(99, "other"),
]
_BY_KIND = {kind: stage for stage in STAGES for kind in stage.kinds}
_OTHER = STAGES[-1]
#: Kinds whose stage depends on the API group (a ``Certificate`` of another group is a CR).
_GROUPED = {"Issuer": "cert-manager.io", "ClusterIssuer": "cert-manager.io", "Certificate": "cert-manager.io"}


def _group(obj: Obj) -> str:
    version = str(obj.get("apiVersion", ""))
    return version.split("/")[0] if "/" in version else ""


def stage_of(obj: Obj) -> Stage:
    """The apply stage of ``obj``.

    Args:
        obj: a Kubernetes object.

    Returns:
        Its stage; kinds not named in §8 (CRs) belong to stage 99.

    Examples:
        >>> stage_of({"apiVersion": "v1", "kind": "Secret"}).name
        'secrets-configmaps'
        >>> stage_of({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor"}).rank
        99
    """
    kind = str(obj.get("kind", ""))
    if kind in _GROUPED and _group(obj) != _GROUPED[kind]:
        return _OTHER
    return _BY_KIND.get(kind, _OTHER)


def _secret_priority(obj: Obj) -> int:
    """Registry pull Secret → external-dns credentials → application Secrets → ACME account keys → TLS."""
    meta = obj.get("metadata") or {}
    kind_of = str(obj.get("type") or "Opaque")
    if kind_of in ("kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg"):
        return 0
    if "external-dns" in str(meta.get("name", "")):
        return 1
    cert_manager = any(str(k).startswith("cert-manager.io/") for k in (meta.get("annotations") or {}))
    acme_key = kind_of == "Opaque" and set((obj.get("data") or {})) == {"tls.key"}
    if acme_key:  # the ACME account first: cert-manager must find the account before it looks at a certificate
        return 3
    return 4 if cert_manager else 2


def _priority(obj: Obj) -> int:
    kind = str(obj.get("kind", ""))
    if kind == "Secret":
        return _secret_priority(obj)
    return _KIND_PRIORITY.get(kind, 0)


def apply_key(obj: Obj) -> tuple[int, int, str, str, str]:
    """Sort key: stage rank, within-stage priority, namespace, name, kind."""
    meta = obj.get("metadata") or {}
    return (
        stage_of(obj).rank, _priority(obj), str(meta.get("namespace") or ""), str(meta.get("name") or ""),
        str(obj.get("kind", "")),
    )


def sort_for_apply(objects: Sequence[Obj]) -> list[Obj]:
    """Objects in the order they must be applied to K3s.

    Args:
        objects: cleaned objects, in any order.

    Returns:
        A new list, stable: stage rank, then within-stage priority, then namespace and name.

    Examples:
        >>> objs = [{"kind": "Deployment", "metadata": {"name": "web"}},
        ...         {"kind": "Namespace", "metadata": {"name": "shop"}}]
        >>> [o["kind"] for o in sort_for_apply(objs)]
        ['Namespace', 'Deployment']
    """
    return sorted(objects, key=apply_key)


def stage_dir_name(stage: Stage) -> str:
    """Directory name of a stage in the kustomize tree, sortable by rank.

    Examples:
        >>> stage_dir_name(STAGES[4])
        '05-secrets-configmaps'
    """
    return f"{stage.rank:02d}-{stage.name}"
