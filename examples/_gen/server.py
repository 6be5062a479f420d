"""A tiny, deterministic stand-in for the API server's create path.

``applied()`` takes a manifest as a user (or Helm, or a controller) would submit it and returns the
object as ``kubectl get -o yaml`` would later print it: defaulted, with uid, creationTimestamp,
generation, the ``last-applied-configuration`` annotation of client-side apply, managedFields and the
status a controller wrote. ``Cluster`` collects the objects and hands out resourceVersions in the
order of their last write, like etcd revisions.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

from _gen.common import Obj, det_bytes, uid
from _gen.defaults import apply_defaults
from _gen.fields import managed_entry

KUBECTL = "kubectl-client-side-apply"
KCM = "kube-controller-manager"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

#: Kinds whose objects carry ``metadata.generation`` (spec changes bump it). CRs always do.
_GENERATION_KINDS = frozenset(
    {
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "Ingress",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "CustomResourceDefinition",
        "Certificate",
        "CertificateRequest",
        "ClusterIssuer",
        "Issuer",
        "IngressClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "EndpointSlice",
    }
)
_CR_GROUPS = ("cert-manager.io/", "acme.cert-manager.io/")
_TOP_LEVEL = ("apiVersion", "kind", "metadata", "status")


@dataclass
class Cluster:
    """Every object of the example, with the time of its last write."""

    objects: list[Obj] = field(default_factory=list)
    #: What each object's creator submitted, by uid (Helm's rendered manifest is made from these).
    submitted: dict[str, Obj] = field(default_factory=dict)
    _updated: list[str] = field(default_factory=list)

    def add(self, obj: Obj, updated: str) -> Obj:
        """Register ``obj`` as last written at ``updated``; return it."""
        self.objects.append(obj)
        self._updated.append(updated)
        return obj

    def get(self, kind: str, namespace: str, name: str) -> Obj:
        """Return a registered object (KeyError if absent)."""
        for obj in self.objects:
            meta = obj["metadata"]
            if obj["kind"] == kind and meta.get("namespace", "") == namespace and meta["name"] == name:
                return obj
        raise KeyError(f"{kind}/{namespace}/{name}")

    def finalize(self) -> list[Obj]:
        """Assign resourceVersions in write order (etcd revisions grow with time) and return the objects."""
        order = sorted(range(len(self.objects)), key=lambda i: (self._updated[i], i))
        revision = 31_408_112
        for i in order:
            revision += 17 + det_bytes(f"rv:{i}", 1)[0] % 211
            self.objects[i]["metadata"]["resourceVersion"] = str(revision)
        return self.objects


def owner_ref(owner: Obj, *, controller: bool = True) -> Obj:
    """An ``ownerReferences`` item pointing at ``owner``."""
    ref: Obj = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }
    if controller:
        ref.update({"blockOwnerDeletion": True, "controller": True})
    return ref


def object_uid(obj: Obj) -> str:
    """The deterministic uid of ``obj`` (kind, namespace, name)."""
    meta = obj["metadata"]
    return uid(obj["kind"], meta.get("namespace", ""), meta["name"])


def last_applied_json(manifest: Obj) -> str:
    """What ``kubectl apply`` stores: compact JSON with sorted keys and a trailing newline."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def _owned_by_creator(obj: Obj) -> Obj:
    meta = obj["metadata"]
    owned: Obj = {
        "metadata": {k: meta[k] for k in ("labels", "annotations", "ownerReferences", "finalizers") if meta.get(k)}
    }
    owned.update({k: v for k, v in obj.items() if k not in _TOP_LEVEL})
    return owned


@dataclass(frozen=True)
class Write:
    """One later write by a controller: ``owned`` is merged into the object and recorded in managedFields."""

    manager: str
    time: str
    owned: Obj
    subresource: str = ""


def merge(into: Obj, patch: Obj) -> None:
    """Deep-merge ``patch`` into ``into`` (maps merge, everything else replaces)."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def applied(
    c: Cluster,
    manifest: Obj,
    created: str,
    *,
    manager: str = KUBECTL,
    last_applied: bool | None = None,
    status: Obj | None = None,
    writes: tuple[Write, ...] = (),
    generation: int = 1,
    admitted: Obj | None = None,
) -> Obj:
    """Create ``manifest`` in ``c`` as ``manager`` at ``created`` and return the stored object.

    Args:
        c: the cluster that keeps the object.
        manifest: the object as submitted (not modified).
        created: creationTimestamp.
        manager: field manager of the create (``kubectl-client-side-apply``, ``helm``, a controller…).
        last_applied: store the last-applied annotation; by default only for kubectl applies.
        status: status written by kube-controller-manager at ``created`` (unless a write sets status).
        writes: later writes by controllers, merged into the object and listed in managedFields.
        generation: metadata.generation for kinds that have one.
        admitted: fields admission adds on create (finalizers, allocated IPs), owned by ``manager``.

    Returns:
        The stored object.
    """
    obj = copy.deepcopy(manifest)
    meta = obj["metadata"]
    if last_applied if last_applied is not None else manager == KUBECTL:
        meta.setdefault("annotations", {})[LAST_APPLIED] = last_applied_json(manifest)
    apply_defaults(obj)
    merge(obj, admitted or {})
    meta["uid"] = object_uid(obj)
    meta["creationTimestamp"] = created
    if obj["kind"] in _GENERATION_KINDS or obj["apiVersion"].startswith(_CR_GROUPS):
        meta["generation"] = generation
    entries = [managed_entry(manager, created, _owned_by_creator(obj), api_version=obj["apiVersion"])]
    if status is not None and not any(w.subresource == "status" for w in writes):
        writes = (Write(KCM, created, {"status": status}, "status"), *writes)
    for w in writes:
        merge(obj, w.owned)
        entries.append(
            managed_entry(w.manager, w.time, w.owned, api_version=obj["apiVersion"], subresource=w.subresource)
        )
    meta["managedFields"] = entries
    c.submitted[meta["uid"]] = copy.deepcopy(manifest)
    return c.add(obj, max([created, *(w.time for w in writes)]))


def helm_managed(manifest: Obj, release: str, namespace: str, chart: str, app_version: str) -> Obj:
    """Return ``manifest`` with the labels and annotations Helm 3 puts on the objects it installs."""
    obj = copy.deepcopy(manifest)
    meta = obj["metadata"]
    # deepcopy keeps aliasing: a dict used both as labels and as a selector must not grow Helm's labels.
    meta["labels"] = dict(meta.get("labels", {}))
    meta["annotations"] = dict(meta.get("annotations", {}))
    meta["labels"].update(
        {
            "app.kubernetes.io/instance": release,
            "app.kubernetes.io/managed-by": "Helm",
            "app.kubernetes.io/version": app_version,
            "helm.sh/chart": chart,
        }
    )
    meta["annotations"].update(
        {
            "meta.helm.sh/release-name": release,
            "meta.helm.sh/release-namespace": namespace,
        }
    )
    return obj
