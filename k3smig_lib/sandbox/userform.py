"""Which exported objects a user would have written, and what they looked like before the server.

Pure functions over plain dicts, used by :mod:`k3smig_lib.sandbox.seed`. A snapshot is what the
server made of a cluster; seeding the sandbox replays what its users did, so the sandbox's own
controllers produce the rest: ReplicaSets, Pods, EndpointSlices, token Secrets, PersistentVolumes.
Objects owned by controllers the sandbox does not run (cert-manager's Certificates, TLS Secrets,
CertificateRequests) are replayed too, with their owner references pointed at the new owners.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from k3smig_lib.core.objects import Obj, deep_copy, ref

#: Made by the API server or by a controller the sandbox runs, never by a user.
DERIVED_KINDS = frozenset({
    "Pod", "ReplicaSet", "Endpoints", "EndpointSlice", "Event", "ControllerRevision", "Lease", "Node",
    "PersistentVolume", "ComponentStatus", "CSINode", "VolumeAttachment", "CertificateSigningRequest",
})  # fmt: skip
#: Owners whose dependents the sandbox's controllers (kube-controller-manager, kwok) recreate.
SANDBOX_OWNER_KINDS = frozenset({
    "ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Node", "Service", "Pod",
})  # fmt: skip
#: Would break the sandbox: an aggregated API or webhook without a running backend fails every call.
NO_BACKEND_KINDS = frozenset({"APIService", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"})
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# kwok's node template writes nodeInfo fields unquoted into YAML: ids such as a systemUUID "y" or an
# all-digit machineID would turn into a bool or a number and make kwok reject the node.
_NODE_INFO = ("kubeletVersion", "kubeProxyVersion", "osImage", "kernelVersion", "containerRuntimeVersion",
              "operatingSystem", "architecture")  # fmt: skip
_ORDER = {
    "CustomResourceDefinition": 0, "Namespace": 1, "StorageClass": 2, "PriorityClass": 2, "ClusterRole": 3,
    "ClusterRoleBinding": 3, "ServiceAccount": 3, "Role": 4, "RoleBinding": 4, "Secret": 5, "ConfigMap": 5,
    "LimitRange": 5, "ResourceQuota": 5, "PersistentVolumeClaim": 6, "Service": 7, "Endpoints": 7,
}  # fmt: skip
_SERVER_ANNOTATIONS = (
    "deployment.kubernetes.io/revision", "pv.kubernetes.io/", "volume.beta.kubernetes.io/", "volume.kubernetes.io/",
    "endpoints.kubernetes.io/", "kubernetes.io/service-account.",
)  # fmt: skip
_SERVER_METADATA = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink",
                    "ownerReferences", "deletionTimestamp", "deletionGracePeriodSeconds", "finalizers")  # fmt: skip
_JOB_LABELS = ("controller-uid", "job-name", "batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name")


@dataclass
class Selection:
    """An export split the way seeding needs it."""

    nodes: list[Obj] = field(default_factory=list)
    objects: list[Obj] = field(default_factory=list)
    owned: list[tuple[Obj, list[dict[str, Any]]]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _owner_kinds(obj: Obj) -> set[str]:
    return {str(r.get("kind")) for r in (obj.get("metadata") or {}).get("ownerReferences") or []}


def skip_reason(obj: Obj, selectorless: frozenset[tuple[str, str]] = frozenset()) -> str:
    """Why ``obj`` is not replayed into the sandbox (empty string when it is).

    Args:
        obj: an exported object.
        selectorless: ``(namespace, name)`` of Services without a selector, whose Endpoints a user
            maintains by hand (no controller makes them).
    """
    kind, meta = obj.get("kind", ""), obj.get("metadata") or {}
    name, ns = str(meta.get("name", "")), str(meta.get("namespace", ""))
    if kind == "Endpoints" and (ns, name) in selectorless and not _owner_kinds(obj):
        return ""
    if kind in DERIVED_KINDS or _owner_kinds(obj) & SANDBOX_OWNER_KINDS:
        return "created by a controller"
    if ns == "default" and name == "kubernetes" and kind in ("Service", "Endpoints", "EndpointSlice"):
        return "system object"
    if kind in NO_BACKEND_KINDS:
        return "needs a backend the sandbox does not run"
    if kind == "Namespace" and name in SYSTEM_NAMESPACES or ns in SYSTEM_NAMESPACES - {"default"}:
        return "system object"
    if kind in ("ClusterRole", "ClusterRoleBinding", "PriorityClass") and name.startswith("system"):
        return "system object"
    if kind == "Secret" and obj.get("type") == "kubernetes.io/service-account-token":
        return "service-account token, created by the token controller"
    if kind == "ConfigMap" and name == "kube-root-ca.crt" or kind == "ServiceAccount" and name == "default":
        return "created by a controller"
    return ""


def _strip_meta(meta: dict[str, Any]) -> None:
    for key in _SERVER_METADATA:
        meta.pop(key, None)
    ann = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(_SERVER_ANNOTATIONS)}
    if ann:
        meta["annotations"] = ann
    else:
        meta.pop("annotations", None)


def _strip_spec(kind: str, out: Obj, spec: dict[str, Any]) -> None:
    if kind == "Service":
        if spec.get("clusterIP") != "None":  # headless Services stay headless
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        spec.pop("healthCheckNodePort", None)
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)
    elif kind == "PersistentVolumeClaim":
        spec.pop("volumeName", None)
    elif kind == "ServiceAccount":
        out.pop("secrets", None)
    elif kind == "Namespace":
        out.pop("spec", None)
    elif kind == "Job":
        spec.pop("selector", None)
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        for key in _JOB_LABELS:
            labels.pop(key, None)


def user_form(obj: Obj) -> Obj:
    """``obj`` as a user would write it: no server-assigned fields, no status, no owners.

    Examples:
        >>> svc = {"kind": "Service", "metadata": {"name": "web", "uid": "u1", "resourceVersion": "7"},
        ...        "spec": {"clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"], "ports": [{"port": 80}]},
        ...        "status": {"loadBalancer": {}}}
        >>> user_form(svc)
        {'kind': 'Service', 'metadata': {'name': 'web'}, 'spec': {'ports': [{'port': 80}]}}
    """
    out = deep_copy(obj)
    out.pop("status", None)
    _strip_meta(out.setdefault("metadata", {}))
    spec = out.get("spec") or {}
    _strip_spec(str(out.get("kind", "")), out, spec)
    for tmpl in spec.get("volumeClaimTemplates") or []:
        tmpl.pop("status", None)
        _strip_meta(tmpl.setdefault("metadata", {}))
    return out


def fake_node(node: Obj) -> Obj:
    """A snapshot Node as a kwok fake node: same name, labels and taints, so workloads pinned to it schedule.

    Addresses and daemon endpoints are dropped (kwok publishes 127.0.0.1 and its own port, where
    ``pods/exec`` reaches it), and so are the taints the node controller sets on unreachable nodes.
    """
    out = user_form(node)
    out["metadata"].setdefault("annotations", {})[KWOK_NODE_ANNOTATION] = "fake"
    spec = out.get("spec") or {}
    taints = [t for t in spec.get("taints") or [] if not str(t.get("key", "")).startswith("node.kubernetes.io/")]
    out["spec"] = {k: v for k, v in spec.items() if k in ("providerID", "unschedulable")} | {"taints": taints}
    status = node.get("status") or {}
    info = status.get("nodeInfo") or {}
    out["status"] = {k: status[k] for k in ("capacity", "allocatable") if k in status}
    out["status"]["nodeInfo"] = {k: str(v) for k, v in info.items() if k in _NODE_INFO}
    return out


def select(objs: list[Obj]) -> Selection:
    """Split an export into fake nodes, objects to create (in creation order), owned objects and the rest.

    Examples:
        >>> rs = {"kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "a",
        ...       "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "u"}]}}
        >>> select([rs]).skipped
        {'ReplicaSet/a/web-1': 'created by a controller'}
    """
    selectorless = frozenset(
        (str(o["metadata"].get("namespace", "")), str(o["metadata"]["name"]))
        for o in objs
        if o.get("kind") == "Service"
        and not (o.get("spec") or {}).get("selector")
        and (o.get("spec") or {}).get("type") != "ExternalName"
    )
    sel = Selection()
    for obj in objs:
        reason = "" if obj.get("kind") == "Node" else skip_reason(obj, selectorless)
        if reason:
            sel.skipped[ref(obj).id] = reason
        elif obj.get("kind") == "Node":
            sel.nodes.append(fake_node(obj))
        elif _owner_kinds(obj):
            sel.owned.append((user_form(obj), list(obj["metadata"]["ownerReferences"])))
        else:
            sel.objects.append(user_form(obj))
    sel.objects.sort(key=lambda o: _ORDER.get(o["kind"], 8))
    return sel
