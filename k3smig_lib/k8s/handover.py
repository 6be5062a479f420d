"""The cluster side of a cutover: stop, reconfigure and restore workloads, recording what they were.

Like the quiesce of phase 70, every change records the previous state *on the object itself*, in the
same request: a stopped Deployment carries ``k3smig.io/pre-cutover-replicas``, a reconfigured
external-dns carries its previous arguments in ``k3smig.io/pre-cutover-args``. So a crash between two
steps loses nothing, a re-run keeps the first record, and ``k3smig rollback`` reads the records back
from the clusters, not from the operator's memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from k3smig_lib.core.objects import get_path

if TYPE_CHECKING:
    from k3smig_lib.k8s.client import Kube

PRE_CUTOVER_REPLICAS = "k3smig.io/pre-cutover-replicas"
PRE_CUTOVER_ARGS = "k3smig.io/pre-cutover-args"
MANAGER = "k3smig-cutover"
_PLURALS = {"Deployment": "deployments", "StatefulSet": "statefulsets"}


@dataclass(frozen=True)
class Step:
    """One change made (or found already made) on a cluster, for the report and the ledger."""

    cluster: str
    workload: str
    action: str
    before: str
    after: str
    already: bool = False


def path(kind: str, namespace: str, name: str) -> str:
    """API path of a Deployment or StatefulSet."""
    return f"/apis/apps/v1/namespaces/{namespace}/{_PLURALS[kind]}/{name}"


def get(kube: Kube, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """The workload, or None when it does not exist."""
    resp = kube.request("GET", path(kind, namespace, name), counter="gets", accept=(404,))
    return None if resp.status == 404 else resp.body


def _patch(kube: Kube, kind: str, namespace: str, name: str, body: dict[str, Any],
           content_type: str = "application/merge-patch+json") -> None:
    kube.request("PATCH", path(kind, namespace, name), counter="writes", body=body,
                 query={"fieldManager": MANAGER}, content_type=content_type)


def replicas_of(obj: dict[str, Any]) -> int:
    """``spec.replicas`` with Kubernetes' default of 1."""
    value = get_path(obj, "spec.replicas")
    return 1 if value is None else int(value)


def stop(kube: Kube, cluster: str, kind: str, namespace: str, name: str) -> Step:
    """Scale to 0, recording the replicas on the object (a second call keeps the first record)."""
    obj = get(kube, kind, namespace, name)
    wid = f"{kind}/{namespace}/{name}"
    if obj is None:
        return Step(cluster, wid, "stop", "absent", "absent", already=True)
    ann = get_path(obj, "metadata.annotations", {}) or {}
    current = replicas_of(obj)
    if PRE_CUTOVER_REPLICAS in ann:
        if current:
            _patch(kube, kind, namespace, name, {"spec": {"replicas": 0}})
        return Step(cluster, wid, "stop", f"{ann[PRE_CUTOVER_REPLICAS]} replicas (recorded)", "0", already=True)
    _patch(kube, kind, namespace, name,
           {"metadata": {"annotations": {PRE_CUTOVER_REPLICAS: str(current)}}, "spec": {"replicas": 0}})
    return Step(cluster, wid, "stop", f"{current} replicas", "0")


def start(kube: Kube, cluster: str, kind: str, namespace: str, name: str) -> Step:
    """Scale back to the recorded replicas and drop the record (no record: nothing to do)."""
    obj = get(kube, kind, namespace, name)
    wid = f"{kind}/{namespace}/{name}"
    ann = (get_path(obj, "metadata.annotations", {}) or {}) if obj else {}
    if obj is None or PRE_CUTOVER_REPLICAS not in ann:
        return Step(cluster, wid, "start", "no record", "unchanged", already=True)
    replicas = int(ann[PRE_CUTOVER_REPLICAS])
    _patch(kube, kind, namespace, name,
           {"metadata": {"annotations": {PRE_CUTOVER_REPLICAS: None}}, "spec": {"replicas": replicas}})
    return Step(cluster, wid, "start", "0", f"{replicas} replicas")


def args_of(obj: dict[str, Any]) -> list[str]:
    """Arguments of the first container."""
    containers = get_path(obj, "spec.template.spec.containers", []) or [{}]
    return [str(a) for a in containers[0].get("args") or []]


