"""The live target writes with server-side apply, plans with a server-side dry run, and locks runs (issue 4).

Runs against the sandbox's K3s-like target; every test works in a namespace of its own
(``k3smig-test-<n>``) and deletes what it created.
"""

from __future__ import annotations

import base64
import itertools
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from kubernetes import client

from k3smig_lib.backends.base import ApplyResult
from k3smig_lib.backends.live_target import LiveTarget
from k3smig_lib.core.objects import Obj
from k3smig_lib.errors import FatalError
from k3smig_lib.k8s.client import ClusterRef, Kube, api_client
from k3smig_lib.k8s.lock import LockHeldError, RunLock, server_now
from k3smig_lib.sandbox import SandboxStatus

pytestmark = pytest.mark.integration
_numbers = itertools.count(1)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def meta(name: str, namespace: str = "", **extra: Any) -> Obj:
    return {"name": name, **({"namespace": namespace} if namespace else {}), **extra}


def namespace_obj(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(name, labels={"team": "shop"})}


def configmap(ns: str, name: str, **data: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, ns), "data": data}


def secret(ns: str, name: str, data: dict[str, str], kind: str = "Opaque", immutable: bool = False) -> Obj:
    obj: Obj = {"apiVersion": "v1", "kind": "Secret", "metadata": meta(name, ns), "type": kind,
                "data": {k: b64(v) for k, v in data.items()}}
    if immutable:
        obj["immutable"] = True
    return obj


def deployment(ns: str, name: str, image: str = "nginx:1.27", replicas: int = 1, **pod: Any) -> Obj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name, ns, labels=labels),
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": name, "image": image}], **pod}}},
    }


def service(ns: str, name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, ns),
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}


def shop(ns: str) -> list[Obj]:
    """A small application, given out of order on purpose (the target sorts)."""
    return [
        deployment(ns, "web", replicas=0),
        service(ns, "web"),
        secret(ns, "db-credentials", {"username": "shop", "password": "s3cr3t-value"}),
        configmap(ns, "web-config", LOG_LEVEL="info"),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("web", ns)},
        namespace_obj(ns),
    ]


def actions(result: ApplyResult) -> dict[str, str]:
    return {i.ref_id: i.action for i in result.items}


def live(target: LiveTarget, obj: Obj) -> Obj:
    found = target.get(obj)
    assert found is not None, f"{obj['kind']}/{obj['metadata']['name']} is not on the target"
    return found


def item(result: ApplyResult, ref_id: str) -> Any:
    return next(i for i in result.items if i.ref_id == ref_id)


@pytest.fixture(scope="module")
def target_ref(sandbox: SandboxStatus) -> ClusterRef:
    return ClusterRef(str(sandbox.kubeconfig), sandbox.contexts["target"], "target")


@pytest.fixture(scope="module")
def core(target_ref: ClusterRef) -> Any:
    return client.CoreV1Api(api_client(target_ref))


@pytest.fixture(scope="module")
def apps(target_ref: ClusterRef) -> Any:
    return client.AppsV1Api(api_client(target_ref))


@pytest.fixture
def ns(core: Any) -> Iterator[str]:
    """A fresh namespace name (not created); deleted afterwards if anything created it."""
    name = f"k3smig-test-{next(_numbers)}-{uuid.uuid4().hex[:4]}"
    yield name
    try:
        core.delete_namespace(name)
    except client.ApiException as e:
        assert e.status == 404


def create_namespace(core: Any, name: str) -> None:
    core.create_namespace({"metadata": {"name": name}})


def test_second_apply_of_the_same_objects_changes_nothing(target_ref: ClusterRef, core: Any, ns: str) -> None:
    objs = shop(ns)
    target = LiveTarget(target_ref)
    plan = target.apply(objs, dry_run=True)
    assert set(actions(plan).values()) == {"create"}
    assert plan.items[0].ref_id == f"Namespace/_cluster/{ns}"
    with pytest.raises(client.ApiException):
        core.read_namespace(ns)  # the plan stored nothing

    first = target.apply(objs, dry_run=False)
    assert first.changes == len(objs) and not first.dry_run
    target.wait_ready(objs[:1], timeout=30, interval=0.2)  # let the controller settle the Deployment's status
    versions = {o["kind"]: live(target, o)["metadata"]["resourceVersion"] for o in objs}

    again = LiveTarget(target_ref)
    second = again.apply(objs, dry_run=False)
    assert second.changes == 0
    assert set(actions(second).values()) == {"unchanged"}
    assert {o["kind"]: live(again, o)["metadata"]["resourceVersion"] for o in objs} == versions
    assert again.calls.applies == 0  # no write at all on the second run
    print(f"\ncalls, first run (plan + apply, {len(objs)} objects): {target.calls.as_dict()}")
    print(f"calls, second run (plan + apply, all unchanged): {again.calls.as_dict()}")


