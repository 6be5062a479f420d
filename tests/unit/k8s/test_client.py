"""The one transport (``Kube``) without any server: nothing listening, its backoff, what a request is read as.

Everything a server answers (statuses, headers, retries, refusals, counts) is tested against the
sandbox's real API servers in ``tests/integration/test_transport.py``.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from k3smig_lib.errors import TargetError
from k3smig_lib.k8s.client import Kube, api_call
from k3smig_lib.k8s.retry import RetryPolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))
from faketime import FakeTime  # noqa: E402


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable(time: FakeTime, **kw: Any) -> Kube:
    """A transport to a closed port on fake time, configured as ``api_client`` configures one."""
    cfg = client.Configuration(host=f"http://127.0.0.1:{closed_port()}")
    cfg.retries = 0
    return Kube(client.ApiClient(cfg), side="target", context="k3s-vm", sleep=time.sleep, clock=time.clock,
                **kw)


def test_nothing_listening_is_a_transport_failure_without_status() -> None:
    time = FakeTime()
    kube = unreachable(time, policy=RetryPolicy(attempts=2))
    with pytest.raises(TargetError, match=r"get /version failed after 2 attempt\(s\).*connection refused; "
                                          r"last status: no HTTP status"):
        kube.request("GET", "/version", counter="gets")
    assert len(time.sleeps) == 1 and kube.counts.retries == 1


def test_backoff_waits_a_jittered_draw_on_the_injected_sleep() -> None:
    time = FakeTime()
    kube = unreachable(time, rand=lambda: 0.5)
    policy = RetryPolicy(base_delay=0.2, max_delay=2.0)
    assert [kube.backoff(n, policy) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
    assert time.sleeps == [0.1, 0.2, 0.4]


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/api/v1/secrets", ("list", "", "secrets", "", "", "")),
    ("GET", "/apis/apps/v1/namespaces/shop/deployments/web", ("get", "apps", "deployments", "shop", "web", "")),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/lock",
     ("update", "coordination.k8s.io", "leases", "kube-system", "lock", "")),
    ("DELETE", "/api/v1/namespaces/shop", ("delete", "", "namespaces", "", "shop", "")),
    ("PUT", "/api/v1/namespaces/shop/finalize", ("update", "", "namespaces", "", "shop", "finalize")),
    ("POST", "/api/v1/namespaces/shop/pods/web/exec", ("create", "", "pods", "shop", "web", "exec")),
    ("DELETE", "/api/v1/namespaces/shop/pods", ("deletecollection", "", "pods", "shop", "", "")),
    ("GET", "/apis/apps/v1", ("get", "", "/apis/apps/v1", "", "", "")),
])
def test_the_call_is_read_from_method_and_path(method: str, path: str, expected: tuple[str, ...]) -> None:
    c = api_call(method, path)
    assert (c.verb, c.group, c.resource, c.namespace, c.name, c.subresource) == expected
