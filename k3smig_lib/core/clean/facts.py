"""Facts later phases need, derived before stripping removes their evidence (§1 step 3).

The export phase hands these to the data phase (PVC → PV → StorageClass → size, bound node, file
owners from ``runAsUser``/``fsGroup``), the preflight lint (requests, images) and the secrets phase
(Secret type and key names — never values). Keys, per kind:

* every object: ``helm_release`` (``{"name", "namespace"}``) when Helm manages it.
* Service: ``service_type``, ``explicit_node_ports`` (from ``last-applied-configuration``, as Crane and
  Velero decide), ``fronted_by_ingress``.
* PersistentVolumeClaim: ``pv_name``, ``storage_class``, ``provisioner``, ``requested_bytes``,
  ``capacity_bytes``, ``access_modes``, ``volume_mode``, ``selected_node``.
* PersistentVolume: ``storage_class``, ``capacity_bytes``, ``claim``, ``reclaim_policy``, ``dynamic``.
* Secret: ``secret_type``, ``data_keys``, ``data_bytes`` (lengths), ``cert_manager_certificate``,
  ``cert_manager_issuer``.
* Pods and workloads: ``replicas``, ``images``, ``claims``, ``pod_security``, ``container_security``,
  ``requests`` (per pod: ``cpu`` cores, ``memory_bytes``); StatefulSet: ``volume_claim_templates``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from k3smig_lib.core.clean.context import ClusterContext, is_dynamic_pv, ns_name
from k3smig_lib.core.objects import Obj, annotations_of, get_path, intended_replicas, labels_of, pod_spec
from k3smig_lib.core.quantity import parse_quantity

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_WORKLOADS = ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController")


def quantity(value: object) -> float:
    """A quantity in base units; absent or malformed values count as 0 (capacity sums stay usable)."""
    try:
        return parse_quantity(value if isinstance(value, int | float) else str(value or ""))
    except ValueError:
        return 0.0


def bytes_of(value: object) -> int:
    """A storage quantity in whole bytes (0 when absent or malformed).

    Examples:
        >>> bytes_of("5Gi"), bytes_of(None)
        (5368709120, 0)
    """
    return int(quantity(value))


def explicit_node_ports(service: Obj) -> list[int]:
    """NodePorts the user set explicitly, read from ``last-applied-configuration``.

    Examples:
        >>> svc = {"metadata": {"annotations": {LAST_APPLIED: '{"spec":{"ports":[{"nodePort":30080}]}}'}}}
        >>> explicit_node_ports(svc)
        [30080]
    """
    raw = annotations_of(service).get(LAST_APPLIED)
    if not raw:
        return []
    try:
        applied = json.loads(raw)
    except ValueError:
        return []
    ports = get_path(applied, "spec.ports", []) or []
    return sorted(int(p["nodePort"]) for p in ports if isinstance(p, dict) and p.get("nodePort"))


def _helm_release(obj: Obj) -> dict[str, str] | None:
    annots, labs = annotations_of(obj), labels_of(obj)
    name = annots.get("meta.helm.sh/release-name")
    if obj.get("kind") == "Secret" and labs.get("owner") == "helm":
        name = labs.get("name", name)
    if not name and labs.get("app.kubernetes.io/managed-by") == "Helm":
        name = labs.get("app.kubernetes.io/instance") or labs.get("release")
    if not name:
        return None
    namespace = annots.get("meta.helm.sh/release-namespace") or ns_name(obj)[0]
    return {"name": str(name), "namespace": str(namespace)}


def _pvc_facts(pvc: Obj, ctx: ClusterContext) -> dict[str, Any]:
    spec = pvc.get("spec") or {}
    pv_name = str(spec.get("volumeName") or "")
    pv = ctx.pvs.get(pv_name) or {}
    klass = str(spec.get("storageClassName") or get_path(pv, "spec.storageClassName") or "")
    capacity = get_path(pv, "spec.capacity.storage") or get_path(pvc, "status.capacity.storage")
    return {
        "pv_name": pv_name,
        "storage_class": klass,
        "provisioner": str(get_path(ctx.storage_classes.get(klass) or {}, "provisioner") or ""),
        "requested_bytes": bytes_of(get_path(spec, "resources.requests.storage")),
        "capacity_bytes": bytes_of(capacity),
        "access_modes": list(spec.get("accessModes") or []),
        "volume_mode": str(spec.get("volumeMode") or "Filesystem"),
        "selected_node": annotations_of(pvc).get("volume.kubernetes.io/selected-node", ""),
    }


def _pv_facts(pv: Obj) -> dict[str, Any]:
    spec = pv.get("spec") or {}
    claim = spec.get("claimRef") or {}
    return {
        "storage_class": str(spec.get("storageClassName") or ""),
        "capacity_bytes": bytes_of(get_path(spec, "capacity.storage")),
        "claim": f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim else "",
        "reclaim_policy": str(spec.get("persistentVolumeReclaimPolicy") or ""),
        "dynamic": is_dynamic_pv(pv),
    }


def _decoded_length(value: object) -> int:
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return len(str(value))


def _secret_facts(secret: Obj) -> dict[str, Any]:
    data = secret.get("data") or {}
    string_data = secret.get("stringData") or {}
    sizes = {str(k): _decoded_length(v) for k, v in data.items()}
    sizes.update({str(k): len(str(v).encode()) for k, v in string_data.items()})
    annots = annotations_of(secret)
    return {
        "secret_type": str(secret.get("type") or "Opaque"),
        "data_keys": sorted(sizes),
        "data_bytes": dict(sorted(sizes.items())),
        "cert_manager_certificate": annots.get("cert-manager.io/certificate-name", ""),
        "cert_manager_issuer": annots.get("cert-manager.io/issuer-name", ""),
    }


def _security(ctx_obj: Obj | None) -> dict[str, Any]:
    sc = (ctx_obj or {}).get("securityContext") or {}
    return {k: sc[k] for k in ("runAsUser", "runAsGroup", "fsGroup", "runAsNonRoot") if k in sc}


def pod_requests(spec: Obj) -> dict[str, float]:
    """CPU (cores) and memory (bytes) one pod of this spec requests: containers summed, init max."""
    totals = {"cpu": 0.0, "memory_bytes": 0.0}
    for key, total in (("cpu", "cpu"), ("memory", "memory_bytes")):
        path = f"resources.requests.{key}"
        regular = sum(quantity(get_path(c, path)) for c in spec.get("containers") or [])
        init = [quantity(get_path(c, path)) for c in spec.get("initContainers") or []]
        totals[total] = float(max([regular, *init]))
    return totals


def _pod_facts(obj: Obj, spec: Obj) -> dict[str, Any]:
    containers = [c for k in ("initContainers", "containers") for c in spec.get(k) or []]
    claims = [get_path(v, "persistentVolumeClaim.claimName") for v in spec.get("volumes") or []]
    kind = obj.get("kind")
    facts: dict[str, Any] = {
        "replicas": intended_replicas(obj) if kind in _WORKLOADS else 1,
        "images": sorted({str(c.get("image")) for c in containers if c.get("image")}),
        "claims": sorted({str(c) for c in claims if c}),
        "pod_security": _security(spec),
        "container_security": {str(c.get("name")): _security(c) for c in containers if _security(c)},
        "requests": pod_requests(spec),
    }
    if kind == "StatefulSet":
        facts["volume_claim_templates"] = [
            {
                "name": str(get_path(t, "metadata.name") or ""),
                "storage_class": str(get_path(t, "spec.storageClassName") or ""),
                "requested_bytes": bytes_of(get_path(t, "spec.resources.requests.storage")),
                "access_modes": list(get_path(t, "spec.accessModes") or []),
            }
            for t in get_path(obj, "spec.volumeClaimTemplates", []) or []
        ]
    return facts


def derive_facts(obj: Obj, ctx: ClusterContext) -> dict[str, Any]:
    """Derive the facts of one object from its exported form.

    Args:
        obj: the object as exported (``last-applied``, status and annotations still present).
        ctx: the cross-object context (for the PVC → PV → StorageClass chain and Ingress backends).

    Returns:
        A JSON-serialisable dict; see the module docstring for the keys. Secret values never appear.
    """
    facts: dict[str, Any] = {}
    release = _helm_release(obj)
    if release:
        facts["helm_release"] = release
    kind = obj.get("kind")
    if kind == "Service":
        facts["service_type"] = str(get_path(obj, "spec.type") or "ClusterIP")
        facts["explicit_node_ports"] = explicit_node_ports(obj)
        facts["fronted_by_ingress"] = ns_name(obj) in ctx.ingress_backends
    elif kind == "PersistentVolumeClaim":
        facts.update(_pvc_facts(obj, ctx))
    elif kind == "PersistentVolume":
        facts.update(_pv_facts(obj))
    elif kind == "Secret":
        facts.update(_secret_facts(obj))
    spec = pod_spec(obj)
    if spec is not None:
        facts.update(_pod_facts(obj, spec))
    return facts
