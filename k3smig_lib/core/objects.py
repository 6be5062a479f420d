"""Kubernetes objects as plain dicts, and the few helpers every module needs to talk about them.

Objects stay ``dict[str, Any]`` (what ``kubectl get -o yaml`` and the API return) so the cleaner,
the backends and the reports share one representation without a model layer to keep in sync.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

#: Kinds that live outside namespaces (enough for ordering and reports; live discovery is exact).
#: Annotations k3smig itself writes on live objects (read back by the cleaner and by rollback).
PRE_QUIESCE = "k3smig.io/pre-quiesce-replicas"
QUIESCED_AT = "k3smig.io/quiesced-at"

CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace", "Node", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding",
        "CustomResourceDefinition", "PriorityClass", "IngressClass", "APIService", "CSINode",
        "CSIDriver", "VolumeAttachment", "FlowSchema", "PriorityLevelConfiguration",
        "CertificateSigningRequest", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
        "ClusterIssuer", "RuntimeClass", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    }
)


@dataclass(frozen=True, order=True)
class ObjRef:
    """Identity of an object: enough to name it in a report and find it again."""

    kind: str
    namespace: str
    name: str
    api_version: str = ""

    @property
    def group(self) -> str:
        """API group ("" for the core group)."""
        return self.api_version.split("/")[0] if "/" in self.api_version else ""

    def __str__(self) -> str:
        base = f"{self.kind.lower()}/{self.name}"
        return f"{base} in ns {self.namespace}" if self.namespace else base

    @property
    def id(self) -> str:
        """Stable key ``Kind/namespace/name`` (``_cluster`` for cluster-scoped objects)."""
        return f"{self.kind}/{self.namespace or '_cluster'}/{self.name}"

    @property
    def identity(self) -> str:
        """``group/Kind/namespace/name``: what makes two objects the same object on a cluster.

        Unlike :attr:`id` it tells an OpenShift ``authorization.openshift.io`` RoleBinding from the RBAC
        one of the same name.
        """
        return f"{self.group}/{self.kind}/{self.namespace}/{self.name}"


def ref(obj: Obj) -> ObjRef:
    """Return the identity of ``obj``.

    Examples:
        >>> str(ref({"kind": "Service", "apiVersion": "v1", "metadata": {"name": "web", "namespace": "a"}}))
        'service/web in ns a'
    """
    meta = obj.get("metadata") or {}
    return ObjRef(
        kind=str(obj.get("kind", "")),
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or meta.get("generateName") or ""),
        api_version=str(obj.get("apiVersion", "")),
    )


def canonical_json(obj: Any) -> bytes:
    """Serialise deterministically (sorted keys, no spaces) so hashes are stable across runs."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def sha256_of(obj: Any) -> str:
    """Hex sha256 of the canonical JSON form of ``obj``."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def deep_copy(obj: Obj) -> Obj:
    """Copy an object so rules never mutate the original kept for the report."""
    return copy.deepcopy(obj)


def get_path(obj: Any, path: str, default: Any = None) -> Any:
    """Read a dotted path (``spec.template.spec``) from nested dicts; ``default`` when absent."""
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def annotations_of(obj: Obj) -> dict[str, str]:
    """Annotations of ``obj`` (an empty dict when there are none)."""
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def labels_of(obj: Obj) -> dict[str, str]:
    """Labels of ``obj`` (an empty dict when there are none)."""
    return dict((obj.get("metadata") or {}).get("labels") or {})


def is_cluster_scoped(obj: Obj) -> bool:
    """True when the object has no namespace by nature (by kind) or by content."""
    return str(obj.get("kind")) in CLUSTER_SCOPED_KINDS


def pod_spec(obj: Obj) -> Obj | None:
    """The pod spec inside a Pod or any workload template (CronJob included), else ``None``."""
    kind = obj.get("kind")
    if kind == "Pod":
        spec = obj.get("spec")
        return spec if isinstance(spec, dict) else None
    if kind == "CronJob":
        spec = get_path(obj, "spec.jobTemplate.spec.template.spec")
        return spec if isinstance(spec, dict) else None
    spec = get_path(obj, "spec.template.spec")
    return spec if isinstance(spec, dict) else None


def intended_replicas(obj: Obj) -> int:
    """Replicas a workload is meant to run: the count k3smig recorded when it quiesced it, else ``spec.replicas``.

    A source held at 0 by an earlier run of this migration still needs its real capacity planned.

    Examples:
        >>> intended_replicas({"spec": {"replicas": 0}, "metadata": {"annotations": {PRE_QUIESCE: "2"}}})
        2
        >>> intended_replicas({"spec": {}})
        1
    """
    recorded = str(annotations_of(obj).get(PRE_QUIESCE, ""))
    if recorded.isdigit():
        return int(recorded)
    value = get_path(obj, "spec.replicas")
    return 1 if value is None else int(value)
