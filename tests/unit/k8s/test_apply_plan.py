"""The write side's building blocks: what counts as a difference, error mapping, and bounded retries.

Retries are exercised against a real HTTP server on 127.0.0.1 that answers with scripted statuses.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from k3smig_lib.core.objects import ObjRef
from k3smig_lib.k8s.apply import (
    ApiCallError,
    CallCounts,
    ResourceInfo,
    Response,
    Rest,
    RetryableApiError,
    api_error,
    apply_body,
    differing_fields,
    managed_by,
)

LIVE_META = {"name": "web", "namespace": "shop", "uid": "3f1c", "resourceVersion": "812", "generation": 4,
             "creationTimestamp": "2025-01-01T00:00:00Z",
             "managedFields": [{"manager": "k3smig", "operation": "Apply"}]}


def test_metadata_noise_and_status_are_not_differences() -> None:
    live = {"kind": "ConfigMap", "metadata": LIVE_META, "data": {"a": "1"}, "status": {"x": 1}}
    would_be = {"kind": "ConfigMap", "metadata": LIVE_META | {"resourceVersion": "813", "generation": 5},
                "data": {"a": "1"}}
    assert differing_fields(live, would_be) == []


def test_differences_are_reported_as_paths_never_values() -> None:
    live = {"kind": "Secret", "metadata": {"name": "db", "labels": {"app": "db"}}, "type": "Opaque",
            "data": {"password": "b2xk", "user": "YWRtaW4="}}
    wanted = {"kind": "Secret", "metadata": {"name": "db", "labels": {"app": "db", "tier": "data"}},
              "type": "Opaque", "data": {"password": "bmV3", "user": "YWRtaW4=", "token": "dA=="}}
    fields = differing_fields(live, wanted)
    assert fields == ["data.password", "data.token", "metadata.labels.tier"]
    assert not any("bmV3" in f or "b2xk" in f for f in fields)


def test_deep_differences_stop_at_three_levels() -> None:
    live = {"spec": {"template": {"spec": {"containers": [{"image": "nginx:1.25"}]}}}}
    wanted = {"spec": {"template": {"spec": {"containers": [{"image": "nginx:1.27"}]}}}}
    assert differing_fields(live, wanted) == ["spec.template.spec"]


def test_apply_body_drops_what_the_server_owns() -> None:
    body = apply_body({"kind": "ConfigMap", "metadata": LIVE_META, "data": {"a": "1"}, "status": {}})
    assert body["metadata"] == {"name": "web", "namespace": "shop"}
    assert "status" not in body


def test_managed_by_reads_managed_fields() -> None:
    assert managed_by({"metadata": LIVE_META})
    assert not managed_by({"metadata": {"managedFields": [{"manager": "kubectl-client-side-apply"}]}})


def test_resource_path_of_cluster_scoped_and_core_kinds() -> None:
    assert ResourceInfo("v1", "Namespace", "namespaces", False).path("ignored", "shop") == "/api/v1/namespaces/shop"
    assert ResourceInfo("v1", "Secret", "secrets", True).path("shop") == "/api/v1/namespaces/shop/secrets"


SECRET_ECHO = {"kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422,
               "message": 'Secret "db" is invalid: data[password]: Invalid value: "hunter2-plain"',
               "details": {"causes": [{"field": "data[password]", "message": "Invalid value"}]}}


def test_error_of_a_secret_never_repeats_the_server_message() -> None:
    err = api_error(Response(422, SECRET_ECHO), ObjRef("Secret", "shop", "db"), secret=True)
    assert isinstance(err, ApiCallError) and err.status == 422
    assert "hunter2" not in str(err)
    assert str(err).startswith("secret/db in ns shop: the API server answered 422 Invalid (fields: data[password])")
    assert "to fix this, fix the object" in str(err)


def test_error_of_another_kind_keeps_the_cut_server_message() -> None:
    body = {"reason": "Forbidden", "message": 'configmaps "web" is forbidden: User "ci" cannot patch'}
    err = api_error(Response(403, body), ObjRef("ConfigMap", "shop", "web"))
    assert "cannot patch" in str(err) and "grant this verb" in str(err)
    assert not isinstance(err, RetryableApiError)


def test_throttling_maps_to_a_retryable_error() -> None:
    assert isinstance(api_error(Response(429, {"reason": "TooManyRequests"})), RetryableApiError)


class Scripted(BaseHTTPRequestHandler):
    """Answers each request with the next (status, headers) of the server's script; then 200."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        script: list[tuple[int, dict[str, str]]] = self.server.script  # type: ignore[attr-defined]
        status, headers = script.pop(0) if script else (200, {})
        self.server.seen.append(time.monotonic())  # type: ignore[attr-defined]
        body = json.dumps({"kind": "Status", "code": status} if status != 200 else {"kind": "Namespace"}).encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Any]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    httpd.script, httpd.seen = [], []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def rest_for(port: int) -> Rest:
    cfg = client.Configuration(host=f"http://127.0.0.1:{port}")
    cfg.retries = 0
    return Rest(client.ApiClient(cfg), CallCounts())


def test_rest_honours_retry_after_then_succeeds(server: Any) -> None:
    server.script = [(429, {"Retry-After": "1"}), (503, {})]
    rest = rest_for(server.server_address[1])
    resp = rest.call("GET", "/api/v1/namespaces/shop", counter="gets")
    assert resp.ok and resp.body == {"kind": "Namespace"}
    assert server.seen[1] - server.seen[0] >= 0.95  # waited as the server asked
    assert (rest.counts.gets, rest.counts.retries) == (1, 2)


def test_rest_gives_back_the_last_status_when_the_fault_persists(server: Any) -> None:
    server.script = [(503, {})] * 4
    rest = rest_for(server.server_address[1])
    resp = rest.call("GET", "/api/v1/namespaces/shop", counter="gets")
    assert resp.status == 503 and len(server.seen) == 4


def test_rest_raises_retryable_error_when_nothing_listens() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), Scripted) as probe:
        port = probe.server_address[1]  # closed again below: nothing listens there
    rest = rest_for(port)
    rest.attempts = 2
    with pytest.raises(RetryableApiError, match=rf"GET /version failed 2 times: .*127.0.0.1:{port} is reachable"):
        rest.call("GET", "/version", counter="gets")
