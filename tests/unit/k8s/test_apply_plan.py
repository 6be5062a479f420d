"""The write side: what counts as a difference, and the live target's plan, write and wait loops.

The loops run against the scripted API server of ``fakeapi.py`` (real HTTP on 127.0.0.1, the real
``ApiClient``) on fake time: a write conflict's backoff and a readiness timeout take no wall time.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.backends.live_target import LiveTarget
from k3smig_lib.core.objects import Obj
from k3smig_lib.errors import ConflictError, FatalError, TargetError
from k3smig_lib.k8s.apply import apply_body, differing_fields, managed_by
from k3smig_lib.k8s.client import ClusterRef, Kube
from k3smig_lib.k8s.discovery import ApiResource
from k3smig_lib.k8s.lock import LockHeldError, RunLock

sys.path.insert(0, str(Path(__file__).parent))  # tests are not a package
from fakeapi import FakeApiServer, FakeTime, Seen, status  # noqa: E402

MakeKube = Callable[..., Kube]
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
    assert ApiResource("", "v1", "namespaces", "Namespace", False).path("ignored", "shop") == "/api/v1/namespaces/shop"
    assert ApiResource("", "v1", "secrets", "Secret", True).path("shop") == "/api/v1/namespaces/shop/secrets"


CORE = {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
    {"name": "configmaps", "kind": "ConfigMap", "namespaced": True, "verbs": ["get", "list", "patch", "create"]},
    {"name": "secrets", "kind": "Secret", "namespaced": True, "verbs": ["get", "list", "patch", "create"]}]}
APPS = {"kind": "APIResourceList", "groupVersion": "apps/v1", "resources": [
    {"name": "deployments", "kind": "Deployment", "namespaced": True, "verbs": ["get", "list", "patch"]},
    {"name": "deployments/status", "kind": "Deployment", "namespaced": True, "verbs": ["get"]}]}
CM_PATH = "/api/v1/namespaces/shop/configmaps/web"


def configmap(**data: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop"}, "data": data}


def target_on(make_kube: MakeKube, **kw: Any) -> LiveTarget:
    return LiveTarget(ClusterRef("", "k3s-vm", "target"), kube=make_kube(), **kw)


def dry_run_or_write(dry: Any, real: Any) -> Callable[[Seen], Any]:
    """A PATCH route that answers dry runs and real applies differently."""
    return lambda seen: dry if seen.query.get("dryRun") == ["All"] else real


def test_a_refused_change_names_reason_and_field_causes_never_the_message(
    apiserver: FakeApiServer, make_kube: MakeKube
) -> None:
    apiserver.on("GET", "/api/v1", (200, {}, CORE))
    apiserver.on("GET", CM_PATH, (404, {}, status(404, "NotFound")))
    apiserver.on("PATCH", CM_PATH, (422, {}, status(422, "Invalid", 'ConfigMap "web" is invalid: data[k]: "v4lue"',
                                                    [{"field": "data[k]", "reason": "FieldValueInvalid",
                                                      "message": 'Invalid value: "v4lue"'}])))
    plan = target_on(make_kube).apply([configmap(k="v4lue")], dry_run=True)
    item = plan.items[0]
    assert item.action == "conflict"
    assert item.reason == "the API server refuses the change (HTTP 422 Invalid; fields data[k] (FieldValueInvalid))"


def test_a_write_conflict_replans_with_a_bounded_jittered_backoff_on_the_injected_sleep(
    apiserver: FakeApiServer, make_kube: MakeKube, fake_time: FakeTime
) -> None:
    apiserver.on("GET", "/api/v1", (200, {}, CORE))
    live = configmap(a="1") | {"metadata": {"name": "web", "namespace": "shop", "resourceVersion": "7"}}
    apiserver.on("GET", CM_PATH, (200, {}, live))
    apiserver.route("PATCH", CM_PATH, dry_run_or_write((200, {}, configmap(a="2")),
                                                       (409, {}, status(409, "Conflict", "the object was modified"))))
    target = target_on(make_kube)
    with pytest.raises(ConflictError, match="kept conflicting after 3 attempts"):
        target.apply([configmap(a="2")], dry_run=False, existing="update")
    real = [s for s in apiserver.requests("PATCH") if "dryRun" not in s.query]
    assert len(real) == 3
    assert fake_time.sleeps == [0.1, 0.2]  # rand 0.5 × ceilings 0.2, 0.4; no wait after the last attempt
    assert (target.calls.applies, target.calls.dry_runs, target.calls.retries) == (3, 4, 0)


def test_a_write_conflict_that_converged_meanwhile_is_unchanged(
    apiserver: FakeApiServer, make_kube: MakeKube, fake_time: FakeTime
) -> None:
    apiserver.on("GET", "/api/v1", (200, {}, CORE))
    apiserver.on("GET", CM_PATH, (200, {}, configmap(a="1")), (200, {}, configmap(a="2")))
    apiserver.route("PATCH", CM_PATH, dry_run_or_write((200, {}, configmap(a="2")), (409, {}, status(409, "Conflict"))))
    result = target_on(make_kube).apply([configmap(a="2")], dry_run=False, existing="update")
    assert [i.action for i in result.items] == ["unchanged"] and fake_time.sleeps == []


def test_another_refusal_of_a_write_raises_the_translated_error(
    apiserver: FakeApiServer, make_kube: MakeKube
) -> None:
    apiserver.on("GET", "/api/v1", (200, {}, CORE))
    apiserver.on("GET", CM_PATH, (404, {}, status(404, "NotFound")))
    apiserver.route("PATCH", CM_PATH, dry_run_or_write((201, {}, configmap(a="1")),
                                                       (403, {}, status(403, "Forbidden"))))
    with pytest.raises(TargetError, match=r"patch configmaps/web in ns shop: not allowed") as err:
        target_on(make_kube).apply([configmap(a="1")], dry_run=False)
    assert 'verbs: ["patch"]' in err.value.fix


def not_ready() -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "stuck", "namespace": "shop",
                                                                        "generation": 1},
            "spec": {"replicas": 1}, "status": {"observedGeneration": 1, "replicas": 1}}


def test_a_readiness_timeout_names_the_configured_timeout_not_the_time_left(
    apiserver: FakeApiServer, make_kube: MakeKube, fake_time: FakeTime
) -> None:
    apiserver.on("GET", "/apis/apps/v1", (200, {}, APPS))
    apiserver.on("GET", "/apis/apps/v1/namespaces/shop/deployments/stuck", (200, {}, not_ready()))
    target = target_on(make_kube)
    ticking = target.kube.clock

    def clock() -> float:  # every reading costs a little time, as a real request does
        fake_time.now += 0.00001
        return ticking()

    target.kube.clock = clock
    with pytest.raises(FatalError, match=r"^deployment/stuck in ns shop is not ready after 3s: 0/1 available"):
        target.wait_ready([not_ready()], timeout=3, interval=0.5)
    assert sum(fake_time.sleeps) <= 3 and fake_time.sleeps[0] == 0.5


def test_several_waits_share_one_deadline_and_each_failure_names_the_budget(
    apiserver: FakeApiServer, make_kube: MakeKube, fake_time: FakeTime
) -> None:
    ready = not_ready() | {"metadata": {"name": "web", "namespace": "shop", "generation": 1},
                           "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                                      "availableReplicas": 1}}
    apiserver.on("GET", "/apis/apps/v1", (200, {}, APPS))
    web_path = "/apis/apps/v1/namespaces/shop/deployments/web"
    apiserver.on("GET", web_path, (200, {}, not_ready()), (200, {}, not_ready()), (200, {}, ready))
    apiserver.on("GET", "/apis/apps/v1/namespaces/shop/deployments/stuck", (200, {}, not_ready()))
    with pytest.raises(FatalError, match=r"deployment/stuck in ns shop is not ready after 10s"):
        target_on(make_kube).wait_ready([ready, not_ready()], timeout=10, interval=2)
    assert sum(fake_time.sleeps) == pytest.approx(10.0)  # 2 + 2 for web, then the 6 left for stuck


LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/k3smig-run-lock"
DATE = {"Date": "Wed, 21 Oct 2015 07:28:00 GMT"}


def test_the_lock_takes_the_servers_clock_and_names_a_live_holder(apiserver: FakeApiServer,
                                                                  make_kube: MakeKube) -> None:
    held = {"metadata": {"name": "k3smig-run-lock", "resourceVersion": "5"},
            "spec": {"holderIdentity": "alice run 1", "leaseDurationSeconds": 60,
                     "renewTime": "2015-10-21T07:27:30.000000Z"}}
    apiserver.on("GET", LEASE_PATH, (200, DATE, held))
    with pytest.raises(LockHeldError, match=r"alice run 1; it expires 2015-10-21T07:28:30.000000Z \(in 30s\)"):
        RunLock(make_kube(), "bob run 2").acquire()
    assert not apiserver.requests("PUT") and not apiserver.requests("POST")  # refused before any write


def test_a_lock_created_by_a_rival_in_the_meantime_is_refused(apiserver: FakeApiServer, make_kube: MakeKube) -> None:
    rival = {"metadata": {"name": "k3smig-run-lock", "resourceVersion": "1"},
             "spec": {"holderIdentity": "alice run 1", "leaseDurationSeconds": 60,
                      "renewTime": "2015-10-21T07:28:00.000000Z"}}
    apiserver.on("GET", LEASE_PATH, (404, DATE, status(404, "NotFound")), (200, DATE, rival))
    apiserver.on("POST", LEASE_PATH.rsplit("/", 1)[0], (409, DATE, status(409, "AlreadyExists")))
    lock = RunLock(make_kube(), "bob run 2")
    with pytest.raises(LockHeldError, match="alice run 1"):
        lock.acquire()
    assert lock.kube.counts.writes == 1 and not lock.release()  # not ours: left alone
