"""API-server defaults (K27): fields the source's server filled in, dropped so the target's fills them again.

A ``kubectl get -o yaml`` export carries every default the API server set on create
(``imagePullPolicy``, ``terminationMessagePath``, ``dnsPolicy``, Service ``sessionAffinity``…). Kept,
they bloat the GitOps tree and make k3smig the server-side-apply owner of values nobody chose. The
table below holds each default per API version and kind; a field goes only when its value equals the
default *and* its provenance (:mod:`k3smig_lib.core.clean.provenance`) says nobody but the server set
it. A default the user wrote explicitly stays, and so does any value that differs from the default.

This step runs first, while ``managedFields`` and ``last-applied-configuration`` are still on the
working copy (M6 and M10 strip them). Custom resources are never touched: their defaults live in
their CRDs' schemas, which an export does not carry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from k3smig_lib.core.clean.context import Work
from k3smig_lib.core.clean.provenance import Provenance, Step

#: A default: the value, or a function of the object that holds the field (a container, a port).
Default = Any
Row = tuple[tuple[str, ...], Default]


def pull_policy(container: dict[str, Any]) -> str:
    """The ``imagePullPolicy`` the server sets: ``Always`` for ``:latest`` or no tag, else ``IfNotPresent``.

    Examples:
        >>> pull_policy({"image": "nginx"}), pull_policy({"image": "registry:5000/app:1.2"})
        ('Always', 'IfNotPresent')
    """
    image = str(container.get("image") or "")
    if "@" in image:
        return "IfNotPresent"
    name = image.rsplit("/", 1)[-1]
    tag = name.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _target_port(port: dict[str, Any]) -> Any:
    return port.get("port")


_PROBE = (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3))


def _container_rows(field: str) -> list[Row]:
    rows: list[Row] = [
        ((field, "*", "imagePullPolicy"), pull_policy),
        ((field, "*", "terminationMessagePath"), "/dev/termination-log"),
        ((field, "*", "terminationMessagePolicy"), "File"),
        ((field, "*", "resources"), {}),
        ((field, "*", "ports", "*", "protocol"), "TCP"),
    ]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        rows += [((field, "*", probe, key), value) for key, value in _PROBE]
        rows.append(((field, "*", probe, "httpGet", "scheme"), "HTTP"))
    return rows


#: Defaults of a pod spec (core/v1 PodSpec), relative to wherever the kind keeps it.
POD_SPEC: tuple[Row, ...] = (
    (("dnsPolicy",), "ClusterFirst"),
    (("enableServiceLinks",), True),
    (("restartPolicy",), "Always"),
    (("schedulerName",), "default-scheduler"),
    (("securityContext",), {}),
    (("terminationGracePeriodSeconds",), 30),
    *_container_rows("initContainers"),
    *_container_rows("containers"),
    (("volumes", "*", "secret", "defaultMode"), 420),
    (("volumes", "*", "configMap", "defaultMode"), 420),
)
_TEMPLATE = ("spec", "template", "spec")
#: Where each kind keeps its pod spec, per API version.
POD_SPEC_AT: dict[tuple[str, str], tuple[str, ...]] = {
    ("v1", "Pod"): ("spec",),
    ("v1", "PodTemplate"): ("template", "spec"),
    ("v1", "ReplicationController"): _TEMPLATE,
    ("apps/v1", "Deployment"): _TEMPLATE,
    ("apps/v1", "StatefulSet"): _TEMPLATE,
    ("apps/v1", "DaemonSet"): _TEMPLATE,
    ("apps/v1", "ReplicaSet"): _TEMPLATE,
    ("batch/v1", "Job"): _TEMPLATE,
    ("batch/v1", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}
#: Defaults of the kinds' own fields, per API version.
KIND_FIELDS: dict[tuple[str, str], tuple[Row, ...]] = {
    ("v1", "Service"): (
        (("spec", "sessionAffinity"), "None"),
        (("spec", "type"), "ClusterIP"),
        (("spec", "internalTrafficPolicy"), "Cluster"),
        (("spec", "ports", "*", "protocol"), "TCP"),
        (("spec", "ports", "*", "targetPort"), _target_port),
    ),
    ("apps/v1", "Deployment"): (
        (("spec", "progressDeadlineSeconds"), 600),
        (("spec", "revisionHistoryLimit"), 10),
        (("spec", "strategy"),
         {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
    ),
    ("apps/v1", "StatefulSet"): (
        (("spec", "podManagementPolicy"), "OrderedReady"),
        (("spec", "revisionHistoryLimit"), 10),
        (("spec", "updateStrategy"), {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
    ),
}


def rows_for(api_version: str, kind: str) -> list[Row]:
    """Every default row of one API version and kind, with paths from the object's root."""
    rows = list(KIND_FIELDS.get((api_version, kind), ()))
    base = POD_SPEC_AT.get((api_version, kind))
    if base is not None:
        rows += [((*base, *pattern), default) for pattern, default in POD_SPEC]
    return rows


Hit = tuple[dict[str, Any], str, list[Step], str]


def _walk(node: Any, pattern: tuple[str, ...], steps: list[Step], text: str) -> Iterator[Hit]:
    """Every ``(holder, key, steps, dotted path of holder)`` that ``pattern`` reaches in ``node``."""
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        if isinstance(node, list):
            for i, item in enumerate(node):
                yield from _walk(item, rest, [*steps, (i, item)], f"{text}[{i}]")
        return
    if not isinstance(node, dict) or head not in node:
        return
    if not rest:
        yield node, head, [*steps, head], text
        return
    yield from _walk(node[head], rest, [*steps, head], f"{text}.{head}" if text else head)


def _equal(value: Any, default: Any) -> bool:
    """Equal and of the same type: ``enableServiceLinks: 1`` or ``30.0`` is not the server's default."""
    return type(value) is type(default) and value == default


def apply(work: Work) -> None:
    """Drop the fields of a built-in kind that hold the server's default and that nobody set (K27).

    Args:
        work: the object being cleaned, with its managedFields and last-applied still on it.
    """
    if not work.kind:
        return
    rows = rows_for(str(work.obj.get("apiVersion", "")), work.kind)
    if not rows:
        return
    provenance = Provenance.of(work.obj)
    if provenance.authored:
        return
    version = work.obj.get("apiVersion")
    for pattern, default in rows:
        for holder, key, steps, text in list(_walk(work.obj, pattern, [], "")):
            expected = default(holder) if callable(default) else default
            why = provenance.defaulted(steps) if _equal(holder[key], expected) else ""
            if why:
                work.pop("K27", holder, key, text, note=f"{version} {work.kind} default; {why}")
