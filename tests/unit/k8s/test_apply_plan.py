"""The write side's pure parts: what counts as a difference, what is sent, who manages an object, resource paths.

The plan, write and wait loops of the live target run against the sandbox's real target in
``tests/integration/test_apply_loops.py``.
"""

from __future__ import annotations

from k3smig_lib.k8s.apply import apply_body, differing_fields, managed_by
from k3smig_lib.k8s.discovery import ApiResource

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
