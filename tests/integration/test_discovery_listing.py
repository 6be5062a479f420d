"""Discovery (full and cached by kind) and paged lists, against the sandbox's real API servers.

Kinds come and go as real CRDs do; an expired ``continue`` token is the fault proxy's 410 on the
continue page, a broken group its 503, in front of the real server; time is fake (no real waits).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.backends.live_target import LiveTarget
from k3smig_lib.errors import TargetError
from k3smig_lib.k8s.client import ClusterRef, Kube
from k3smig_lib.k8s.discovery import ApiResource, ResourceCache, discover
from k3smig_lib.k8s.listing import MAX_RELISTS, PAGE_SIZE, ListStats, list_order, list_resource, stream_many
from k3smig_lib.k8s.readiness import wait_until
from k3smig_lib.k8s.retry import RetryPolicy

sys.path.insert(0, str(Path(__file__).parent))  # tests/integration is not a package
from faultproxy import Fault  # noqa: E402
from realapi import FakeTime, Proxied  # noqa: E402

pytestmark = pytest.mark.integration

ThroughProxy = Callable[[str], Proxied]
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
CRD_VERBS = frozenset({"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"})
MakeCrd = Callable[[str, str], str]


def crd(group: str, kind: str) -> dict[str, Any]:
    plural = f"{kind.lower()}s"
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


def served_kinds(kube: Kube, group_version: str) -> set[str]:
    resp = kube.request("GET", f"/apis/{group_version}", counter="discovery", accept=(404,))
    return {str(r.get("kind")) for r in resp.body.get("resources") or []} if resp.ok else set()


def wait_served(kube: Kube, group: str, kind: str, *, served: bool = True) -> None:
    """Wait (real time, bounded) until discovery of ``group/v1`` does, or does not, serve ``kind``."""
    wait_until(lambda: served_kinds(kube, f"{group}/v1"), lambda kinds: (kind in kinds) == served, 60, interval=0.2)


@pytest.fixture
def make_crd(target_ref: ClusterRef) -> Iterator[MakeCrd]:
    """``make_crd(group, kind)``: a real CRD on the target, created and waited for until discovery serves the
    kind (its own transport, so a test's counts see none of it); returns the CRD's name; deleted afterwards."""
    admin = Kube.of(target_ref)
    made: list[tuple[str, str, str]] = []

    def make(group: str, kind: str) -> str:
        doc = crd(group, kind)
        admin.request("POST", CRDS, counter="writes", body=doc)
        made.append((doc["metadata"]["name"], group, kind))
        wait_served(admin, group, kind)
        return str(doc["metadata"]["name"])

    yield make
    for name, group, kind in made:  # gone from discovery before the next test discovers everything
        admin.request("DELETE", f"{CRDS}/{name}", counter="writes", accept=(404,))
        wait_served(admin, group, kind, served=False)


def new_group() -> str:
    return f"t{uuid.uuid4().hex[:6]}.k3smig.test"


def test_a_kind_missing_from_the_cache_refetches_its_group_version_once(
    target_ref: ClusterRef, make_crd: MakeCrd
) -> None:
    group = new_group()
    make_crd(group, "Gadget")
    kube = Kube.of(target_ref)
    cache = ResourceCache(kube)
    assert cache.lookup(f"{group}/v1", "Gadget") == ApiResource(group, "v1", "gadgets", "Gadget", True, CRD_VERBS)
    assert cache.lookup(f"{group}/v1", "Gadget") is not None  # cached: no second request
    assert kube.counts.discovery == 1
    make_crd(group, "Widget")  # a CRD established since the group version was read
    widget = cache.lookup(f"{group}/v1", "Widget")  # one refetch finds it
    assert widget is not None and widget.path("shop", "blue") == f"/apis/{group}/v1/namespaces/shop/widgets/blue"
    assert kube.counts.discovery == 2


def test_forget_drops_a_group_and_an_unserved_group_version_is_none(
    through_proxy: ThroughProxy, fake_time: FakeTime, make_crd: MakeCrd
) -> None:
    group = new_group()
    make_crd(group, "Widget")
    p = through_proxy("target")
    cache = ResourceCache(p.kube(fake_time))
    assert cache.lookup("v1", "ConfigMap") is not None and cache.lookup(f"{group}/v1", "Widget") is not None
    cache.forget(group)
    assert cache.lookup("v1", "ConfigMap") is not None and cache.lookup(f"{group}/v1", "Widget") is not None
    assert [s.path for s in p.proxy.seen] == ["/api/v1", f"/apis/{group}/v1", f"/apis/{group}/v1"]
    assert cache.lookup("traefik.io/v1alpha1", "IngressRoute") is None  # a real 404: not served, not an error
    assert (p.proxy.seen[-1].path, p.proxy.seen[-1].status) == ("/apis/traefik.io/v1alpha1", 404)


def test_full_discovery_keeps_preferred_versions_and_records_a_broken_group(
    through_proxy: ThroughProxy, fake_time: FakeTime
) -> None:
    p = through_proxy("source")
    p.proxy.set_faults(Fault("status", 503, times=-1, path="/apis/batch/v1"))  # its backend is down, for good
    kube = p.kube(fake_time, policy=RetryPolicy(attempts=3))
    found = discover(kube, workers=2)
    names = {r.full_name for r in found.resources}
    assert {"secrets", "deployments.apps", "horizontalpodautoscalers.autoscaling"} <= names
    assert list(found.failed) == ["batch/v1"] and "last status: HTTP 503" in found.failed["batch/v1"]
    assert not [r for r in found.resources if r.group == "batch"]
    assert {r.version for r in found.resources if r.group == "autoscaling"} == {"v2"}  # the preferred one only
    assert "/apis/autoscaling/v1" not in [s.path for s in p.proxy.seen]
    assert not [r for r in found.resources if "/" in r.name]  # subresources are views, not objects
    assert found.calls == len(p.proxy.seen) == kube.counts.discovery + kube.counts.retries
    assert len(fake_time.sleeps) == 2  # the broken group's two retries, on fake time


def two_secrets(target_ref: ClusterRef, ns: str) -> None:
    admin = Kube.of(target_ref)
    for name in ("b", "a"):
        admin.request("POST", f"/api/v1/namespaces/{ns}/secrets", counter="writes",
                      body={"metadata": {"name": name}, "stringData": {"k": name}})


def secrets_of(kube: Kube) -> ApiResource:
    found = ResourceCache(kube).lookup("v1", "Secret")
    assert found is not None
    return found


def test_an_expired_continue_token_relists_from_the_start(
    target_ref: ClusterRef, target_ns: str, through_proxy: ThroughProxy, fake_time: FakeTime
) -> None:
    two_secrets(target_ref, target_ns)
    p = through_proxy("target")
    path = f"/api/v1/namespaces/{target_ns}/secrets"
    p.proxy.set_faults(Fault("status", 410, query="continue=", path=path))
    kube = p.kube(fake_time)
    result = list_resource(kube, secrets_of(kube), namespace=target_ns, page_size=1)
    assert [o["metadata"]["name"] for o in result.items] == ["a", "b"]
    assert all(o["kind"] == "Secret" and o["apiVersion"] == "v1" for o in result.items)
    assert (result.relists, result.pages, result.calls) == (1, 2, 4)
    assert [s.status for s in p.proxy.requests(path)] == [200, 410, 200, 200]
    assert fake_time.sleeps == []  # a relist is not a retry: no wait


def test_streamed_pages_of_a_relisted_kind_are_superseded(
    target_ref: ClusterRef, target_ns: str, through_proxy: ThroughProxy, fake_time: FakeTime
) -> None:
    two_secrets(target_ref, target_ns)
    p = through_proxy("target")
    p.proxy.set_faults(Fault("status", 410, query="continue=", path="/api/v1/secrets"))
    kube = p.kube(fake_time)
    secrets = secrets_of(kube)
    maps = ResourceCache(kube).lookup("v1", "ConfigMap")
    assert maps is not None
    stats = ListStats()
    pages = list(stream_many(kube, [secrets, maps], workers=2, page_size=1, stats=stats))
    latest = {r.name: max(pg.attempt for pg in pages if pg.resource is r) for r in (secrets, maps)}
    assert latest == {"secrets": 1, "configmaps": 0}
    assert [pg.attempt for pg in pages if pg.resource is secrets][0] == 0  # the void first pass was handed out
    kept = sorted((o for pg in pages if pg.attempt == latest[pg.resource.name] and pg.resource is secrets
                   for o in pg.items), key=list_order)
    again = list_resource(Kube.of(target_ref), secrets_of(Kube.of(target_ref)))
    assert [o["metadata"]["name"] for o in kept] == [o["metadata"]["name"] for o in again.items]
    assert [r.relists for r in stats.results] == [1, 0]
    assert [pg.last for pg in pages if pg.resource is secrets].count(True) == 1


def test_relists_are_bounded(
    target_ref: ClusterRef, target_ns: str, through_proxy: ThroughProxy, fake_time: FakeTime
) -> None:
    two_secrets(target_ref, target_ns)
    p = through_proxy("target")
    path = f"/api/v1/namespaces/{target_ns}/secrets"
    p.proxy.set_faults(Fault("status", 410, times=-1, query="continue=", path=path))
    kube = p.kube(fake_time)
    with pytest.raises(TargetError, match=rf"list secrets: the continue token expired {MAX_RELISTS + 1} times"):
        list_resource(kube, secrets_of(kube), namespace=target_ns, page_size=1)
    assert len(p.proxy.requests(path)) == 2 * (MAX_RELISTS + 1)


def test_the_live_targets_managed_list_uses_the_bounded_relist(
    target_ref: ClusterRef, target_ns: str, through_proxy: ThroughProxy, fake_time: FakeTime
) -> None:
    admin = Kube.of(target_ref)

    def create(i: int) -> None:
        admin.request("POST", f"/api/v1/namespaces/{target_ns}/configmaps", counter="writes",
                      body={"metadata": {"name": f"c{i:03d}"}})

    with ThreadPoolExecutor(max_workers=4) as pool:  # more than a page: the list needs a continue token
        list(pool.map(create, range(PAGE_SIZE + 1)))
    p = through_proxy("target")
    p.proxy.set_faults(Fault("status", 410, times=-1, query="continue=", path="/api/v1/configmaps"))
    target = LiveTarget(p.ref, kube=p.kube(fake_time))
    with pytest.raises(TargetError, match="list configmaps: the continue token expired"):
        target.list_objects()
    assert len(p.proxy.requests("/api/v1/configmaps")) == 2 * (MAX_RELISTS + 1)
    assert not [s for s in p.proxy.seen if s.path.endswith("/events")]  # events are never listed


def test_the_live_target_lists_only_what_k3smig_manages_and_a_kind_gone_since_discovery_has_none(
    target_ref: ClusterRef, target_ns: str, through_proxy: ThroughProxy, fake_time: FakeTime, make_crd: MakeCrd
) -> None:
    admin = Kube.of(target_ref)
    admin.request("POST", f"/api/v1/namespaces/{target_ns}/secrets", counter="writes",
                  query={"fieldManager": "helm"}, body={"metadata": {"name": "tls"}, "stringData": {"k": "v"}})
    mine = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": target_ns},
            "stringData": {"password": "x"}}
    LiveTarget(target_ref).apply([mine], dry_run=False)
    group = new_group()
    name = make_crd(group, "Widget")
    widgets = f"/apis/{group}/v1/widgets"

    def delete_the_crd() -> None:  # between discovery and the list of its kind: a real 404 follows
        admin.request("DELETE", f"{CRDS}/{name}", counter="writes")
        wait_until(lambda: admin.request("GET", widgets, counter="lists", accept=(404,)).status,
                   lambda status: status == 404, 60, interval=0.2)

    p = through_proxy("target")
    p.proxy.set_faults(Fault("pass", path=widgets, before=delete_the_crd))
    objects = LiveTarget(p.ref, kube=p.kube(fake_time)).list_objects()
    assert [(o["kind"], o["metadata"]["name"]) for o in objects
            if o["metadata"].get("namespace") == target_ns] == [("Secret", "db")]
    assert [(s.status, s.fault) for s in p.proxy.requests(widgets)] == [(404, "pass")]
    assert p.proxy.hook_errors == []
