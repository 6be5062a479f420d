"""The fault proxy itself: forwards faithfully, injects exactly what its schedule says, stops (issue 4)."""

from __future__ import annotations

import http.client
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from k3smig_lib.sandbox import SandboxStatus

sys.path.insert(0, str(Path(__file__).parent))  # tests/integration is not a package
from faultproxy import Fault, FaultProxy  # noqa: E402

pytestmark = pytest.mark.integration


def _token(sb: SandboxStatus) -> str:
    cfg = yaml.safe_load(sb.kubeconfig.read_text())
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == sb.contexts["source"])
    return str(next(u["user"]["token"] for u in cfg["users"] if u["name"] == ctx["user"]))


def _get(proxy: FaultProxy, path: str, token: str) -> tuple[int, dict[str, str], bytes]:
    port = int(proxy.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@pytest.fixture()
def proxy(sandbox: SandboxStatus) -> Iterator[FaultProxy]:
    with FaultProxy.for_context(sandbox.kubeconfig, sandbox.contexts["source"], lifetime=60) as p:
        yield p


def test_requests_without_a_fault_reach_the_real_api_server(sandbox: SandboxStatus, proxy: FaultProxy) -> None:
    status, _, body = _get(proxy, "/api/v1/namespaces/kube-system", _token(sandbox))
    assert status == 200 and json.loads(body)["metadata"]["name"] == "kube-system"
    status, _, _ = _get(proxy, "/api/v1/namespaces/kube-system", "not-a-token")
    assert status == 401  # the proxy forwards credentials, it does not add any
    assert [(s.path, s.status, s.fault) for s in proxy.seen] == [("/api/v1/namespaces/kube-system", 200, ""),
                                                                 ("/api/v1/namespaces/kube-system", 401, "")]


def test_a_status_fault_answers_429_with_retry_after_and_a_kubernetes_status(
    sandbox: SandboxStatus, proxy: FaultProxy
) -> None:
    proxy.set_faults(Fault("status", 429, retry_after=3, path="/version"))
    status, headers, body = _get(proxy, "/version", _token(sandbox))
    assert (status, headers["Retry-After"]) == (429, "3")
    assert json.loads(body)["reason"] == "TooManyRequests"
    assert _get(proxy, "/version", _token(sandbox))[0] == 200  # times=1: the next one goes through


def test_the_schedule_skips_then_fires_a_bounded_number_of_times(sandbox: SandboxStatus, proxy: FaultProxy) -> None:
    proxy.set_faults(Fault("status", 503, skip=1, times=2, query="limit="))
    token = _token(sandbox)
    statuses = [_get(proxy, "/api/v1/namespaces?limit=1", token)[0] for _ in range(4)]
    assert statuses == [200, 503, 503, 200]


def test_a_reset_fault_drops_the_connection_without_a_response(sandbox: SandboxStatus, proxy: FaultProxy) -> None:
    proxy.set_faults(Fault("reset", path="/version"))
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        _get(proxy, "/version", _token(sandbox))


def test_a_mid_body_reset_truncates_the_real_response(sandbox: SandboxStatus, proxy: FaultProxy) -> None:
    proxy.set_faults(Fault("reset_mid_body", path="/api/v1/namespaces"))
    with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
        _get(proxy, "/api/v1/namespaces", _token(sandbox))
    assert [s.fault for s in proxy.seen] == ["reset_mid_body"]


def test_a_fault_can_spare_the_requests_whose_query_names_something(sandbox: SandboxStatus, proxy: FaultProxy) -> None:
    proxy.set_faults(Fault("status", 503, times=-1, query="limit=", not_query="labelSelector="))
    token = _token(sandbox)
    assert _get(proxy, "/api/v1/namespaces?limit=1", token)[0] == 503
    assert _get(proxy, "/api/v1/namespaces?limit=1&labelSelector=a%3Db", token)[0] == 200


def test_a_pass_fault_runs_its_hook_just_before_the_request_is_forwarded(
    sandbox: SandboxStatus, proxy: FaultProxy
) -> None:
    token = _token(sandbox)
    seen_by_hook: list[int] = []
    proxy.set_faults(Fault("pass", path="/api/v1/namespaces/kube-system", before=lambda: seen_by_hook.append(
        _get(proxy, "/version", token)[0])))
    status, _, body = _get(proxy, "/api/v1/namespaces/kube-system", token)
    assert status == 200 and json.loads(body)["metadata"]["name"] == "kube-system"
    assert seen_by_hook == [200]  # the hook's own request went through first, the hooked one after it
    assert [(s.path, s.status, s.fault) for s in proxy.seen] == [("/version", 200, ""),
                                                                 ("/api/v1/namespaces/kube-system", 200, "pass")]
    assert proxy.hook_errors == []


def test_the_proxy_stops_by_itself_after_its_lifetime(sandbox: SandboxStatus) -> None:
    short = FaultProxy.for_context(sandbox.kubeconfig, sandbox.contexts["source"], lifetime=1.0).start()
    port = int(short.url.rsplit(":", 1)[1])
    timer = short._timer
    assert timer is not None and timer.interval == 1.0  # the lifetime is the timer's, not a guess of ours
    timer.join(10)  # an upper bound for liveness only: the timer fires after its interval
    assert not short.running
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).connect()
    short.stop()  # idempotent
