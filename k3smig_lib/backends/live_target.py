"""Live target: a K3s cluster written with server-side apply, planned with a server-side dry run.

``apply(objects, dry_run=True)`` is the plan: every object is read (GET) and, server-side,
dry-run applied (``dryRun=All``); what the server *would* store is compared with what it stores
(metadata noise ignored) → ``create`` / ``unchanged`` / ``update`` / ``conflict``. Conflict policy
(docs/safety.md cases 4, 5, 12):

- ``fail`` (default): an existing object that differs is a *conflict*, reported with the differing
  field paths (names only, never a Secret's values); when any conflict exists nothing is written.
- ``update``: differing objects converge; fields owned by another manager are taken over (``force``).
- Under both, a Secret whose ``type`` differs, or an immutable object that differs, is a conflict:
  k3smig never deletes and recreates an object to get around the API server.

``list_objects`` returns the objects **k3smig manages** (a ``managedFields`` entry of manager
``k3smig``) across every served resource: what this tool wrote, like the directory target's tree.
Controller-made children (ReplicaSets, Pods, EndpointSlices) and objects that already existed
identically (reported ``unchanged``, not taken over) are not in it; :meth:`LiveTarget.get` reads
any single object.

Everything goes through the target's one transport (:class:`~k3smig_lib.k8s.client.Kube`): the same
retry loop, error mapping, discovery and lists as the live source, and its injectable clock and
sleep for every wait (write-conflict backoff, CRD establishment, readiness).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any

from k3smig_lib.backends.base import ApplyItem, ApplyResult, SourceInfo, VolumeRef
from k3smig_lib.backends.live_volumes import PodVolume, open_pod_volume
from k3smig_lib.core.config import DEFAULT_HELPER_IMAGE
from k3smig_lib.core.objects import Obj, ref, sha256_of
from k3smig_lib.core.order import sort_for_apply
from k3smig_lib.errors import ConflictError, FatalError, ParameterError, TargetError
from k3smig_lib.k8s.apply import (
    FIELD_MANAGER,
    PlanAction,
    ServerApply,
    differing_fields,
    managed_by,
    other_managers,
)
from k3smig_lib.k8s.client import ApiResponse, CallCounts, ClusterRef, Kube
from k3smig_lib.k8s.discovery import ApiResource, ResourceCache, discover
from k3smig_lib.k8s.errors import status_of
from k3smig_lib.k8s.listing import list_resource
from k3smig_lib.k8s.lock import RunLock, holder_identity
from k3smig_lib.k8s.readiness import READINESS_PREDICATES, crd_established, service_has_endpoints, wait_until
from k3smig_lib.k8s.retry import RetryPolicy
from k3smig_lib.k8s.volhelper import remaining, sweep
from k3smig_lib.log import logger

POLICIES = ("fail", "update")
#: Kinds never applied by k3smig and too chatty to list when looking for what it manages.
_NOT_LISTED = frozenset({"Event"})
_WRITE_ATTEMPTS = 3
#: Waits between re-plans after a write conflict: short, jittered (another writer is usually quick).
_CONFLICT_BACKOFF = RetryPolicy(attempts=_WRITE_ATTEMPTS, base_delay=0.2, max_delay=2.0)
_PLAN_WORKERS = 4


@dataclass
class Planned:
    """The plan for one object: what applying it does, and why."""

    obj: Obj
    action: PlanAction
    reason: str = ""
    fields: tuple[str, ...] = ()


@dataclass
class _Batch:
    """What the objects being applied create themselves: namespaces and CRD-defined kinds."""

    namespaces: set[str] = field(default_factory=set)
    crd_kinds: set[tuple[str, str]] = field(default_factory=set)  # (group, kind)

    @classmethod
    def of(cls, objects: Sequence[Obj]) -> _Batch:
        batch = cls()
        for obj in objects:
            if obj.get("kind") == "Namespace":
                batch.namespaces.add(ref(obj).name)
            elif obj.get("kind") == "CustomResourceDefinition":
                spec = obj.get("spec") or {}
                batch.crd_kinds.add((str(spec.get("group")), str((spec.get("names") or {}).get("kind"))))
        return batch


def _is_secret(obj: Obj) -> bool:
    return obj.get("kind") == "Secret"


def _secret_type(obj: Obj) -> str:
    return str(obj.get("type") or "Opaque")


def _fields_text(fields: Sequence[str]) -> str:
    shown = ", ".join(fields[:8])
    return shown + (f" (+{len(fields) - 8} more)" if len(fields) > 8 else "")


def _conflicting_managers(resp: ApiResponse) -> str:
    """Managers named by a 409's causes (``conflict with "kubectl-edit" using apps/v1``).

    Only the quoted manager name is taken from a cause's message, never the message itself.
    """
    causes = (resp.body.get("details") or {}).get("causes") or []
    names = {m for c in causes for m in re.findall(r'conflict with "([^"]+)"', str(c.get("message", "")))}
    return ", ".join(sorted(names)) or "another manager"


def _refusal(resp: ApiResponse, live: Obj, obj: Obj) -> Planned:
    """A 409/422 from the dry run, as a conflict that says why.

    The reason carries the status, ``Status.reason`` and the failing field paths with their cause
    reasons, never the server's message (it can quote a value, a Secret's included).
    """
    fields = resp.fields
    if live.get("immutable"):
        reason = f"the live {obj.get('kind')} is immutable and differs; k3smig never deletes it (delete it yourself)"
    elif resp.status == 409:
        reason = (f"fields owned by {_conflicting_managers(resp)} differ: {_fields_text(fields)}; "
                  "policy existing=fail: not overwritten (existing=update takes them over)")
    else:
        reason = f"the API server refuses the change ({resp.detail})"
    return Planned(obj, "conflict", reason, fields)


class LiveTarget:
    """The ``Target`` port on a live cluster.

    Args:
        cluster: kubeconfig and context of the target (explicit, never the current-context).
        existing: default conflict policy, ``fail`` or ``update``.
        field_manager: manager name of every write.
        crd_timeout: seconds a CRD may take to become ``Established`` before its CRs are applied.
        run_id: the run that owns the volume helper pods (their label; sweeps keep it).
        helper_image: image of the volume helper pods.
        kube: a transport to use instead of building one from ``cluster`` (tests inject time, proxies).

    Raises:
        ParameterError: unknown policy, or the kubeconfig/context cannot be loaded.
    """

    def __init__(self, cluster: ClusterRef, *, existing: str = "fail", field_manager: str = FIELD_MANAGER,
                 crd_timeout: float = 60.0, kube: Kube | None = None, run_id: str = "",
                 helper_image: str = DEFAULT_HELPER_IMAGE) -> None:
        self.run_id, self.helper_image = run_id, helper_image
        self.cluster = cluster
        self.existing = _policy(existing)
        self.crd_timeout = crd_timeout
        self.kube = kube if kube is not None else Kube.of(replace(cluster, side=cluster.side or "target"))
        self.resources = ResourceCache(self.kube)
        self.server = ServerApply(self.kube, self.resources, field_manager)

    @property
    def calls(self) -> CallCounts:
        """API calls made so far, by purpose (the deploy phase reports them)."""
        return self.kube.counts

    def info(self) -> SourceInfo:
        """Version, distribution (K3s when the nodes' kubelets say so) and identity (``kube-system`` UID)."""
        version = self.kube.json("GET", "/version", counter="gets")
        ns = self.kube.json("GET", "/api/v1/namespaces/kube-system", counter="gets")
        nodes = self.kube.json("GET", "/api/v1/nodes", counter="lists", query={"limit": 50}).get("items") or []
        kubelets = " ".join(str((n.get("status") or {}).get("nodeInfo", {}).get("kubeletVersion")) for n in nodes)
        git_version = str(version.get("gitVersion", ""))
        k3s = "+k3s" in git_version or "+k3s" in kubelets
        return SourceInfo(kind="live", location=self.kube.host, cluster_name=self.cluster.context,
                          kubernetes_version=git_version, distribution="k3s" if k3s else "kubernetes",
                          identity=str((ns.get("metadata") or {}).get("uid", "")))

    def get(self, obj: Obj) -> Obj | None:
        """The live object with ``obj``'s identity (None when absent)."""
        return self.server.get(obj)

    def volume(self, volume: VolumeRef, *, user: tuple[int, int] | None = None) -> AbstractContextManager[PodVolume]:
        """A helper pod on the target claim (root unless ``user`` is given), deleted after."""
        why = "root: sets every numeric owner and mode as planned" if user is None else \
            f"{user[0]}:{user[1]}: the volume's only owner, no chown needed"
        return open_pod_volume(self.kube, volume, "target", run_id=self.run_id, image=self.helper_image, user=user,
                               why=why)

    def sweep_helpers(self, *, keep_run: str = "") -> list[str]:
        """Delete helper pods of other (crashed) runs on the target."""
        return sweep(self.kube, keep_run=keep_run)

    def helpers_left(self) -> list[str]:
        """Helper pods still on the target."""
        return remaining(self.kube)

    def lock(self, run_id: str, *, duration: int = 900) -> RunLock:
        """The run lock (a Lease) of this target for ``run_id``."""
        return RunLock(self.kube, holder_identity(run_id), duration=duration)

    # --- plan and apply -------------------------------------------------------------------------

    def apply(self, objects: Sequence[Obj], *, dry_run: bool, existing: str | None = None) -> ApplyResult:
        """Plan ``objects`` (server-side dry run) and, unless ``dry_run`` or a conflict, apply them in order.

        Args:
            objects: cleaned objects, in any order (sorted here, docs/cleaning-rules.md §8).
            dry_run: plan only; nothing is stored.
            existing: conflict policy for this call (default: the target's).

        Returns:
            One item per object in apply order, with action and reason.

        Raises:
            TargetError: the API server refused a request for another reason than a conflict.
            ConflictError: an object changed between plan and apply and now conflicts.
        """
        policy = _policy(existing or self.existing)
        ordered = sort_for_apply(objects)
        batch = _Batch.of(ordered)
        with ThreadPoolExecutor(max_workers=_PLAN_WORKERS) as pool:  # reads and dry runs only: order-free
            plans = list(pool.map(lambda obj: self.plan_one(obj, policy, batch), ordered))
        conflicts = sum(p.action == "conflict" for p in plans)
        if not dry_run and not conflicts:
            for item in plans:
                self._apply_one(item, policy, batch)
        logger.info("live target %s: %s (%s)", self.cluster.context, _tally(plans), "dry run" if dry_run or conflicts
                    else "applied")
        return ApplyResult([ApplyItem(ref(p.obj).id, p.action, p.reason, sha256_of(p.obj)) for p in plans],
                           dry_run=dry_run or bool(conflicts))

    def plan_one(self, obj: Obj, policy: str, batch: _Batch | None = None) -> Planned:
        """What applying ``obj`` would do (GET plus a server-side dry-run apply; nothing stored)."""
        batch = batch or _Batch()
        if self.server.resource_of(obj) is None:
            if _crd_key(obj) in batch.crd_kinds:
                return Planned(obj, "create", "its CRD is applied first in this run")
            return Planned(obj, "conflict", f"the target does not serve {obj.get('kind')} of {obj.get('apiVersion')} "
                           "and its CRD is not in this apply (install its operator on the target first)")
        live = self.server.get(obj)
        if live is None:
            return self._plan_create(obj, batch)
        if obj.get("kind") == "Namespace" and (live.get("status") or {}).get("phase") == "Terminating":
            return Planned(obj, "conflict", "the namespace is being deleted (Terminating); wait until it is gone, "
                           "then re-run")
        if _is_secret(obj) and _secret_type(live) != _secret_type(obj):
            return Planned(obj, "conflict", f"Secret type differs (live {_secret_type(live)}, desired "
                           f"{_secret_type(obj)}): a Secret's type cannot change and k3smig never deletes it "
                           "(delete or rename it yourself)", ("type",))
        resp = self.server.apply(obj, dry_run=True, force=policy == "update", accept=(409, 422))
        if resp.status in (409, 422):
            return _refusal(resp, live, obj)
        return _compare(obj, live, resp.body, policy)

    def _plan_create(self, obj: Obj, batch: _Batch) -> Planned:
        resp = self.server.apply(obj, dry_run=True, accept=(403, 404, 409, 422))
        if resp.ok:
            return Planned(obj, "create", "absent on the target")
        namespace = ref(obj).namespace
        if resp.status == 404 and namespace in batch.namespaces:
            return Planned(obj, "create", f"absent; namespace {namespace} is created first in this run")
        if resp.status == 404 and namespace:
            return Planned(obj, "conflict", f"namespace {namespace} does not exist on the target and is not in this "
                           "apply (a platform namespace? the platform layer must be installed first)")
        # the only way to tell a Terminating namespace from missing RBAC: the message is read, never shown
        if resp.status == 403 and "being terminated" in str(resp.body.get("message", "")):
            return Planned(obj, "conflict", f"namespace {namespace} is being deleted (Terminating); wait until it "
                           "is gone, then re-run")
        if resp.status in (409, 422):
            return _refusal(resp, {}, obj)
        raise resp.error()  # 403 (the RBAC rule named) or a 404 outside any namespace

    def _apply_one(self, item: Planned, policy: str, batch: _Batch) -> None:
        if item.action in ("create", "update"):
            self._write(item, policy, batch)
        if item.obj.get("kind") == "CustomResourceDefinition" and item.action != "conflict":
            self._wait_established(item.obj)

    def _write(self, item: Planned, policy: str, batch: _Batch) -> None:
        """Apply for real; a 409 (someone changed the object since the plan) re-plans it, bounded (case 12).

        Between re-plans the transport's jittered backoff waits (its injectable sleep, so tests never
        wait for real).
        """
        r = ref(item.obj)
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            resp = self.server.apply(item.obj, dry_run=False, force=policy == "update", accept=(409,))
            if resp.ok:
                return
            again = self.plan_one(item.obj, policy, batch)
            if again.action in ("unchanged", "conflict"):
                item.action, item.reason, item.fields = again.action, again.reason, again.fields
                if again.action == "conflict":
                    raise ConflictError(f"changed on the target during the apply: {again.reason}",
                                        resource=f"{r.kind.lower()}/{r.name}", namespace=r.namespace,
                                        fix="re-run the deploy phase: its plan will show the new state")
                return
            if attempt < _WRITE_ATTEMPTS:
                self.kube.backoff(attempt, _CONFLICT_BACKOFF)
        raise ConflictError(f"kept conflicting after {_WRITE_ATTEMPTS} attempts", resource=f"{r.kind.lower()}/"
                            f"{r.name}", namespace=r.namespace, fix="stop whatever else writes this object, re-run")

    def _wait_established(self, crd: Obj) -> None:
        wait_until(lambda: self.server.get(crd), lambda o: o is not None and crd_established(o), self.crd_timeout,
                   interval=0.2, clock=self.kube.clock, sleep=self.kube.sleep, subject=ref(crd))
        self.resources.forget(str((crd.get("spec") or {}).get("group")))

    # --- read back ------------------------------------------------------------------------------

    def list_objects(self) -> list[Obj]:
        """Every object k3smig manages on the target (manager ``k3smig`` in ``managedFields``), sorted by id.

        Raises:
            TargetError: discovery or a list failed (RBAC: k3smig needs ``list`` on every kind it applies).
        """
        found = discover(self.kube)
        if found.failed:
            names = ", ".join(sorted(found.failed))
            raise TargetError(f"discovery could not read the API group version(s) {names}: "
                              f"{next(iter(found.failed.values()))}",
                              fix="repair or remove the broken APIService (`kubectl get apiservices`), then re-run")
        listable = [r for r in found.listable if r.kind not in _NOT_LISTED]
        with ThreadPoolExecutor(max_workers=4) as pool:
            chunks = list(pool.map(self._list_managed, listable))
        return sorted((o for chunk in chunks for o in chunk), key=lambda o: ref(o).id)

    def _list_managed(self, res: ApiResource) -> list[Obj]:
        """Objects of one kind that k3smig manages: paged, retried, relisted (bounded) on 410 Gone.

        A kind that vanished since discovery (404/405: a CRD deleted meanwhile) has none.
        """
        try:
            listed = list_resource(self.kube, res)
        except FatalError as e:
            if status_of(e) in (404, 405):
                return []
            raise
        return [o for o in listed.items if managed_by(o, self.server.field_manager)]

    def wait_ready(self, objects: Sequence[Obj], *, timeout: float = 300.0, interval: float = 2.0,
                   plan_only: bool = False) -> list[str]:
        """Wait until every object with a readiness predicate is ready (one deadline for all).

        Returns:
            Ids of the objects waited for, in order.

        Raises:
            FatalError: one is not ready in time (named, with its progress).
        """
        deadline = self.kube.clock() + timeout
        waited: list[str] = []
        for obj in objects:
            probe = self._probe(obj)
            if probe is None:
                continue
            fetch, ready = probe
            wait_until(fetch, ready, timeout, interval, deadline=deadline, clock=self.kube.clock,
                       sleep=self.kube.sleep, plan_only=plan_only, subject=ref(obj))
            waited.append(ref(obj).id)
        return waited

    def _probe(self, obj: Obj) -> tuple[Callable[[], Any], Callable[[Any], bool]] | None:
        kind = str(obj.get("kind"))
        if kind == "Service":
            namespace = ref(obj).namespace
            return (lambda: (self.server.get(obj), self._slices(namespace)),
                    lambda v: v[0] is not None and service_has_endpoints(v[0], v[1]))
        predicate = READINESS_PREDICATES.get(kind)
        if predicate is None:
            return None
        return lambda: self.server.get(obj), lambda v: v is not None and predicate(v)

    def _slices(self, namespace: str) -> list[Obj]:
        """EndpointSlices of ``namespace``."""
        return self.list_objects_of("discovery.k8s.io/v1", "EndpointSlice", namespace)

    def list_objects_of(self, api_version: str, kind: str, namespace: str = "") -> list[Obj]:
        """Every object of one kind (in ``namespace``, or everywhere); empty when the kind is not served."""
        info = self.resources.lookup(api_version, kind)
        return list_resource(self.kube, info, namespace=namespace).items if info else []


def _policy(existing: str) -> str:
    if existing not in POLICIES:
        raise ParameterError(f"unknown conflict policy existing={existing!r}", fix="use 'fail' (default) or 'update'")
    return existing


def _crd_key(obj: Obj) -> tuple[str, str]:
    api_version = str(obj.get("apiVersion", ""))
    return (api_version.split("/")[0] if "/" in api_version else "", str(obj.get("kind")))


def _compare(obj: Obj, live: Obj, would_be: Obj, policy: str) -> Planned:
    """Plan for an existing object from what the dry run says it would become."""
    fields = differing_fields(live, would_be)
    if not fields:
        owner = "" if managed_by(live) else f" (written by {', '.join(other_managers(live))}; not taken over)"
        return Planned(obj, "unchanged", "identical on the target" + owner)
    if policy == "update":
        return Planned(obj, "update", f"differs in {_fields_text(fields)}; policy existing=update", tuple(fields))
    return Planned(obj, "conflict", f"exists and differs in {_fields_text(fields)}; policy existing=fail: "
                   "not overwritten (pass existing=update to converge)", tuple(fields))


def _tally(plans: Sequence[Planned]) -> str:
    counts: dict[str, int] = {}
    for p in plans:
        counts[p.action] = counts.get(p.action, 0) + 1
    return ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