def test_listed_objects_are_the_ones_k3smig_applied(target_ref: ClusterRef, ns: str) -> None:
    objs = [namespace_obj(ns), configmap(ns, "web-config", A="1"), deployment(ns, "web", replicas=1)]
    target = LiveTarget(target_ref)
    target.apply(objs, dry_run=False)
    listed = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in target.list_objects()}
    assert {("Namespace", "", ns), ("ConfigMap", ns, "web-config"), ("Deployment", ns, "web")} <= listed
    assert not any(kind == "ReplicaSet" and space == ns for kind, space, _ in listed)  # the controller's, not ours
    assert ("ConfigMap", ns, "kube-root-ca.crt") not in listed


def test_existing_differing_deployment_is_a_conflict_and_nothing_is_applied(
    target_ref: ClusterRef, core: Any, apps: Any, ns: str
) -> None:
    create_namespace(core, ns)
    apps.create_namespaced_deployment(ns, deployment(ns, "web", image="nginx:1.25", replicas=2))
    desired = [namespace_obj(ns), deployment(ns, "web", image="nginx:1.27", replicas=2),
               configmap(ns, "web-config", LOG_LEVEL="debug")]
    target = LiveTarget(target_ref)
    target.wait_ready([deployment(ns, "web")], timeout=180, interval=0.5)  # controllers done writing its status
    before = apps.read_namespaced_deployment("web", ns).metadata.resource_version

    result = target.apply(desired, dry_run=False)

    web = item(result, f"Deployment/{ns}/web")
    assert web.action == "conflict"
    assert 'differ: .spec.template.spec.containers[name="web"].image' in web.reason
    assert "existing=update takes them over" in web.reason
    assert result.dry_run  # nothing was stored
    assert apps.read_namespaced_deployment("web", ns).metadata.resource_version == before
    with pytest.raises(client.ApiException, match="Not Found"):
        core.read_namespaced_config_map("web-config", ns)
    assert "team" not in (core.read_namespace(ns).metadata.labels or {})

    updated = target.apply(desired, dry_run=False, existing="update")
    assert item(updated, f"Deployment/{ns}/web").action == "update"
    live = apps.read_namespaced_deployment("web", ns)
    assert live.spec.template.spec.containers[0].image == "nginx:1.27"
    assert core.read_namespaced_config_map("web-config", ns).data == {"LOG_LEVEL": "debug"}
    assert target.apply(desired, dry_run=True).changes == 0  # converged: even `fail` sees no difference


def test_changed_object_owned_by_k3smig_is_still_a_conflict_under_fail(target_ref: ClusterRef, ns: str) -> None:
    target = LiveTarget(target_ref)
    target.apply([namespace_obj(ns), configmap(ns, "web-config", LOG_LEVEL="info")], dry_run=False)
    plan = target.apply([namespace_obj(ns), configmap(ns, "web-config", LOG_LEVEL="debug")], dry_run=True)
    cm = item(plan, f"ConfigMap/{ns}/web-config")
    assert (cm.action, cm.reason) == ("conflict", cm.reason)
    assert "data.LOG_LEVEL" in cm.reason
    assert target.apply([configmap(ns, "web-config", LOG_LEVEL="debug")], dry_run=True,
                        existing="update").changes == 1


