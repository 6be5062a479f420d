"""The one transport (``Kube``) against a real HTTP server on 127.0.0.1: retries, errors, counts, headers.

No mock of the ``kubernetes`` client: requests go through a real ``ApiClient`` over real sockets to
the scripted server of ``conftest.py``. Time is fake, so no test waits for real.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from k3smig_lib.errors import ConflictError, FatalError, SourceError, TargetError
from k3smig_lib.k8s.client import ClusterRef, Kube, api_call
from k3smig_lib.k8s.errors import status_of
from k3smig_lib.k8s.retry import RetryPolicy

sys.path.insert(0, str(Path(__file__).parent))  # tests are not a package
from fakeapi import RESET, FakeApiServer, FakeTime, api_for, free_port, status  # noqa: E402

NS = {"kind": "Namespace", "metadata": {"name": "shop", "uid": "u-1"}}
SECRET_VALUE = "aHVudGVyMi1wbGFpbg=="
MakeKube = Callable[..., Kube]


def test_a_2xx_answer_comes_back_with_body_and_case_insensitive_headers(
    apiserver: FakeApiServer, make_kube: MakeKube
) -> None:
    apiserver.on("GET", "/api/v1/namespaces/shop", (200, {"Audit-Id": "3f1c-77"}, NS))
    kube = make_kube()
    resp = kube.request("GET", "/api/v1/namespaces/shop", counter="gets")
    assert resp.ok and resp.status == 200 and resp.body == NS
    assert resp.header("audit-id") == resp.header("AUDIT-ID") == "3f1c-77"
    assert kube.counts.as_dict() == {"discovery": 0, "lists": 0, "gets": 1, "applies": 0, "dry_runs": 0,
                                     "writes": 0, "retries": 0}


def test_a_429_waits_exactly_the_retry_after_then_succeeds(
    apiserver: FakeApiServer, make_kube: MakeKube, fake_time: FakeTime
) -> None:
    apiserver.on("GET", "/api/v1/namespaces/shop", (429, {"Retry-After": "2"}, status(429, "TooManyRequests")),
                 (200, {}, NS))
    kube = make_kube()
    assert kube.json("GET", "/api/v1/namespaces/shop", counter="gets") == NS
    assert fake_time.sleeps == [2.0]  # the server's figure, not the jittered backoff
    assert (kube.counts.gets, kube.counts.retries) == (1, 1)
    assert len(apiserver.seen) == 2


def test_5xx_and_resets_are_retried_with_jittered_backoff_within_its_ceiling(
    apiserver: FakeApiServer, make_kube: MakeKube, fake_time: FakeTime
) -> None:
    apiserver.on("GET", "/version", (503, {}, status(503, "ServiceUnavailable")), RESET,
                 (200, {}, {"gitVersion": "v1.36.3"}))
    kube = make_kube(policy=RetryPolicy(base_delay=0.5), rand=lambda: 0.5)
    assert kube.json("GET", "/version", counter="gets") == {"gitVersion": "v1.36.3"}
    assert fake_time.sleeps == [0.25, 0.5]  # rand 0.5 × ceilings 0.5 and 1.0
    assert kube.counts.retries == 2


def test_a_persistent_503_fails_after_the_policy_with_the_last_status(
    apiserver: FakeApiServer, make_kube: MakeKube, fake_time: FakeTime
) -> None:
    apiserver.on("GET", "/api/v1/secrets", (503, {}, status(503, "ServiceUnavailable")))
    kube = make_kube(side="source", policy=RetryPolicy(attempts=4))
    with pytest.raises(SourceError, match=r"source cluster: list secrets failed after 4 attempt\(s\) "
                                          r"\(attempts exhausted\).*last status: HTTP 503") as err:
        kube.request("GET", "/api/v1/secrets", counter="lists")
    assert len(apiserver.seen) == 4 and len(fake_time.sleeps) == 3
    assert "check the API server's health" in err.value.fix
    assert " in " not in err.value.message.split(";")[0]  # no measured duration in the message


def test_a_retry_after_past_the_deadline_fails_at_once(
    apiserver: FakeApiServer, make_kube: MakeKube, fake_time: FakeTime
) -> None:
    apiserver.on("GET", "/version", (429, {"Retry-After": "30"}, status(429, "TooManyRequests")))
    with pytest.raises(TargetError, match=r"deadline of 20s.*last status: HTTP 429"):
        make_kube(policy=RetryPolicy(deadline=20)).request("GET", "/version", counter="gets")
    assert fake_time.sleeps == [] and len(apiserver.seen) == 1


def test_nothing_listening_is_a_transport_failure_without_status(fake_time: FakeTime) -> None:
    kube = Kube(api_for(f"http://127.0.0.1:{free_port()}"), side="target", policy=RetryPolicy(attempts=2),
                sleep=fake_time.sleep, clock=fake_time.clock)
    with pytest.raises(TargetError, match=r"get /version failed after 2 attempt\(s\).*connection refused; "
                                          r"last status: no HTTP status"):
        kube.request("GET", "/version", counter="gets")


def test_accepted_statuses_come_back_and_others_raise_the_translated_error(
    apiserver: FakeApiServer, make_kube: MakeKube
) -> None:
    apiserver.on("GET", "/api/v1/namespaces/shop/configmaps/web", (404, {}, status(404, "NotFound")))
    kube = make_kube()
    resp = kube.request("GET", "/api/v1/namespaces/shop/configmaps/web", counter="gets", accept=(404,))
    assert (resp.ok, resp.status, resp.reason) == (False, 404, "NotFound")
    with pytest.raises(TargetError, match=r"configmaps/web in ns shop: not found on the target cluster") as err:
        kube.request("GET", "/api/v1/namespaces/shop/configmaps/web", counter="gets")
    assert status_of(err.value) == 404
    assert kube.counts.retries == 0  # a 404 is not retried


def test_a_503_is_retried_even_when_a_caller_lists_it_in_accept(
    apiserver: FakeApiServer, make_kube: MakeKube
) -> None:
    apiserver.on("GET", "/version", (503, {}, status(503, "ServiceUnavailable")), (200, {}, {}))
    assert make_kube().request("GET", "/version", counter="gets", accept=(503,)).status == 200


def test_a_409_is_a_conflict_error(apiserver: FakeApiServer, make_kube: MakeKube) -> None:
    apiserver.on("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases",
                 (409, {}, status(409, "AlreadyExists", 'leases "lock" already exists')))
    with pytest.raises(ConflictError, match=r"conflict \(HTTP 409 Conflict: AlreadyExists\)"):
        make_kube().request("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases",
                            counter="writes", body={"kind": "Lease"})


def test_a_403_names_the_exact_rbac_rule_read_from_the_request(apiserver: FakeApiServer, make_kube: MakeKube) -> None:
    apiserver.on("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web",
                 (403, {}, status(403, "Forbidden", 'deployments.apps "web" is forbidden: User "ci" cannot patch')))
    with pytest.raises(TargetError) as err:
        make_kube().request("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web", counter="applies", body={},
                            content_type="application/apply-patch+yaml")
    assert "target cluster: patch deployments.apps/web in ns shop: not allowed (HTTP 403 Forbidden)" in str(err.value)
    assert 'a Role in ns shop rule {apiGroups: ["apps"], resources: ["deployments"], verbs: ["patch"]}' in err.value.fix
    assert "the user of context k3s-vm" in err.value.fix
    assert 'User "ci"' not in str(err.value)


@pytest.mark.parametrize("kind", ["secrets", "configmaps"])
def test_a_422_shows_reason_and_field_causes_never_the_servers_message(
    apiserver: FakeApiServer, make_kube: MakeKube, kind: str
) -> None:
    path = f"/api/v1/namespaces/shop/{kind}/db"
    body = status(422, "Invalid", f'{kind} "db" is invalid: data[password]: Invalid value: "{SECRET_VALUE}"',
                  [{"field": "data[password]", "reason": "FieldValueInvalid", "message": f"bad {SECRET_VALUE}"},
                   {"field": "metadata.name", "reason": "FieldValueRequired", "message": "Required value"}])
    apiserver.on("PATCH", path, (422, {}, body))
    kube = make_kube()
    with pytest.raises(TargetError) as err:
        kube.request("PATCH", path, counter="applies", body={})
    text = str(err.value)
    assert SECRET_VALUE not in text and "Required value" not in text
    assert ("HTTP 422 Unprocessable Entity: Invalid; fields data[password] (FieldValueInvalid), "
            "metadata.name (FieldValueRequired)") in text
    resp = kube.request("PATCH", path, counter="dry_runs", body={}, accept=(422,))
    assert resp.fields == ("data[password]", "metadata.name")
    assert resp.detail == ("HTTP 422 Invalid; fields data[password] (FieldValueInvalid), metadata.name "
                           "(FieldValueRequired)")
    assert SECRET_VALUE not in str(resp.error())


def test_server_side_apply_sends_the_patch_type_and_query(apiserver: FakeApiServer, make_kube: MakeKube) -> None:
    apiserver.on("PATCH", "/api/v1/namespaces/shop/configmaps/web", (200, {}, {"kind": "ConfigMap"}))
    make_kube().request("PATCH", "/api/v1/namespaces/shop/configmaps/web", counter="dry_runs",
                        query={"fieldManager": "k3smig", "dryRun": "All", "force": True},
                        body={"kind": "ConfigMap", "data": {"a": "1"}}, content_type="application/apply-patch+yaml")
    sent = apiserver.seen[0]
    assert sent.headers["content-type"] == "application/apply-patch+yaml"
    assert sent.query == {"fieldManager": ["k3smig"], "dryRun": ["All"], "force": ["true"]}
    assert sent.json() == {"kind": "ConfigMap", "data": {"a": "1"}}


def test_counts_are_exact_when_many_threads_share_the_transport(
    apiserver: FakeApiServer, make_kube: MakeKube
) -> None:
    apiserver.on("GET", "/version", (200, {}, {}))
    kube = make_kube()

    def work() -> None:
        for _ in range(10):
            kube.request("GET", "/version", counter="gets")

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert kube.counts.gets == 60 == len(apiserver.seen)


def test_backoff_waits_a_jittered_draw_on_the_injected_sleep(make_kube: MakeKube, fake_time: FakeTime) -> None:
    kube = make_kube(rand=lambda: 0.5)
    policy = RetryPolicy(base_delay=0.2, max_delay=2.0)
    assert [kube.backoff(n, policy) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
    assert fake_time.sleeps == [0.1, 0.2, 0.4]


def test_a_transport_built_from_a_kubeconfig_context_sends_its_token(apiserver: FakeApiServer, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "local", "cluster": {"server": apiserver.url}}],
        "users": [{"name": "bot", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "k3s-vm", "context": {"cluster": "local", "user": "bot"}},
                     {"name": "other", "context": {"cluster": "nowhere", "user": "bot"}}]}))
    apiserver.on("GET", "/version", (200, {}, {"gitVersion": "v1.33.4+k3s1"}))
    kube = Kube.of(ClusterRef(str(kubeconfig), "k3s-vm", "target"))
    assert kube.json("GET", "/version", counter="gets")["gitVersion"] == "v1.33.4+k3s1"
    assert (kube.side, kube.context, kube.host) == ("target", "k3s-vm", apiserver.url)
    assert apiserver.seen[0].headers["authorization"] == "Bearer t0ken"
    assert kube.api.configuration.retries == 0  # exec streams reuse this client: no hidden retries there either


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


def test_a_forbidden_exec_asks_for_the_subresource_rule(apiserver: FakeApiServer, make_kube: MakeKube) -> None:
    apiserver.on("POST", "/api/v1/namespaces/shop/pods/web/exec", (403, {}, status(403, "Forbidden")))
    with pytest.raises(FatalError) as err:
        make_kube().request("POST", "/api/v1/namespaces/shop/pods/web/exec", counter="writes")
    assert 'resources: ["pods/exec"], verbs: ["create"]' in err.value.fix
    assert "kubectl auth can-i create pods --subresource=exec -n shop" in err.value.fix
