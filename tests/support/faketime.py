"""Fake time for retry, backoff and readiness tests: a monotonic clock that moves only when code sleeps.

Given to :func:`k3smig_lib.k8s.retry.call_with_retry`, :class:`k3smig_lib.k8s.client.Kube` or
:func:`k3smig_lib.k8s.readiness.wait_until` as ``sleep`` and ``clock``, so tests assert the waits that
were chosen and wait for none of them.
"""

from __future__ import annotations


class FakeTime:
    """A clock starting at ``start`` that advances by exactly what :meth:`sleep` is asked to wait."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