def set_flags(args: list[str], flags: dict[str, list[str]]) -> list[str]:
    """``args`` with every ``--flag=value`` of ``flags`` replaced by the given values ([] removes the flag).

    Examples:
        >>> set_flags(["--policy=upsert-only", "--source=ingress"], {"policy": ["sync"]})
        ['--source=ingress', '--policy=sync']
    """
    out = [a for a in args if a.split("=", 1)[0].lstrip("-") not in flags]
    for flag, values in flags.items():
        out += [f"--{flag}={v}" for v in values]
    return out


def reconfigure(kube: Kube, cluster: str, namespace: str, name: str, flags: dict[str, list[str]]) -> Step:
    """Change flags of a Deployment's first container, recording the previous arguments once."""
    obj = get(kube, "Deployment", namespace, name)
    wid = f"Deployment/{namespace}/{name}"
    if obj is None:
        return Step(cluster, wid, "reconfigure", "absent", "absent", already=True)
    containers = get_path(obj, "spec.template.spec.containers", []) or [{}]
    before = args_of(obj)
    after = set_flags(before, flags)
    ann = get_path(obj, "metadata.annotations", {}) or {}
    record = {} if PRE_CUTOVER_ARGS in ann else {PRE_CUTOVER_ARGS: json.dumps(before)}
    if after == before and not record:
        return Step(cluster, wid, "reconfigure", _show(flags, before), _show(flags, after), already=True)
    body = {"metadata": {"annotations": record},
            "spec": {"template": {"spec": {"containers": [{"name": containers[0].get("name"), "args": after}]}}}}
    _patch(kube, "Deployment", namespace, name, body, "application/strategic-merge-patch+json")
    return Step(cluster, wid, "reconfigure", _show(flags, before), _show(flags, after))


def restore_args(kube: Kube, cluster: str, namespace: str, name: str) -> Step:
    """Put back the arguments recorded by :func:`reconfigure` and drop the record."""
    obj = get(kube, "Deployment", namespace, name)
    wid = f"Deployment/{namespace}/{name}"
    ann = (get_path(obj, "metadata.annotations", {}) or {}) if obj else {}
    if obj is None or PRE_CUTOVER_ARGS not in ann:
        return Step(cluster, wid, "restore arguments", "no record", "unchanged", already=True)
    before = json.loads(ann[PRE_CUTOVER_ARGS])
    containers = get_path(obj, "spec.template.spec.containers", []) or [{}]
    body = {"metadata": {"annotations": {PRE_CUTOVER_ARGS: None}},
            "spec": {"template": {"spec": {"containers": [{"name": containers[0].get("name"), "args": before}]}}}}
    _patch(kube, "Deployment", namespace, name, body, "application/strategic-merge-patch+json")
    return Step(cluster, wid, "restore arguments", " ".join(_changed(args_of(obj), before)) or "same",
                " ".join(_changed(before, args_of(obj))) or "same")


def _show(flags: dict[str, list[str]], args: list[str]) -> str:
    keep = [a for a in args if a.split("=", 1)[0].lstrip("-") in flags]
    return " ".join(keep) or "(none)"


def _changed(a: list[str], b: list[str]) -> list[str]:
    return [x for x in a if x not in b]


def set_replicas(kube: Kube, cluster: str, kind: str, namespace: str, name: str, replicas: int,
                 annotations: dict[str, str | None]) -> Step:
    """Set replicas and annotations in one request (the held GitLab Runner on the target)."""
    obj = get(kube, kind, namespace, name)
    wid = f"{kind}/{namespace}/{name}"
    if obj is None:
        return Step(cluster, wid, "scale", "absent", "absent", already=True)
    current = replicas_of(obj)
    ann = get_path(obj, "metadata.annotations", {}) or {}
    if current == replicas and all(ann.get(k) == v for k, v in annotations.items()):
        return Step(cluster, wid, "scale", f"{current} replicas", f"{replicas} replicas", already=True)
    _patch(kube, kind, namespace, name, {"metadata": {"annotations": annotations}, "spec": {"replicas": replicas}})
    return Step(cluster, wid, "scale", f"{current} replicas", f"{replicas} replicas")
