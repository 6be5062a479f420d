"""Helpers of the tests against the sandbox's real API servers: fake time, a proxied transport, a narrow identity.

Imported by ``conftest.py`` (which serves them as fixtures) and by test modules for their types
(``sys.path``: tests/integration is not a package). Nothing here answers for an API server: every
request goes to a real kube-apiserver, through the fault proxy when a test injects transient faults.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faultproxy import FaultProxy

from k3smig_lib.k8s.client import ClusterRef, Kube
from k3smig_lib.k8s.retry import RetryPolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from faketime import FakeTime  # noqa: E402


@dataclass
class Proxied:
    """A fault proxy in front of one sandbox API server, and a cluster reference that goes through it."""

    proxy: FaultProxy
    ref: ClusterRef

    def kube(self, time: FakeTime, *, policy: RetryPolicy | None = None, rand: Callable[[], float] = lambda: 0.5,
             **kw: Any) -> Kube:
        """A transport through the proxy on fake time (jitter draws ``rand``: 0.5 unless told)."""
        return Kube.of(self.ref, policy=policy or RetryPolicy(), sleep=time.sleep, clock=time.clock, rand=rand, **kw)


@dataclass(frozen=True)
class Narrow:
    """A ServiceAccount on the target allowed only ``get``/``list`` on pods in :attr:`namespace`."""

    ref: ClusterRef
    namespace: str
