"""The one transport (``Kube``) against the sandbox's real API servers: real refusals, counts, exec.

What the unit tests script on a local HTTP server, the real kube-apiserver answers here: the error
mapping must hold for its actual ``Status`` bodies (reason and causes), and an exec stream opened on
the transport's ``ApiClient`` must work as the data phase will use it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from k3smig_lib.backends.live_target import LiveTarget
from k3smig_lib.errors import ConflictError, TargetError
from k3smig_lib.k8s.client import ClusterRef, Kube
from k3smig_lib.k8s.errors import status_of
from k3smig_lib.k8s.readiness import wait_until
from k3smig_lib.sandbox import SandboxStatus

pytestmark = pytest.mark.integration

SECRET_VALUE = "s3cr3t value that must not leak!"


@pytest.fixture(scope="module")
def target_ref(sandbox: SandboxStatus) -> ClusterRef:
    return ClusterRef(str(sandbox.kubeconfig), sandbox.contexts["target"], "target")


@pytest.fixture
def ns(target_ref: ClusterRef) -> Iterator[str]:
    """A fresh namespace on the target, deleted afterwards."""
    kube = Kube.of(target_ref)
    name = f"k3smig-transport-{uuid.uuid4().hex[:6]}"
    kube.request("POST", "/api/v1/namespaces", counter="writes", body={"metadata": {"name": name}})
    yield name
    kube.request("DELETE", f"/api/v1/namespaces/{name}", counter="writes", accept=(404,))


def test_a_real_422_names_reason_and_field_causes_never_the_rejected_value(target_ref: ClusterRef, ns: str) -> None:
    kube = Kube.of(target_ref)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "labels": {"app": SECRET_VALUE}},
              "type": "Opaque", "stringData": {"password": SECRET_VALUE}}
    with pytest.raises(TargetError) as err:
        kube.request("POST", f"/api/v1/namespaces/{ns}/secrets", counter="writes", query={"dryRun": "All"},
                     body=secret)
    text = f"{err.value} {err.value!r} {err.value.__cause__!r}"
    assert SECRET_VALUE not in text
    assert "HTTP 422 Unprocessable Entity: Invalid; fields metadata.labels (FieldValueInvalid)" in str(err.value)
    assert status_of(err.value) == 422
    assert kube.counts.writes == 1 and kube.counts.retries == 0


def test_a_plan_of_an_invalid_object_is_a_conflict_naming_the_field(target_ref: ClusterRef, ns: str) -> None:
    web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
           "spec": {"replicas": -1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}
    item = LiveTarget(target_ref).apply([web], dry_run=True).items[0]
    assert item.action == "conflict"
    assert item.reason == ("the API server refuses the change (HTTP 422 Invalid; fields spec.replicas "
                           "(FieldValueInvalid))")


def test_accepted_and_unaccepted_statuses_of_a_real_server(target_ref: ClusterRef, ns: str) -> None:
    kube = Kube.of(target_ref)
    path = f"/api/v1/namespaces/{ns}/configmaps/absent"
    resp = kube.request("GET", path, counter="gets", accept=(404,))
    assert (resp.status, resp.reason) == (404, "NotFound") and resp.header("date")
    with pytest.raises(TargetError, match=rf"configmaps/absent in ns {ns}: not found on the target cluster"):
        kube.request("GET", path, counter="gets")
    body = {"metadata": {"name": "twice"}, "data": {"a": "1"}}
    kube.request("POST", f"/api/v1/namespaces/{ns}/configmaps", counter="writes", body=body)
    with pytest.raises(ConflictError, match=r"conflict \(HTTP 409 Conflict: AlreadyExists\)"):
        kube.request("POST", f"/api/v1/namespaces/{ns}/configmaps", counter="writes", body=body)
    assert kube.counts.as_dict() == {"discovery": 0, "lists": 0, "gets": 2, "applies": 0, "dry_runs": 0,
                                     "writes": 2, "retries": 0}


def test_an_exec_stream_rides_on_the_transports_client(
    target_ref: ClusterRef, ns: str, pod_exec: Callable[..., tuple[bytes, bytes, int]]
) -> None:
    kube = Kube.of(target_ref)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "helper", "namespace": ns},
           "spec": {"containers": [{"name": "helper", "image": "busybox:1.36"}]}}
    kube.request("POST", f"/api/v1/namespaces/{ns}/pods", counter="writes", body=pod)

    def running(p: Any) -> bool:
        return bool((p.get("status") or {}).get("phase") == "Running")

    wait_until(lambda: kube.json("GET", f"/api/v1/namespaces/{ns}/pods/helper", counter="gets"), running, 60,
               interval=0.5)
    out, err, rc = pod_exec(client.CoreV1Api(kube.api), ns, "helper", ["sh", "-c", "echo through-kube"])
    assert (out, rc) == (b"through-kube\n", 0), err
