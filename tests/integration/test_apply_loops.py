"""The write side's loops against the sandbox's real target: plan refusals, write conflicts, readiness, the run lock.

Refusals are the real server's (a 422 of an invalid object, a 403 of a real ValidatingAdmissionPolicy
that admits dry runs only). Races are played at an exact moment by the fault proxy's ``before`` hook,
which makes a rival's real write just before one of ours. The one answer the proxy makes up is the 409
of a forced server-side apply, which a real server never gives (``force`` takes the fields over): the
dry runs and reads around it are real. Time is fake, so backoffs and readiness timeouts take no wall
time.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.backends.live_target import LiveTarget
from k3smig_lib.core.objects import Obj
from k3smig_lib.errors import ConflictError, FatalError, TargetError
from k3smig_lib.k8s.client import ClusterRef, Kube
from k3smig_lib.k8s.lock import LockHeldError, RunLock, server_now
from k3smig_lib.k8s.readiness import deployment_ready, wait_until

sys.path.insert(0, str(Path(__file__).parent))  # tests/integration is not a package
from faultproxy import Fault  # noqa: E402
from realapi import FakeTime, Proxied  # noqa: E402

pytestmark = pytest.mark.integration

ThroughProxy = Callable[[str], Proxied]
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
ADMISSION = "/apis/admissionregistration.k8s.io/v1"


def configmap(ns: str, labels: dict[str, str] | None = None, **data: str) -> Obj:
    meta: dict[str, Any] = {"name": "web", "namespace": ns} | ({"labels": labels} if labels else {})
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def micro(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_refused_change_names_reason_and_field_causes_never_the_message(
    target_ref: ClusterRef, target_ns: str
) -> None:
    plan = LiveTarget(target_ref).apply([configmap(target_ns, labels={"k": "v4lue with spaces"}, a="1")],
                                        dry_run=True)
    item = plan.items[0]
    assert item.action == "conflict"
    assert item.reason == ("the API server refuses the change (HTTP 422 Invalid; fields metadata.labels "
                           "(FieldValueInvalid))")


def test_a_write_conflict_replans_with_a_bounded_jittered_backoff_on_the_injected_sleep(
    target_ref: ClusterRef, target_ns: str, through_proxy: ThroughProxy, fake_time: FakeTime
) -> None:
    admin = Kube.of(target_ref)
    path = f"/api/v1/namespaces/{target_ns}/configmaps/web"
    admin.request("POST", f"/api/v1/namespaces/{target_ns}/configmaps", counter="writes",
                  body={"metadata": {"name": "web"}, "data": {"a": "1"}})
    p = through_proxy("target")
    p.proxy.set_faults(Fault("status", 409, times=-1, method="PATCH", path=path, not_query="dryRun="))
    target = LiveTarget(p.ref, kube=p.kube(fake_time))
    with pytest.raises(ConflictError, match="kept conflicting after 3 attempts"):
        target.apply([configmap(target_ns, a="2")], dry_run=False, existing="update")
    writes = [s for s in p.proxy.requests(path) if s.method == "PATCH" and "dryRun=" not in s.query]
    assert [s.status for s in writes] == [409, 409, 409]
    assert fake_time.sleeps == [0.1, 0.2]  # rand 0.5 × ceilings 0.2, 0.4; no wait after the last attempt
    assert (target.calls.applies, target.calls.dry_runs, target.calls.retries) == (3, 4, 0)
    assert admin.json("GET", path, counter="gets")["data"] == {"a": "1"}  # the real dry runs stored nothing


def test_a_write_conflict_that_converged_meanwhile_is_unchanged(
    target_ref: ClusterRef, target_ns: str, through_proxy: ThroughProxy, fake_time: FakeTime
) -> None:
    admin = Kube.of(target_ref)
    path = f"/api/v1/namespaces/{target_ns}/configmaps/web"
    admin.request("POST", f"/api/v1/namespaces/{target_ns}/configmaps", counter="writes",
                  body={"metadata": {"name": "web"}, "data": {"a": "1"}})

    def rival_converges() -> None:  # someone else writes the very state we want, just before our write
        admin.request("PATCH", path, counter="writes", body={"data": {"a": "2"}},
                      content_type="application/merge-patch+json")

    p = through_proxy("target")
    p.proxy.set_faults(Fault("status", 409, method="PATCH", path=path, not_query="dryRun=", before=rival_converges))
    result = LiveTarget(p.ref, kube=p.kube(fake_time)).apply([configmap(target_ns, a="2")], dry_run=False,
                                                               existing="update")
    assert [i.action for i in result.items] == ["unchanged"] and fake_time.sleeps == []
    assert admin.json("GET", path, counter="gets")["data"] == {"a": "2"}
    assert p.proxy.hook_errors == []


@pytest.fixture
def only_dry_runs(target_ref: ClusterRef, target_ns: str) -> Iterator[str]:
    """A real ValidatingAdmissionPolicy that admits dry runs of ConfigMap writes in ``target_ns`` and refuses the
    real ones (403 Forbidden); waited for until the server enforces it, deleted afterwards."""
    admin = Kube.of(target_ref)
    name = f"k3smig-only-dry-runs-{uuid.uuid4().hex[:6]}"
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": name},
              "spec": {"failurePolicy": "Fail",
                       "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                               "operations": ["CREATE", "UPDATE"],
                                                               "resources": ["configmaps"]}]},
                       "validations": [{"expression": "request.dryRun == true", "reason": "Forbidden",
                                        "message": "only dry runs here"}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": name},
               "spec": {"policyName": name, "validationActions": ["Deny"],
                        "matchResources": {"namespaceSelector": {"matchLabels": {
                            "kubernetes.io/metadata.name": target_ns}}}}}
    admin.request("POST", f"{ADMISSION}/validatingadmissionpolicies", counter="writes", body=policy)
    admin.request("POST", f"{ADMISSION}/validatingadmissionpolicybindings", counter="writes", body=binding)
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe", "namespace": target_ns}}
    probe_path = f"/api/v1/namespaces/{target_ns}/configmaps/probe"

    def write_probe() -> int:
        resp = admin.request("PATCH", probe_path, counter="applies", query={"fieldManager": "probe"}, body=probe,
                             content_type="application/apply-patch+yaml", accept=(403,))
        if resp.ok:  # not enforced yet: take the probe back
            admin.request("DELETE", probe_path, counter="writes")
        return resp.status

    try:
        wait_until(write_probe, lambda status: status == 403, 60, interval=0.2)
        yield name
    finally:
        admin.request("DELETE", f"{ADMISSION}/validatingadmissionpolicybindings/{name}", counter="writes",
                      accept=(404,))
        admin.request("DELETE", f"{ADMISSION}/validatingadmissionpolicies/{name}", counter="writes", accept=(404,))


def test_another_refusal_of_a_write_raises_the_translated_error(
    target_ref: ClusterRef, target_ns: str, only_dry_runs: str
) -> None:
    target = LiveTarget(target_ref)
    with pytest.raises(TargetError, match=rf"patch configmaps/web in ns {target_ns}: not allowed \(HTTP 403") as err:
        target.apply([configmap(target_ns, a="1")], dry_run=False)
    assert 'verbs: ["patch"]' in err.value.fix
    assert only_dry_runs not in str(err.value)  # the server's message (naming the policy) is never shown
    assert (target.calls.dry_runs, target.calls.applies) == (1, 1)  # the plan was admitted, the write refused


def stuck_deployment(ns: str, name: str) -> Obj:
    """A Deployment whose pod can never be scheduled (no node has the label): never ready on its own."""
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"nodeSelector": {"k3smig.test/no-such-node": "true"},
                                           "containers": [{"name": name, "image": "nginx:1.27"}]}}}}


def test_a_readiness_timeout_names_the_configured_timeout_not_the_time_left(
    target_ref: ClusterRef, target_ns: str, fake_time: FakeTime
) -> None:
    stuck = stuck_deployment(target_ns, "stuck")
    LiveTarget(target_ref).apply([stuck], dry_run=False)

    def clock() -> float:  # every reading costs a little time, as a real request does
        fake_time.now += 0.00001
        return fake_time.clock()

    target = LiveTarget(target_ref, kube=Kube.of(target_ref, sleep=fake_time.sleep, clock=clock))
    with pytest.raises(FatalError, match=rf"^deployment/stuck in ns {target_ns} is not ready after 3s: 0/1 available"):
        target.wait_ready([stuck], timeout=3, interval=0.5)
    assert sum(fake_time.sleeps) <= 3 and fake_time.sleeps[0] == 0.5


def test_several_waits_share_one_deadline_and_each_failure_names_the_budget(
    target_ref: ClusterRef, target_ns: str, fake_time: FakeTime
) -> None:
    web, stuck = stuck_deployment(target_ns, "web"), stuck_deployment(target_ns, "stuck")
    admin = Kube.of(target_ref)
    LiveTarget(target_ref).apply([web, stuck], dry_run=False)
    web_path = f"/apis/apps/v1/namespaces/{target_ns}/deployments/web"

    def sleep(seconds: float) -> None:  # during the second wait for web, web is scaled to 0: ready from then on
        fake_time.sleep(seconds)
        if len(fake_time.sleeps) == 2:
            admin.request("PATCH", web_path, counter="writes", body={"spec": {"replicas": 0}},
                          content_type="application/merge-patch+json")
            wait_until(lambda: admin.json("GET", web_path, counter="gets"), deployment_ready, 60, interval=0.2)

    target = LiveTarget(target_ref, kube=Kube.of(target_ref, sleep=sleep, clock=fake_time.clock))
    with pytest.raises(FatalError, match=rf"deployment/stuck in ns {target_ns} is not ready after 10s"):
        target.wait_ready([web, stuck], timeout=10, interval=2)
    assert fake_time.sleeps == [2, 2, 2, 2, 2]  # 2 + 2 for web, then the 6 left for stuck


def test_the_lock_takes_the_servers_clock_and_names_a_live_holder(target_ref: ClusterRef) -> None:
    admin = Kube.of(target_ref)
    name = f"k3smig-run-lock-{uuid.uuid4().hex[:6]}"
    renewed = server_now(admin.request("GET", "/version", counter="gets")) - timedelta(seconds=30)
    admin.request("POST", LEASES, counter="writes", body={
        "metadata": {"name": name},
        "spec": {"holderIdentity": "alice run 1", "leaseDurationSeconds": 600, "renewTime": micro(renewed)}})
    expires = micro(renewed + timedelta(seconds=600))
    try:
        kube = Kube.of(target_ref)
        with pytest.raises(LockHeldError, match=rf"alice run 1; it expires {re.escape(expires)} \(in \d+s\)") as err:
            RunLock(kube, "bob run 2", name=name).acquire()
        left = re.search(r"\(in (\d+)s\)", str(err.value))
        assert left is not None and int(left.group(1)) <= 570  # the server's clock had passed the renewal by 30s
        assert kube.counts.writes == 0  # refused before any write
    finally:
        admin.request("DELETE", f"{LEASES}/{name}", counter="writes")


def test_a_lock_created_by_a_rival_in_the_meantime_is_refused(
    target_ref: ClusterRef, through_proxy: ThroughProxy, fake_time: FakeTime
) -> None:
    name = f"k3smig-run-lock-{uuid.uuid4().hex[:6]}"
    rival = RunLock(Kube.of(target_ref), "alice run 1", name=name, duration=60)

    def rival_takes_it() -> None:  # between our read (404) and our create
        rival.acquire()

    p = through_proxy("target")
    p.proxy.set_faults(Fault("pass", method="POST", path=LEASES, before=rival_takes_it))
    lock = RunLock(p.kube(fake_time), "bob run 2", name=name, duration=60)
    try:
        with pytest.raises(LockHeldError, match="alice run 1"):
            lock.acquire()
        assert lock.kube.counts.writes == 1 and not lock.release()  # not ours: left alone
        assert [(s.method, s.status) for s in p.proxy.seen] == [("GET", 404), ("POST", 409), ("GET", 200),
                                                                ("GET", 200)]
        assert p.proxy.hook_errors == []
    finally:
        assert rival.release()
