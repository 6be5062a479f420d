"""One run at a time per target: a ``coordination.k8s.io/v1`` Lease with holder identity and expiry.

A second run that finds the Lease held by someone else stops before any change and names the holder
and when the lock expires (docs/safety.md case 15). A crashed run's Lease is taken over only
after it expired, and the takeover is reported. Every time is the **API server's** (its ``Date``
header, truncated to the second, plus a 2 s margin), so clock skew between operators' machines
cannot make a live lock look expired. Writes carry the ``resourceVersion`` read just before
(optimistic concurrency): two runs racing for the same Lease get one 200 and one 409 → refused.

Requests go through the target's transport (:class:`~k3smig_lib.k8s.client.Kube`): retried like
every other call, failures mapped once; the lock handles 404 and 409 itself and reads ``Date``.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

from k3smig_lib.core.objects import Obj
from k3smig_lib.errors import TargetError
from k3smig_lib.k8s.client import ApiResponse, Kube
from k3smig_lib.log import logger

LEASE_NAME = "k3smig-run-lock"
LEASE_NAMESPACE = "kube-system"
#: Seconds a lock lives without renewal: longer than any phase between two renewals.
DEFAULT_DURATION = 900
_MARGIN = timedelta(seconds=2)


class LockHeldError(TargetError):
    """Another run holds the target's run lock."""


class LockLostError(TargetError):
    """This run's lock expired and was taken, or was deleted, before it was renewed or released."""


def holder_identity(run_id: str) -> str:
    """``user@host run <run id>``: who to ask before breaking a lock."""
    return f"{getpass.getuser()}@{socket.gethostname()} run {run_id}"


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def _micro(moment: datetime) -> str:
    """MicroTime as the API wants it: ``2025-01-02T03:04:05.000000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def server_now(resp: ApiResponse) -> datetime:
    """The API server's clock from the response's ``Date`` header (the local UTC clock when absent)."""
    header = resp.header("Date")
    return parsedate_to_datetime(header).astimezone(UTC) if header else datetime.now(UTC)


@dataclass(frozen=True)
class LeaseView:
    """The part of a Lease the lock reads."""

    holder: str
    renewed: datetime | None
    duration: int
    transitions: int

    @classmethod
    def of(cls, lease: Obj) -> LeaseView:
        """Read a Lease object."""
        spec = lease.get("spec") or {}
        return cls(str(spec.get("holderIdentity") or ""), _time(spec.get("renewTime") or spec.get("acquireTime")),
                   int(spec.get("leaseDurationSeconds") or 0), int(spec.get("leaseTransitions") or 0))

    @property
    def expires_at(self) -> datetime | None:
        """When the holder's claim lapses (None when it was never renewed)."""
        return self.renewed + timedelta(seconds=self.duration) if self.renewed else None

    def free(self, now: datetime) -> bool:
        """Nobody holds it, or the holder's claim lapsed more than the safety margin ago."""
        return not self.holder or self.expires_at is None or now > self.expires_at + _MARGIN


@dataclass(frozen=True)
class Grant:
    """The lock, held: until when, and from whom it was taken over (when it was)."""

    holder: str
    expires_at: datetime
    took_over_from: str = ""
    previous_expiry: datetime | None = None

    @property
    def report(self) -> str:
        """One line for the run report."""
        text = f"run lock held by {self.holder} until {_micro(self.expires_at)}"
        if self.took_over_from:
            expired = _micro(self.previous_expiry or self.expires_at)
            text += f"; taken over from {self.took_over_from} (expired {expired})"
        return text


