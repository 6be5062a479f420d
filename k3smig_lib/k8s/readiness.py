"""When is an object ready: one pure predicate per kind, and one waiter on a monotonic clock.

Predicates read plain dicts (what the API returns) and never call the API, so they are tested
against YAML fixtures; the single waiter polls a ``fetch`` callable until the predicate holds,
on ``time.monotonic()`` (a wall-clock jump neither shortens nor stretches a timeout), retries
transient API errors, and returns at once in plan-only mode (Anchor 4: kubernetes.core's waiter).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from k3smig_lib.core.objects import Obj, ObjRef, get_path, ref
from k3smig_lib.errors import FatalError, RetryableError

T = TypeVar("T")
Predicate = Callable[[Obj], bool]


def _int(obj: Obj, path: str) -> int:
    return int(get_path(obj, path) or 0)


def _replicas(obj: Obj) -> int:
    """``spec.replicas``, which the API defaults to 1 when absent."""
    value = get_path(obj, "spec.replicas")
    return 1 if value is None else int(value)


def _observed(obj: Obj) -> bool:
    """The controller has seen the latest spec (else every count below is stale)."""
    return _int(obj, "status.observedGeneration") >= _int(obj, "metadata.generation")


def condition(obj: Obj, kind: str) -> Obj | None:
    """The status condition of type ``kind``, or None.

    Examples:
        >>> condition({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, "Ready")["status"]
        'True'
    """
    for cond in get_path(obj, "status.conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def _true(obj: Obj, kind: str) -> bool:
    cond = condition(obj, kind)
    return cond is not None and cond.get("status") == "True"


def deployment_ready(obj: Obj) -> bool:
    """Rolled out: every replica updated and available, no old replica left, nothing stuck.

    Examples:
        >>> deployment_ready({"spec": {"replicas": 2}, "status": {"replicas": 2, "updatedReplicas": 2,
        ...                   "availableReplicas": 1}})
        False
    """
    want = _replicas(obj)
    stuck = (condition(obj, "Progressing") or {}).get("reason") == "ProgressDeadlineExceeded"
    return (_observed(obj) and not stuck and _int(obj, "status.replicas") == want
            and _int(obj, "status.updatedReplicas") == want and _int(obj, "status.availableReplicas") >= want)


def statefulset_ready(obj: Obj) -> bool:
    """Every replica ready and, for rolling updates, on the update revision."""
    want = _replicas(obj)
    ready = _observed(obj) and _int(obj, "status.readyReplicas") == want and _int(obj, "status.replicas") == want
    if get_path(obj, "spec.updateStrategy.type", "RollingUpdate") != "RollingUpdate":
        return ready
    current, update = get_path(obj, "status.currentRevision"), get_path(obj, "status.updateRevision")
    return ready and _int(obj, "status.updatedReplicas") == want and (want == 0 or current == update)


def daemonset_ready(obj: Obj) -> bool:
    """Scheduled on every node it should be, updated and available there."""
    want = _int(obj, "status.desiredNumberScheduled")
    return (_observed(obj) and _int(obj, "status.currentNumberScheduled") == want
            and _int(obj, "status.updatedNumberScheduled") == want and _int(obj, "status.numberAvailable") == want)


def job_complete(obj: Obj) -> bool:
    """The Job has the ``Complete`` condition (a ``Failed`` Job never completes)."""
    return _true(obj, "Complete") and not _true(obj, "Failed")


def pvc_bound(obj: Obj) -> bool:
    """The claim is bound to a volume."""
    return bool(get_path(obj, "status.phase") == "Bound")


def ingress_ready(obj: Obj) -> bool:
    """The ingress controller published an address (IP or hostname)."""
    return any(i.get("ip") or i.get("hostname") for i in get_path(obj, "status.loadBalancer.ingress") or [])


def certificate_ready(obj: Obj) -> bool:
    """cert-manager's ``Ready`` condition is true for the current spec."""
    cond = condition(obj, "Ready") or {}
    seen = cond.get("observedGeneration")
    return cond.get("status") == "True" and (seen is None or int(seen) >= _int(obj, "metadata.generation"))


def crd_established(obj: Obj) -> bool:
    """The CRD is served: its custom resources can be created."""
    return _true(obj, "Established")


def _ready_endpoints(slice_: Obj) -> int:
    """Endpoints of a slice that are ready (an absent ``ready`` means ready)."""
    return sum(1 for e in slice_.get("endpoints") or [] if (e.get("conditions") or {}).get("ready") is not False)


def _slices_of(service: Obj, slices: Sequence[Obj]) -> list[Obj]:
    r = ref(service)
    return [s for s in slices if ref(s).namespace == r.namespace
            and ((s.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name") == r.name]


def service_has_endpoints(service: Obj, slices: Sequence[Obj]) -> bool:
    """At least one ready endpoint backs the Service (ExternalName Services have none and need none).

    Args:
        service: the Service.
        slices: EndpointSlices of its namespace (those of other Services are ignored).
    """
    if get_path(service, "spec.type") == "ExternalName":
        return True
    return any(_ready_endpoints(s) for s in _slices_of(service, slices))


READINESS_PREDICATES: dict[str, Predicate] = {
    "Deployment": deployment_ready,
    "StatefulSet": statefulset_ready,
    "DaemonSet": daemonset_ready,
    "Job": job_complete,
    "PersistentVolumeClaim": pvc_bound,
    "Ingress": ingress_ready,
    "Certificate": certificate_ready,
    "CustomResourceDefinition": crd_established,
}
"""Kind → predicate on the object alone. Services need their EndpointSlices: :func:`service_has_endpoints`."""


def _condition_text(obj: Obj, kind: str) -> str:
    cond = condition(obj, kind) or {}
    return f"condition {kind}={cond.get('status', 'absent')}" + (f" ({cond['reason']})" if cond.get("reason") else "")


_SUMMARIES: dict[str, Callable[[Obj], str]] = {
    "Deployment": lambda o: f"{_int(o, 'status.availableReplicas')}/{_replicas(o)} available",
    "StatefulSet": lambda o: f"{_int(o, 'status.readyReplicas')}/{_replicas(o)} ready",
    "DaemonSet": lambda o: f"{_int(o, 'status.numberAvailable')}/{_int(o, 'status.desiredNumberScheduled')} available",
    "Job": lambda o: _condition_text(o, "Failed" if _true(o, "Failed") else "Complete"),
    "PersistentVolumeClaim": lambda o: f"phase {get_path(o, 'status.phase') or 'unknown'}",
    "Ingress": lambda o: "no load-balancer address yet",
    "Certificate": lambda o: _condition_text(o, "Ready"),
    "CustomResourceDefinition": lambda o: _condition_text(o, "Established"),
}


def summary(value: Any) -> str:
    """A short progress text for a timeout message (``1/2 available``); never object contents.

    Examples:
        >>> summary({"kind": "Deployment", "spec": {"replicas": 2}, "status": {"availableReplicas": 1}})
        '1/2 available'
    """
    if isinstance(value, tuple) and value and isinstance(value[0], dict):
        return f"{sum(_ready_endpoints(s) for s in _slices_of(value[0], value[1]))} ready endpoints"
    if not isinstance(value, dict):
        return "not found"
    describe = _SUMMARIES.get(str(value.get("kind")))
    return describe(value) if describe else "not ready"


def _subject(value: Any, subject: ObjRef | None) -> ObjRef | None:
    if subject is not None:
        return subject
    first = value[0] if isinstance(value, tuple) and value else value
    return ref(first) if isinstance(first, dict) else None


def wait_until(
    fetch: Callable[[], T],
    predicate: Callable[[T], bool],
    timeout: float,
    interval: float = 2.0,
    *,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    plan_only: bool = False,
    subject: ObjRef | None = None,
) -> T | None:
    """Poll ``fetch()`` until ``predicate`` holds for what it returns, or fail after ``timeout`` seconds.

    The failure names ``timeout`` — the configured figure — never a measured or remaining time, so
    the same failure always reads the same ("not ready after 3s", not "after 2.99999s").

    Args:
        fetch: reads the current state (an object, or a tuple such as (Service, EndpointSlices)).
        predicate: the readiness test, e.g. ``READINESS_PREDICATES["Deployment"]``.
        timeout: seconds on ``clock`` before giving up, as configured (named in the failure).
        interval: seconds between polls.
        deadline: when several waits share one budget, the absolute ``clock`` time to stop at
            (instead of ``clock() + timeout``); ``timeout`` then only names the budget in the failure.
            The first poll always happens, even when the deadline has passed.
        clock: monotonic seconds (a fake one in tests).
        sleep: how to wait (advances the fake clock in tests).
        plan_only: return None at once, without fetching (a dry run waits for nothing).
        subject: the object waited for, when the fetched value does not name it.

    Returns:
        The last fetched value, which satisfies ``predicate`` (None in plan-only mode).

    Raises:
        FatalError: not ready in time; names the object, the timeout and the progress seen.

    Examples:
        >>> wait_until(lambda: {"status": {"phase": "Bound"}}, pvc_bound, timeout=5)
        {'status': {'phase': 'Bound'}}
    """
    if plan_only:
        return None
    stop = clock() + timeout if deadline is None else deadline
    value: Any = None
    last_error = ""
    while True:
        try:
            value = fetch()
            last_error = ""
            if predicate(value):
                return value  # type: ignore[no-any-return]
        except RetryableError as e:
            last_error = f"; last error: {e.message}"
        remaining = stop - clock()
        if remaining <= 0:
            break
        sleep(min(interval, remaining))
    who = _subject(value, subject)
    raise FatalError(f"{who or 'the object'} is not ready after {timeout:g}s: {summary(value)}{last_error}",
                     fix="look at the object's events (`kubectl describe`), or raise the timeout if it is just slow")
