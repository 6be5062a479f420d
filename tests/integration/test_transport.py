"""The one transport (``Kube``) against the sandbox's real API servers: answers, retries, refusals, counts, exec.

Every answer here is a real kube-apiserver's: its ``Status`` bodies (reason and causes), its headers,
its RBAC refusals of a narrow ServiceAccount. Transient faults (429 with ``Retry-After``, 503, resets)
come from the fault proxy in front of the real server (``faultproxy.py``); time is fake (``FakeTime``
in ``conftest.py``), so retry tests assert the waits chosen and wait for none of them.
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from k3smig_lib.backends.live_target import LiveTarget
from k3smig_lib.errors import ConflictError, FatalError, SourceError, TargetError
from k3smig_lib.k8s.client import ClusterRef, Kube
from k3smig_lib.k8s.errors import status_of
from k3smig_lib.k8s.readiness import wait_until
from k3smig_lib.k8s.retry import RetryPolicy
from k3smig_lib.sandbox import SandboxStatus

sys.path.insert(0, str(Path(__file__).parent))  # tests/integration is not a package
from faultproxy import Fault  # noqa: E402
from realapi import FakeTime, Narrow, Proxied  # noqa: E402

pytestmark = pytest.mark.integration

SECRET_VALUE = "s3cr3t value that must not leak!"
APPLY = "application/apply-patch+yaml"
KUBE_SYSTEM = "/api/v1/namespaces/kube-system"
ThroughProxy = Callable[[str], Proxied]


def test_a_2xx_answer_comes_back_with_body_and_case_insensitive_headers(target_ref: ClusterRef) -> None:
    kube = Kube.of(target_ref)
    resp = kube.request("GET", KUBE_SYSTEM, counter="gets")
    assert resp.ok and resp.status == 200 and resp.body["metadata"]["name"] == "kube-system"
    audit_id = resp.header("Audit-Id")
    assert audit_id and resp.header("audit-id") == resp.header("AUDIT-ID") == audit_id
    assert kube.counts.as_dict() == {"discovery": 0, "lists": 0, "gets": 1, "applies": 0, "dry_runs": 0,
                                     "writes": 0, "retries": 0}


def test_a_429_waits_exactly_the_retry_after_then_succeeds(through_proxy: ThroughProxy, fake_time: FakeTime) -> None:
    p = through_proxy("target")
    p.proxy.set_faults(Fault("status", 429, retry_after=2, path=KUBE_SYSTEM))
    kube = p.kube(fake_time)
    assert kube.json("GET", KUBE_SYSTEM, counter="gets")["metadata"]["name"] == "kube-system"
    assert fake_time.sleeps == [2.0]  # the server's figure, not the jittered backoff
    assert (kube.counts.gets, kube.counts.retries) == (1, 1)
    assert [s.status for s in p.proxy.seen] == [429, 200]


def test_5xx_and_resets_are_retried_with_jittered_backoff_within_its_ceiling(
    sandbox: SandboxStatus, through_proxy: ThroughProxy, fake_time: FakeTime
) -> None:
    p = through_proxy("target")
    p.proxy.set_faults(Fault("status", 503, path="/version"), Fault("reset", path="/version"),
                       Fault("reset_mid_body", path="/version"))
    kube = p.kube(fake_time, policy=RetryPolicy(base_delay=0.5), rand=lambda: 0.5)
    assert kube.json("GET", "/version", counter="gets")["gitVersion"] == sandbox.kubernetes_version
    assert fake_time.sleeps == [0.25, 0.5, 1.0]  # rand 0.5 × ceilings 0.5, 1.0 and 2.0
    assert kube.counts.retries == 3
    assert [(s.status, s.fault) for s in p.proxy.seen] == [(503, "status 503"), (0, "reset"), (0, "reset_mid_body"),
                                                           (200, "")]


def test_a_persistent_503_fails_after_the_policy_with_the_last_status(
    through_proxy: ThroughProxy, fake_time: FakeTime
) -> None:
    p = through_proxy("source")
    p.proxy.set_faults(Fault("status", 503, times=-1, path="/api/v1/secrets"))
    kube = p.kube(fake_time, policy=RetryPolicy(attempts=4))
    with pytest.raises(SourceError, match=r"source cluster: list secrets failed after 4 attempt\(s\) "
                                          r"\(attempts exhausted\).*last status: HTTP 503") as err:
        kube.request("GET", "/api/v1/secrets", counter="lists")
    assert len(p.proxy.requests("/api/v1/secrets")) == 4 and len(fake_time.sleeps) == 3
    assert "check the API server's health" in err.value.fix
    assert " in " not in err.value.message.split(";")[0]  # no measured duration in the message


def test_a_retry_after_past_the_deadline_fails_at_once(through_proxy: ThroughProxy, fake_time: FakeTime) -> None:
    p = through_proxy("target")
    p.proxy.set_faults(Fault("status", 429, retry_after=30, times=-1, path="/version"))
    with pytest.raises(TargetError, match=r"deadline of 20s.*last status: HTTP 429"):
        p.kube(fake_time, policy=RetryPolicy(deadline=20)).request("GET", "/version", counter="gets")
    assert fake_time.sleeps == [] and len(p.proxy.seen) == 1


def test_a_503_is_retried_even_when_a_caller_lists_it_in_accept(
    through_proxy: ThroughProxy, fake_time: FakeTime
) -> None:
    p = through_proxy("target")
    p.proxy.set_faults(Fault("status", 503, path="/version"))
    assert p.kube(fake_time).request("GET", "/version", counter="gets", accept=(503,)).status == 200
    assert [s.status for s in p.proxy.seen] == [503, 200] and len(fake_time.sleeps) == 1


@pytest.mark.parametrize("kind", ["Secret", "ConfigMap"])
def test_a_real_422_shows_reason_and_field_causes_never_the_rejected_value(
    target_ref: ClusterRef, target_ns: str, kind: str
) -> None:
    kube = Kube.of(target_ref)
    path = f"/api/v1/namespaces/{target_ns}/{kind.lower()}s/db"
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "db", "namespace": target_ns,
                                                         "labels": {"app": SECRET_VALUE}},
           "data": {"bad/key": "czNjcjN0"}}  # the server's message quotes the label value; its causes name fields
    query = {"fieldManager": "k3smig"}
    with pytest.raises(TargetError) as err:
        kube.request("PATCH", path, counter="applies", query=query, body=obj, content_type=APPLY)
    text = f"{err.value} {err.value!r} {err.value.__cause__!r}"
    assert SECRET_VALUE not in text and "a valid label must" not in text
    assert ("HTTP 422 Unprocessable Entity: Invalid; fields metadata.labels (FieldValueInvalid), "
            "data[bad/key] (FieldValueInvalid)") in str(err.value)
    assert status_of(err.value) == 422
    resp = kube.request("PATCH", path, counter="dry_runs", query=query | {"dryRun": "All"}, body=obj,
                        content_type=APPLY, accept=(422,))
    assert resp.fields == ("metadata.labels", "data[bad/key]")
    assert resp.detail == ("HTTP 422 Invalid; fields metadata.labels (FieldValueInvalid), "
                           "data[bad/key] (FieldValueInvalid)")
    assert SECRET_VALUE not in str(resp.error())
    assert (kube.counts.applies, kube.counts.dry_runs, kube.counts.retries) == (1, 1, 0)


def test_a_plan_of_an_invalid_object_is_a_conflict_naming_the_field(target_ref: ClusterRef, target_ns: str) -> None:
    web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": target_ns},
           "spec": {"replicas": -1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}
    item = LiveTarget(target_ref).apply([web], dry_run=True).items[0]
    assert item.action == "conflict"
    assert item.reason == ("the API server refuses the change (HTTP 422 Invalid; fields spec.replicas "
                           "(FieldValueInvalid))")


def test_accepted_and_unaccepted_statuses_of_a_real_server(target_ref: ClusterRef, target_ns: str) -> None:
    kube = Kube.of(target_ref)
    path = f"/api/v1/namespaces/{target_ns}/configmaps/absent"
    resp = kube.request("GET", path, counter="gets", accept=(404,))
    assert (resp.ok, resp.status, resp.reason) == (False, 404, "NotFound") and resp.header("date")
    with pytest.raises(TargetError, match=rf"configmaps/absent in ns {target_ns}: not found on the target "
                                          "cluster") as err:
        kube.request("GET", path, counter="gets")
    assert status_of(err.value) == 404
    body = {"metadata": {"name": "twice"}, "data": {"a": "1"}}
    kube.request("POST", f"/api/v1/namespaces/{target_ns}/configmaps", counter="writes", body=body)
    with pytest.raises(ConflictError, match=r"conflict \(HTTP 409 Conflict: AlreadyExists\)"):
        kube.request("POST", f"/api/v1/namespaces/{target_ns}/configmaps", counter="writes", body=body)
    assert kube.counts.as_dict() == {"discovery": 0, "lists": 0, "gets": 2, "applies": 0, "dry_runs": 0,
                                     "writes": 2, "retries": 0}  # a 404 and a 409 are not retried


def test_an_update_with_a_stale_resource_version_is_a_conflict_error(target_ref: ClusterRef, target_ns: str) -> None:
    kube = Kube.of(target_ref)
    path = f"/api/v1/namespaces/{target_ns}/configmaps/web"
    kube.request("POST", f"/api/v1/namespaces/{target_ns}/configmaps", counter="writes",
                 body={"metadata": {"name": "web"}, "data": {"a": "1"}})
    read = kube.json("GET", path, counter="gets")
    stale = copy.deepcopy(read)
    kube.request("PUT", path, counter="writes", body=read | {"data": {"a": "2"}})
    with pytest.raises(ConflictError, match=rf"update configmaps/web in ns {target_ns}: conflict "
                                            r"\(HTTP 409 Conflict: Conflict\)") as err:
        kube.request("PUT", path, counter="writes", body=stale | {"data": {"a": "3"}})
    assert status_of(err.value) == 409 and kube.counts.retries == 0
    assert kube.json("GET", path, counter="gets")["data"] == {"a": "2"}


def test_a_403_names_the_exact_rbac_rule_read_from_the_request(narrow_target: Narrow) -> None:
    ns = narrow_target.namespace
    kube = Kube.of(narrow_target.ref)
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns}}
    with pytest.raises(TargetError) as err:
        kube.request("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/web", counter="applies", body=body,
                     query={"fieldManager": "k3smig"}, content_type=APPLY)
    assert f"target cluster: patch deployments.apps/web in ns {ns}: not allowed (HTTP 403 Forbidden)" in str(err.value)
    assert f'a Role in ns {ns} rule {{apiGroups: ["apps"], resources: ["deployments"], verbs: ["patch"]}}' in \
        err.value.fix
    assert f"the user of context {narrow_target.ref.context}" in err.value.fix
    assert "system:serviceaccount" not in str(err.value)  # the server's message names the user: never shown
    assert kube.counts.retries == 0


def test_a_forbidden_exec_asks_for_the_subresource_rule(narrow_target: Narrow) -> None:
    ns = narrow_target.namespace
    with pytest.raises(FatalError) as err:
        Kube.of(narrow_target.ref).request("POST", f"/api/v1/namespaces/{ns}/pods/web/exec", counter="writes",
                                           query={"command": "true", "stdout": "true"})
    assert status_of(err.value) == 403
    assert 'resources: ["pods/exec"], verbs: ["create"]' in err.value.fix
    assert f"kubectl auth can-i create pods --subresource=exec -n {ns}" in err.value.fix


def test_server_side_apply_sends_the_patch_type_and_query(
    through_proxy: ThroughProxy, fake_time: FakeTime, target_ns: str
) -> None:
    p = through_proxy("target")
    kube = p.kube(fake_time)
    path = f"/api/v1/namespaces/{target_ns}/configmaps/web"
    resp = kube.request("PATCH", path, counter="dry_runs", query={"fieldManager": "k3smig", "dryRun": "All",
                                                                  "force": True},
                        body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web",
                                                                                    "namespace": target_ns},
                              "data": {"a": "1"}}, content_type=APPLY)
    assert resp.status == 201 and resp.body["data"] == {"a": "1"}  # the body arrived as sent
    managers = [(m["manager"], m["operation"]) for m in resp.body["metadata"]["managedFields"]]
    assert managers == [("k3smig", "Apply")]  # an apply patch (its content type) under our field manager
    assert kube.request("GET", path, counter="gets", accept=(404,)).status == 404  # dryRun=All: nothing stored
    assert p.proxy.seen[0].query == "fieldManager=k3smig&dryRun=All&force=true"  # pairs in order, bool lowered


def test_counts_are_exact_when_many_threads_share_the_transport(
    through_proxy: ThroughProxy, fake_time: FakeTime
) -> None:
    p = through_proxy("target")
    kube = p.kube(fake_time)

    def work() -> None:
        for _ in range(10):
            kube.request("GET", "/version", counter="gets")

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert kube.counts.gets == 60 == len(p.proxy.requests("/version"))
    assert kube.counts.retries == 0


def test_a_transport_built_from_a_kubeconfig_context_sends_its_token(sandbox: SandboxStatus, tmp_path: Path) -> None:
    cfg = yaml.safe_load(sandbox.kubeconfig.read_text())
    context = sandbox.contexts["target"]
    cluster_name = next(c["context"]["cluster"] for c in cfg["contexts"] if c["name"] == context)
    server = next(c["cluster"]["server"] for c in cfg["clusters"] if c["name"] == cluster_name)
    user = next(c["context"]["user"] for c in cfg["contexts"] if c["name"] == context)
    cfg["clusters"].append({"name": "nowhere", "cluster": {"server": "https://127.0.0.1:1"}})
    cfg["contexts"].append({"name": "other", "context": {"cluster": "nowhere", "user": user}})
    cfg["current-context"] = "other"  # never used: the context is always explicit
    good = tmp_path / "kubeconfig"
    good.write_text(yaml.safe_dump(cfg))
    kube = Kube.of(ClusterRef(str(good), context, "target"))
    assert kube.json("GET", KUBE_SYSTEM, counter="gets")["metadata"]["name"] == "kube-system"
    assert (kube.side, kube.context, kube.host) == ("target", context, server)
    assert kube.api.configuration.retries == 0  # exec streams reuse this client: no hidden retries there either

    for u in cfg["users"]:
        if u["name"] == user:
            u["user"] = {"token": "not-the-token"}
    bad = tmp_path / "bad.kubeconfig"
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(TargetError, match=rf"rejected the credentials of context {context} \(HTTP 401"):
        Kube.of(ClusterRef(str(bad), context, "target")).request("GET", KUBE_SYSTEM, counter="gets")


def test_an_exec_stream_rides_on_the_transports_client(
    target_ref: ClusterRef, target_ns: str, pod_exec: Callable[..., tuple[bytes, bytes, int]]
) -> None:
    kube = Kube.of(target_ref)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "helper", "namespace": target_ns},
           "spec": {"containers": [{"name": "helper", "image": "busybox:1.36"}]}}
    kube.request("POST", f"/api/v1/namespaces/{target_ns}/pods", counter="writes", body=pod)

    def running(p: Any) -> bool:
        return bool((p.get("status") or {}).get("phase") == "Running")

    wait_until(lambda: kube.json("GET", f"/api/v1/namespaces/{target_ns}/pods/helper", counter="gets"), running, 300,
               interval=0.5)
    out, err, rc = pod_exec(client.CoreV1Api(kube.api), target_ns, "helper", ["sh", "-c", "echo through-kube"])
    assert (out, rc) == (b"through-kube\n", 0), err