class RunLock:
    """The target's run lock for one holder.

    Args:
        kube: the target's transport.
        holder: this run's identity (:func:`holder_identity`).
        name: Lease name.
        namespace: Lease namespace (must exist; ``kube-system`` always does).
        duration: ``leaseDurationSeconds`` written on acquire and renew.

    Examples:
        >>> with RunLock(kube, holder_identity("20250101-1200")) as grant:  # doctest: +SKIP
        ...     print(grant.report)
    """

    def __init__(self, kube: Kube, holder: str, *, name: str = LEASE_NAME, namespace: str = LEASE_NAMESPACE,
                 duration: int = DEFAULT_DURATION) -> None:
        self.kube, self.holder, self.name, self.namespace, self.duration = kube, holder, name, namespace, duration

    @property
    def _collection(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    def acquire(self) -> Grant:
        """Take the lock: create the Lease, re-take our own, or take over an expired one (reported).

        Raises:
            LockHeldError: another holder's lock has not expired (holder and expiry named).
            TargetError: the Lease cannot be read or written (RBAC on ``leases`` in the namespace?).
        """
        resp = self._get()
        now = server_now(resp)
        if resp.status == 404:
            return self._create(now)
        view = LeaseView.of(resp.body)
        if view.holder != self.holder and not view.free(now):
            raise self._held(view, now)
        previous = view if view.holder and view.holder != self.holder else None
        return self._put(resp.body, now, previous)

    def renew(self) -> Grant:
        """Push the expiry forward; call it between phases.

        Raises:
            LockLostError: the Lease is gone or has another holder now.
        """
        resp = self._get()
        view = LeaseView.of(resp.body) if resp.ok else None
        if view is None or view.holder != self.holder:
            raise LockLostError(f"the run lock was lost (now held by {view.holder if view else 'nobody'})",
                                resource=f"lease/{self.name}", namespace=self.namespace,
                                fix="stop this run: another run may be changing the target; re-run when it is done")
        return self._put(resp.body, server_now(resp), None)

    def release(self) -> bool:
        """Delete the Lease if this run holds it; True when it did (a lost lock is left alone).

        A 404 or 409 on the delete means someone else deleted or rewrote the Lease meanwhile: not
        ours any more, so False. Any other failure raises.
        """
        resp = self._get()
        if not resp.ok or LeaseView.of(resp.body).holder != self.holder:
            return False
        version = str((resp.body.get("metadata") or {}).get("resourceVersion"))
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": version}}
        deleted = self.kube.request("DELETE", f"{self._collection}/{self.name}", counter="writes", body=body,
                                    accept=(404, 409))
        return deleted.ok

    def __enter__(self) -> Grant:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def _get(self) -> ApiResponse:
        return self.kube.request("GET", f"{self._collection}/{self.name}", counter="gets", accept=(404,))

    def _spec(self, now: datetime, acquired: bool, transitions: int) -> Obj:
        spec: Obj = {"holderIdentity": self.holder, "leaseDurationSeconds": self.duration, "renewTime": _micro(now),
                     "leaseTransitions": transitions}
        if acquired:
            spec["acquireTime"] = _micro(now)
        return spec

    def _create(self, now: datetime) -> Grant:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace}, "spec": self._spec(now, True, 0)}
        resp = self.kube.request("POST", self._collection, counter="writes", body=body, accept=(409,))
        if resp.status == 409:  # created meanwhile: by a rival, or by our own retried create
            return self._after_race()
        return Grant(self.holder, now + timedelta(seconds=self.duration))

    def _put(self, lease: Obj, now: datetime, previous: LeaseView | None) -> Grant:
        view = LeaseView.of(lease)
        acquired = view.holder != self.holder
        body = dict(lease) | {"spec": (lease.get("spec") or {}) | self._spec(now, acquired, view.transitions
                                                                              + int(acquired and bool(view.holder)))}
        resp = self.kube.request("PUT", f"{self._collection}/{self.name}", counter="writes", body=body, accept=(409,))
        if resp.status == 409:  # resourceVersion moved: someone else wrote the Lease first
            return self._after_race()
        grant = Grant(self.holder, now + timedelta(seconds=self.duration))
        if previous is not None:
            grant = Grant(self.holder, grant.expires_at, previous.holder, previous.expires_at)
            logger.warning("took over the expired %s", grant.report)
        return grant

    def _after_race(self) -> Grant:
        resp = self._get()
        view = LeaseView.of(resp.body) if resp.ok else LeaseView("", None, 0, 0)
        if view.holder == self.holder and view.expires_at is not None:
            return Grant(self.holder, view.expires_at)
        raise self._held(view, server_now(resp))

    def _held(self, view: LeaseView, now: datetime) -> LockHeldError:
        expires = view.expires_at
        when = f"expires {_micro(expires)} (in {max(0, int((expires - now).total_seconds()))}s)" if expires else \
            "has no expiry"
        return LockHeldError(f"another run holds the run lock: {view.holder or 'unknown'}; it {when}",
                             resource=f"lease/{self.name}", namespace=self.namespace,
                             fix="wait for that run to finish (or, if it crashed, for the lock to expire), then "
                                 "re-run; nothing was changed")
