"""Discovery (full and cached by kind) and paged lists, against the scripted API server on fake time."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from k3smig_lib.backends.live_target import LiveTarget
from k3smig_lib.errors import TargetError
from k3smig_lib.k8s.client import ClusterRef, Kube
from k3smig_lib.k8s.discovery import ApiResource, ResourceCache, discover
from k3smig_lib.k8s.listing import MAX_RELISTS, list_resource

sys.path.insert(0, str(Path(__file__).parent))  # tests are not a package
from fakeapi import Answer, FakeApiServer, Seen, status  # noqa: E402

MakeKube = Callable[..., Kube]


def resource_list(gv: str, *kinds: tuple[str, str, bool]) -> dict[str, object]:
    return {"kind": "APIResourceList", "groupVersion": gv, "resources": [
        {"name": plural, "kind": kind, "namespaced": namespaced, "verbs": ["get", "list", "patch"]}
        for plural, kind, namespaced in kinds]}


def test_a_kind_missing_from_the_cache_refetches_its_group_version_once(
    apiserver: FakeApiServer, make_kube: MakeKube
) -> None:
    before = resource_list("t.example/v1", ("gadgets", "Gadget", True))
    after = resource_list("t.example/v1", ("gadgets", "Gadget", True), ("widgets", "Widget", True))
    apiserver.on("GET", "/apis/t.example/v1", (200, {}, before), (200, {}, after))
    kube = make_kube()
    cache = ResourceCache(kube)
    assert cache.lookup("t.example/v1", "Gadget") == ApiResource("t.example", "v1", "gadgets", "Gadget", True,
                                                                frozenset({"get", "list", "patch"}))
    assert cache.lookup("t.example/v1", "Gadget") is not None  # cached: no second request
    assert len(apiserver.seen) == 1
    widget = cache.lookup("t.example/v1", "Widget")  # a CRD established since: one refetch finds it
    assert widget is not None and widget.path("shop", "blue") == "/apis/t.example/v1/namespaces/shop/widgets/blue"
    assert len(apiserver.seen) == 2 and kube.counts.discovery == 2


def test_forget_drops_a_group_and_an_unserved_group_version_is_none(
    apiserver: FakeApiServer, make_kube: MakeKube
) -> None:
    apiserver.on("GET", "/api/v1", (200, {}, resource_list("v1", ("configmaps", "ConfigMap", True))))
    apiserver.on("GET", "/apis/t.example/v1", (200, {}, resource_list("t.example/v1", ("widgets", "Widget", True))))
    cache = ResourceCache(make_kube())
    assert cache.lookup("v1", "ConfigMap") is not None and cache.lookup("t.example/v1", "Widget") is not None
    cache.forget("t.example")
    assert cache.lookup("v1", "ConfigMap") is not None and cache.lookup("t.example/v1", "Widget") is not None
    assert [s.path for s in apiserver.seen] == ["/api/v1", "/apis/t.example/v1", "/apis/t.example/v1"]
    assert cache.lookup("traefik.io/v1alpha1", "IngressRoute") is None  # 404: not served, not an error


def test_full_discovery_keeps_preferred_versions_and_records_a_broken_group(
    apiserver: FakeApiServer, make_kube: MakeKube
) -> None:
    apiserver.on("GET", "/readyz", (200, {"Content-Type": "text/plain"}, b"ok"))
    apiserver.on("GET", "/api", (200, {}, {"versions": ["v1"]}))
    apiserver.on("GET", "/apis", (200, {}, {"groups": [
        {"name": "apps", "preferredVersion": {"version": "v1"}, "versions": [{"version": "v1"}]},
        {"name": "metrics.k8s.io", "preferredVersion": {"version": "v1beta1"}, "versions": []}]}))
    apiserver.on("GET", "/api/v1", (200, {}, resource_list("v1", ("secrets", "Secret", True))))
    apiserver.on("GET", "/apis/apps/v1", (200, {}, resource_list("apps/v1", ("deployments", "Deployment", True))))
    apiserver.on("GET", "/apis/metrics.k8s.io/v1beta1", (503, {}, status(503, "ServiceUnavailable")))
    kube = make_kube(side="source")
    found = discover(kube, workers=2)
    assert [r.full_name for r in found.resources] == ["secrets", "deployments.apps"]
    assert list(found.failed) == ["metrics.k8s.io/v1beta1"] and "last status: HTTP 503" in found.failed[
        "metrics.k8s.io/v1beta1"]
    assert found.calls == len(apiserver.seen) == kube.counts.discovery + kube.counts.retries


SECRETS = ApiResource("", "v1", "secrets", "Secret", True, frozenset({"list"}))


def paged(expire_continue: int) -> Callable[[Seen], Answer]:
    """Two pages; the first ``expire_continue`` requests for page 2 answer 410 Gone."""
    left = [expire_continue]

    def answer(seen: Seen) -> Answer:
        if "continue" not in seen.query:
            return 200, {}, {"metadata": {"continue": "tok"}, "items": [{"metadata": {"name": "b", "namespace": "x"}}]}
        if left[0] > 0:
            left[0] -= 1
            return 410, {}, status(410, "Expired", "The provided continue parameter is too old")
        return 200, {}, {"metadata": {"resourceVersion": "9"}, "items": [{"metadata": {"name": "a", "namespace": "x"}}]}

    return answer


def test_an_expired_continue_token_relists_from_the_start(apiserver: FakeApiServer, make_kube: MakeKube) -> None:
    apiserver.route("GET", "/api/v1/secrets", paged(expire_continue=1))
    result = list_resource(make_kube(), SECRETS, page_size=1)
    assert [o["metadata"]["name"] for o in result.items] == ["a", "b"]
    assert all(o["kind"] == "Secret" and o["apiVersion"] == "v1" for o in result.items)
    assert (result.relists, result.pages, result.calls) == (1, 2, 4)


def test_relists_are_bounded(apiserver: FakeApiServer, make_kube: MakeKube) -> None:
    apiserver.route("GET", "/api/v1/secrets", paged(expire_continue=100))
    with pytest.raises(TargetError, match=rf"list secrets: the continue token expired {MAX_RELISTS + 1} times"):
        list_resource(make_kube(), SECRETS, page_size=1)
    assert len(apiserver.seen) == 2 * (MAX_RELISTS + 1)


def test_the_live_targets_managed_list_uses_the_bounded_relist(apiserver: FakeApiServer, make_kube: MakeKube) -> None:
    apiserver.on("GET", "/readyz", (200, {}, b"ok"))
    apiserver.on("GET", "/api", (200, {}, {"versions": ["v1"]}))
    apiserver.on("GET", "/apis", (200, {}, {"groups": []}))
    apiserver.on("GET", "/api/v1", (200, {}, resource_list("v1", ("secrets", "Secret", True),
                                                           ("events", "Event", True))))
    apiserver.route("GET", "/api/v1/secrets", paged(expire_continue=100))
    target = LiveTarget(ClusterRef("", "k3s-vm", "target"), kube=make_kube())
    with pytest.raises(TargetError, match="the continue token expired"):
        target.list_objects()
    assert not apiserver.requests("GET", "/api/v1/events")  # never listed


def test_the_live_target_lists_only_what_k3smig_manages(apiserver: FakeApiServer, make_kube: MakeKube) -> None:
    apiserver.on("GET", "/readyz", (200, {}, b"ok"))
    apiserver.on("GET", "/api", (200, {}, {"versions": ["v1"]}))
    apiserver.on("GET", "/apis", (200, {}, {"groups": []}))
    apiserver.on("GET", "/api/v1", (200, {}, resource_list("v1", ("secrets", "Secret", True),
                                                           ("configmaps", "ConfigMap", True))))
    mine = {"metadata": {"name": "db", "namespace": "shop", "managedFields": [{"manager": "k3smig"}]}}
    theirs = {"metadata": {"name": "tls", "namespace": "shop", "managedFields": [{"manager": "helm"}]}}
    apiserver.on("GET", "/api/v1/secrets", (200, {}, {"metadata": {}, "items": [theirs, mine]}))
    apiserver.on("GET", "/api/v1/configmaps", (404, {}, status(404, "NotFound")))  # vanished since discovery
    objects = LiveTarget(ClusterRef("", "k3s-vm", "target"), kube=make_kube()).list_objects()
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [("Secret", "db")]