def test_secret_with_another_type_is_a_conflict_and_is_not_deleted(
    target_ref: ClusterRef, core: Any, ns: str
) -> None:
    create_namespace(core, ns)
    core.create_namespaced_secret(ns, secret(ns, "registry", {"username": "bot", "password": "hunter2-x"}))
    live = core.read_namespaced_secret("registry", ns).metadata
    desired = secret(ns, "registry", {"username": "bot", "password": "hunter2-x"}, kind="kubernetes.io/basic-auth")

    for policy in ("fail", "update"):
        result = LiveTarget(target_ref).apply([desired], dry_run=False, existing=policy)
        reg = item(result, f"Secret/{ns}/registry")
        assert reg.action == "conflict"
        assert "type differs (live Opaque, desired kubernetes.io/basic-auth)" in reg.reason
        assert "hunter2" not in reg.reason and b64("hunter2-x") not in reg.reason

    after = core.read_namespaced_secret("registry", ns)
    assert (after.metadata.uid, after.metadata.resource_version, after.type) == (live.uid, live.resource_version,
                                                                                 "Opaque")


def test_immutable_secret_that_differs_is_a_conflict_and_identical_is_unchanged(
    target_ref: ClusterRef, core: Any, ns: str
) -> None:
    create_namespace(core, ns)
    core.create_namespaced_secret(ns, secret(ns, "tls-key", {"key": "old-key-material"}, immutable=True))
    before = core.read_namespaced_secret("tls-key", ns).metadata.resource_version
    target = LiveTarget(target_ref)

    for policy in ("fail", "update"):
        changed = target.apply([secret(ns, "tls-key", {"key": "new-key-material"}, immutable=True)], dry_run=False,
                               existing=policy)
        key = item(changed, f"Secret/{ns}/tls-key")
        assert key.action == "conflict"
        assert "the live Secret is immutable and differs; k3smig never deletes it" in key.reason
        assert "key-material" not in key.reason
    assert core.read_namespaced_secret("tls-key", ns).metadata.resource_version == before

    same = target.apply([secret(ns, "tls-key", {"key": "old-key-material"}, immutable=True)], dry_run=True)
    assert actions(same) == {f"Secret/{ns}/tls-key": "unchanged"}
    assert "not taken over" in same.items[0].reason


def crd(group: str) -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "properties": {
                         "size": {"type": "integer"}}}}}}}]},
    }


def test_custom_resource_is_applied_after_its_crd_is_established(target_ref: ClusterRef, ns: str) -> None:
    group = f"t{uuid.uuid4().hex[:6]}.k3smig.test"
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": meta("blue", ns), "spec": {"size": 3}}
    objs = [widget, namespace_obj(ns), crd(group)]
    target = LiveTarget(target_ref)
    try:
        plan = target.apply(objs, dry_run=True)
        assert [i.ref_id for i in plan.items] == [f"CustomResourceDefinition/_cluster/widgets.{group}",
                                                  f"Namespace/_cluster/{ns}", f"Widget/{ns}/blue"]
        assert "its CRD is applied first" in plan.items[2].reason

        result = target.apply(objs, dry_run=False)
        assert [i.action for i in result.items] == ["create", "create", "create"]
        assert live(target, widget)["spec"] == {"size": 3}
        assert LiveTarget(target_ref).apply(objs, dry_run=True).changes == 0
    finally:
        Kube.of(target_ref).request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                                    f"widgets.{group}", counter="writes")


def test_readiness_waits_for_a_deployment_and_names_a_stuck_one(target_ref: ClusterRef, ns: str) -> None:
    web = deployment(ns, "web", replicas=2)
    stuck = deployment(ns, "stuck", replicas=1, nodeSelector={"k3smig.test/no-such-node": "true"})
    target = LiveTarget(target_ref)
    target.apply([namespace_obj(ns), web, stuck, service(ns, "web")], dry_run=False)

    assert target.wait_ready([web, service(ns, "web")], timeout=180, interval=0.5) == [f"Deployment/{ns}/web",
                                                                                       f"Service/{ns}/web"]
    assert live(target, web)["status"]["availableReplicas"] == 2
    assert target.wait_ready([stuck], timeout=0.1, plan_only=True) == [f"Deployment/{ns}/stuck"]
    with pytest.raises(FatalError, match=rf"deployment/stuck in ns {ns} is not ready after 3s: 0/1 available"):
        target.wait_ready([stuck], timeout=3, interval=0.5)


