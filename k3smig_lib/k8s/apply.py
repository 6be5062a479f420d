"""Server-side apply of plain-dict objects, for any kind, with a plan that never writes.

Every write is a server-side apply (``PATCH`` with ``application/apply-patch+yaml``,
``fieldManager=k3smig``), so re-applying the same desired state is a no-op the API server itself
recognises, and fields owned by someone else are reported instead of silently overwritten
(docs/safety.md §4.1). The plan is a server-side dry run (``dryRun=All``) of the same request:
what the API server *would* store is compared with what it stores now, ignoring metadata noise.

Requests go through the cluster's one transport (:class:`~k3smig_lib.k8s.client.Kube`): counted,
retried by the one retry loop, failures mapped by :func:`~k3smig_lib.k8s.errors.translate`. Resources
are found by the shared :class:`~k3smig_lib.k8s.discovery.ResourceCache`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

from k3smig_lib.core.objects import Obj, deep_copy, ref
from k3smig_lib.errors import TargetError
from k3smig_lib.k8s.client import ApiResponse, Kube
from k3smig_lib.k8s.discovery import ApiResource, ResourceCache

FIELD_MANAGER = "k3smig"
APPLY_PATCH = "application/apply-patch+yaml"
#: Metadata the API server maintains: never sent, never compared.
NOISE_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink")
PlanAction = Literal["create", "update", "unchanged", "conflict"]


def apply_body(obj: Obj) -> Obj:
    """What is sent for ``obj``: no status, no server-maintained metadata (``resourceVersion`` is a precondition)."""
    body = deep_copy(obj)
    body.pop("status", None)
    meta = body.setdefault("metadata", {})
    for key in NOISE_METADATA:
        meta.pop(key, None)
    return body


def comparable(obj: Obj) -> Obj:
    """``obj`` without status and metadata noise: two objects equal here are the same desired state."""
    out = apply_body(obj)
    meta = out["metadata"]
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        meta.pop(key, None)
    return out


def differing_fields(live: Obj, wanted: Obj, *, depth: int = 3) -> list[str]:
    """Dotted paths (at most ``depth`` deep) where two objects differ; paths only, never values.

    Examples:
        >>> differing_fields({"spec": {"replicas": 2, "x": 1}}, {"spec": {"replicas": 3, "x": 1}})
        ['spec.replicas']
        >>> differing_fields({"data": {"a": "b"}}, {"data": {"a": "c", "k": "v"}})
        ['data.a', 'data.k']
    """
    return _diff(comparable(live), comparable(wanted), "", depth)


def _diff(a: Any, b: Any, prefix: str, depth: int) -> list[str]:
    if a == b:
        return []
    if depth == 0 or not (isinstance(a, dict) and isinstance(b, dict)):
        return [prefix or "(root)"]
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        out += _diff(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key), depth - 1)
    return out


def managed_by(obj: Obj, manager: str = FIELD_MANAGER) -> bool:
    """True when ``manager`` owns fields of ``obj`` (an entry in ``metadata.managedFields``)."""
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    return any(e.get("manager") == manager for e in entries)


def other_managers(obj: Obj, manager: str = FIELD_MANAGER) -> list[str]:
    """Field managers of ``obj`` other than ``manager`` (who else wrote the object)."""
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    return sorted({str(e.get("manager")) for e in entries if e.get("manager") != manager})


class ServerApply:
    """GET and server-side apply (real or dry run) of plain-dict objects on one cluster.

    Args:
        kube: the cluster's transport.
        resources: its discovery cache.
        field_manager: the manager name recorded in ``managedFields``.
    """

    def __init__(self, kube: Kube, resources: ResourceCache, field_manager: str = FIELD_MANAGER) -> None:
        self.kube = kube
        self.resources = resources
        self.field_manager = field_manager

    def resource_of(self, obj: Obj) -> ApiResource | None:
        """The served resource of ``obj``'s kind, or None when the cluster does not serve it."""
        return self.resources.lookup(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))

    def path(self, obj: Obj) -> str:
        """URL of ``obj`` on this cluster.

        Raises:
            TargetError: the kind is not served, or a namespaced object has no namespace.
        """
        info = self.resource_of(obj)
        r = ref(obj)
        if info is None:
            raise TargetError(f"the target does not serve {r.kind} of {r.api_version}", resource=f"{r.kind.lower()}/"
                              f"{r.name}", namespace=r.namespace, fix="install its CRD or operator on the target first")
        if info.namespaced and not r.namespace:
            raise TargetError("a namespaced object has no metadata.namespace", resource=f"{r.kind.lower()}/{r.name}",
                              fix="set metadata.namespace (k3smig never guesses 'default')")
        return info.path(r.namespace, r.name)

    def get(self, obj: Obj) -> Obj | None:
        """The live object with ``obj``'s identity, or None when it does not exist.

        Raises:
            TargetError: the GET failed (other than 404); 403 names the RBAC rule to grant.
        """
        resp = self.kube.request("GET", self.path(obj), counter="gets", accept=(404,))
        return None if resp.status == 404 else resp.body

    def apply(self, obj: Obj, *, dry_run: bool, force: bool = False, accept: Collection[int] = ()) -> ApiResponse:
        """Server-side apply ``obj``; statuses in ``accept`` come back as a response, others raise.

        Args:
            obj: the desired object (status and server metadata are stripped before sending).
            dry_run: ``dryRun=All``: validated and admitted, never stored.
            force: take ownership of fields another manager owns (only under ``existing=update``).
            accept: error statuses the caller decides on (a plan reads 404, 409 and 422).

        Raises:
            ConflictError: 409 not in ``accept``.
            TargetError: any other refusal not in ``accept`` (status, reason and field paths named).
        """
        query: dict[str, Any] = {"fieldManager": self.field_manager}
        if force:
            query["force"] = "true"
        if dry_run:
            query["dryRun"] = "All"
        return self.kube.request("PATCH", self.path(obj), counter="dry_runs" if dry_run else "applies", query=query,
                                 body=apply_body(obj), content_type=APPLY_PATCH, accept=accept)
