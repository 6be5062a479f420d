"""Quiesce the source: scale the workloads that write a volume to 0, recording what they were.

The only change k3smig ever makes to the source (docs/safety.md, the safety model). Like Crane, the
original replica count is written on the object itself (``k3smig.io/pre-quiesce-replicas``) in the
same request that scales it down, so a crash of the operator's machine between "source scaled to 0"
and "target released" loses nothing: :func:`restore` (rollback) reads it back from the cluster, and a
re-run sees the workload already quiesced and keeps the recorded count (case 13). Scaling waits until
the workload's pods are gone — a pod still terminating may still be writing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from k3smig_lib.core.objects import PRE_QUIESCE, QUIESCED_AT, Obj, get_path
from k3smig_lib.k8s.errors import fatal_class

if TYPE_CHECKING:
    from k3smig_lib.k8s.client import Kube

QUIESCE_MANAGER = "k3smig-quiesce"
_PLURALS = {"Deployment": "deployments", "StatefulSet": "statefulsets"}


@dataclass(frozen=True)
class Quiesced:
    """One workload scaled down (or found already down).

    Attributes:
        workload: ``Kind/namespace/name``.
        replicas: the replica count before k3smig scaled it (from the annotation when already down).
        at: UTC time of the scale-down (ISO 8601), as recorded on the object.
        already: it was already quiesced by an earlier run (nothing changed now).
    """

    workload: str
    replicas: int
    at: str
    already: bool = False


def _path(kind: str, namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/{_PLURALS[kind]}/{name}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scale_down(kube: Kube, kind: str, namespace: str, name: str) -> Quiesced:
    """Scale one Deployment/StatefulSet to 0, recording its replicas on it (idempotent).

    Raises:
        SourceError: the workload cannot be read or patched (403 names the RBAC rule: ``patch``).
    """
    obj = kube.json("GET", _path(kind, namespace, name), counter="gets")
    ann = get_path(obj, "metadata.annotations", {}) or {}
    current = int(get_path(obj, "spec.replicas", 1) if get_path(obj, "spec.replicas") is not None else 1)
    wid = f"{kind}/{namespace}/{name}"
    if PRE_QUIESCE in ann:
        if current != 0:  # someone scaled it up again since: scale down, keep the first record
            kube.request("PATCH", _path(kind, namespace, name), counter="writes", body={"spec": {"replicas": 0}},
                         query={"fieldManager": QUIESCE_MANAGER}, content_type="application/merge-patch+json")
        return Quiesced(wid, int(ann[PRE_QUIESCE]), str(ann.get(QUIESCED_AT, "")), already=True)
    at = _now()
    body = {"metadata": {"annotations": {PRE_QUIESCE: str(current), QUIESCED_AT: at}}, "spec": {"replicas": 0}}
    kube.request("PATCH", _path(kind, namespace, name), counter="writes", body=body,
                 query={"fieldManager": QUIESCE_MANAGER}, content_type="application/merge-patch+json")
    return Quiesced(wid, current, at)


def _selector(obj: Obj) -> str:
    labels = get_path(obj, "spec.selector.matchLabels", {}) or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def wait_stopped(kube: Kube, kind: str, namespace: str, name: str, *, timeout: float = 300.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
    """Wait until no pod of the workload is left (terminating ones included).

    Raises:
        SourceError: pods remain after ``timeout`` seconds (named).
    """
    obj = kube.json("GET", _path(kind, namespace, name), counter="gets")
    selector = _selector(obj)
    end = clock() + timeout
    while True:
        pods = kube.json("GET", f"/api/v1/namespaces/{namespace}/pods", counter="lists",
                         query={"labelSelector": selector} if selector else None).get("items") or []
        if not pods:
            return
        if clock() >= end:
            names = ", ".join(str(get_path(p, "metadata.name")) for p in pods[:3])
            raise fatal_class("source")(f"{kind}/{name} in ns {namespace} still has pods after {timeout:g}s "
                                        f"at 0 replicas: {names}",
                                        fix="look at why they do not terminate (finalizers, a stuck node), then re-run")
        sleep(min(1.0, max(0.0, end - clock())))


def restore(kube: Kube, kind: str, namespace: str, name: str) -> int | None:
    """Scale a quiesced workload back to its recorded replicas and drop the record (rollback).

    Returns:
        The replicas restored, or None when the workload carries no record (never quiesced).
    """
    obj = kube.json("GET", _path(kind, namespace, name), counter="gets")
    ann = get_path(obj, "metadata.annotations", {}) or {}
    if PRE_QUIESCE not in ann:
        return None
    replicas = int(ann[PRE_QUIESCE])
    body = {"metadata": {"annotations": {PRE_QUIESCE: None, QUIESCED_AT: None}}, "spec": {"replicas": replicas}}
    kube.request("PATCH", _path(kind, namespace, name), counter="writes", body=body,
                 query={"fieldManager": QUIESCE_MANAGER}, content_type="application/merge-patch+json")
    return replicas


def quiesce_all(kube: Kube, workloads: Sequence[tuple[str, str, str]], *, timeout: float = 300.0) -> list[Quiesced]:
    """Scale every ``(kind, namespace, name)`` down, then wait for all of their pods to be gone.

    Raises:
        SourceError: a workload cannot be scaled, or its pods do not stop in time.
    """
    done = [scale_down(kube, kind, ns, name) for kind, ns, name in workloads]
    for kind, ns, name in workloads:
        wait_stopped(kube, kind, ns, name, timeout=timeout)
    return done


def is_scalable(kind: str) -> bool:
    """Kinds k3smig quiesces (a DaemonSet cannot be scaled; it is reported instead)."""
    return kind in _PLURALS


__all__ = ["PRE_QUIESCE", "QUIESCED_AT", "Quiesced", "is_scalable", "quiesce_all", "restore", "scale_down",
           "wait_stopped"]