def test_objects_the_target_cannot_hold_are_conflicts_and_block_the_apply(target_ref: ClusterRef, core: Any,
                                                                          ns: str) -> None:
    orphan = configmap(f"{ns}-absent", "web-config", A="1")
    # a kind whose operator (and CRD) is not part of the target platform
    unserved = {"apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute", "metadata": meta("shop-tls", ns),
                "spec": {"entryPoints": ["websecure"]}}
    result = LiveTarget(target_ref).apply([namespace_obj(ns), orphan, unserved], dry_run=False)
    assert actions(result) == {f"Namespace/_cluster/{ns}": "create", f"ConfigMap/{ns}-absent/web-config": "conflict",
                               f"IngressRoute/{ns}/shop-tls": "conflict"}
    assert f"namespace {ns}-absent does not exist on the target" in result.items[1].reason
    assert "does not serve IngressRoute of traefik.io/v1alpha1" in result.items[2].reason
    with pytest.raises(client.ApiException, match="Not Found"):
        core.read_namespace(ns)  # a conflict anywhere: nothing written, not even the namespace


def test_target_describes_itself_as_k3s_and_has_no_local_volume_folder(target_ref: ClusterRef, core: Any) -> None:
    target = LiveTarget(target_ref)
    info = target.info()
    assert (info.kind, info.distribution, info.cluster_name) == ("live", "k3s", "k3smig-target")
    assert info.identity == core.read_namespace("kube-system").metadata.uid
    assert info.kubernetes_version.startswith("v1.")


def test_second_run_is_refused_while_the_first_holds_the_lock(target_ref: ClusterRef) -> None:
    kube = Kube.of(target_ref)
    name = f"k3smig-run-lock-{uuid.uuid4().hex[:6]}"
    first = RunLock(kube, "alice@laptop run 1", name=name, duration=120)
    second = RunLock(kube, "bob@ci run 2", name=name, duration=120)
    grant = first.acquire()
    try:
        assert grant.holder == "alice@laptop run 1" and not grant.took_over_from
        with pytest.raises(LockHeldError, match=r"another run holds the run lock: alice@laptop run 1; it expires "
                                                r"\S+Z \(in 1[0-2]\ds\)"):
            second.acquire()
        assert first.renew().expires_at >= grant.expires_at
        assert first.acquire().holder == grant.holder  # re-acquiring one's own lock is fine
    finally:
        assert first.release()
    assert second.acquire().holder == "bob@ci run 2"  # released: free at once
    assert second.release() and not first.release()


def test_expired_lock_is_taken_over_and_reported(target_ref: ClusterRef) -> None:
    kube = Kube.of(target_ref)
    name = f"k3smig-run-lock-{uuid.uuid4().hex[:6]}"
    path = f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}"
    crashed = RunLock(kube, "alice@laptop run 1", name=name, duration=60)
    crashed.acquire()
    successor = RunLock(kube, "bob@ci run 2", name=name, duration=60)
    with pytest.raises(LockHeldError, match="alice@laptop run 1"):
        successor.acquire()  # alive: renewed just now
    # the crashed run's last renewal, ten minutes ago by the server's clock: expired, no waiting for it
    read = kube.request("GET", path, counter="gets")
    lease = read.body
    lease["spec"]["renewTime"] = (server_now(read) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    kube.request("PUT", path, counter="writes", body=lease)
    grant = successor.acquire()
    try:
        assert grant.took_over_from == "alice@laptop run 1"
        assert "taken over from alice@laptop run 1" in grant.report
        lease = kube.json("GET", path, counter="gets")
        assert lease["spec"]["holderIdentity"] == "bob@ci run 2" and lease["spec"]["leaseTransitions"] == 1
    finally:
        assert successor.release()


def test_two_runs_started_together_one_proceeds_and_one_is_refused(target_ref: ClusterRef) -> None:
    name = f"k3smig-run-lock-{uuid.uuid4().hex[:6]}"
    locks = [RunLock(Kube.of(target_ref), f"op{i}@host run {i}", name=name, duration=60) for i in (1, 2)]
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def run(lock: RunLock) -> None:
        start.wait()
        try:
            outcomes[lock.holder] = f"granted to {lock.acquire().holder}"
        except LockHeldError as e:
            outcomes[lock.holder] = str(e)

    threads = [threading.Thread(target=run, args=(lock,)) for lock in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winner = next(holder for holder, text in outcomes.items() if text.startswith("granted"))
    loser = next(holder for holder in outcomes if holder != winner)
    assert f"another run holds the run lock: {winner}; it expires" in outcomes[loser]
    assert next(lock for lock in locks if lock.holder == winner).release()
