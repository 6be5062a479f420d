"""K27: API-server defaults go only when nobody but the server set them (managedFields, last apply, or neither)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from k3smig_lib.core.clean import clean_objects
from k3smig_lib.core.clean.defaults import pull_policy, rows_for
from k3smig_lib.core.clean.provenance import LAST_APPLIED, Provenance


def pod(meta: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    container = {"name": "app", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                 "ports": [{"containerPort": 8080, "protocol": "TCP"}], "resources": {},
                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", **(meta or {})},
            "spec": {"containers": [container], "dnsPolicy": "ClusterFirst", "restartPolicy": "Always",
                     "schedulerName": "default-scheduler", "terminationGracePeriodSeconds": 30, **spec}}


def k27(obj: dict[str, Any]) -> dict[str, str]:
    item = clean_objects([obj]).objects[0]
    return {c.path: c.note for c in item.changes if c.rule_id == "K27"}


def applied_by(fields: dict[str, Any], operation: str = "Apply") -> dict[str, Any]:
    return {"managedFields": [{"manager": "kubectl", "operation": operation, "apiVersion": "v1",
                               "fieldsType": "FieldsV1", "fieldsV1": fields}]}


SSA_FIELDS = {"f:spec": {"f:containers": {'k:{"name":"app"}': {
    ".": {}, "f:name": {}, "f:image": {},
    "f:ports": {'k:{"containerPort":8080,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}}}}


def test_server_side_apply_leaves_defaults_to_nobody_so_they_go() -> None:
    dropped = k27(pod(applied_by(SSA_FIELDS)))
    assert set(dropped) == {
        "spec.containers[0].imagePullPolicy", "spec.containers[0].resources", "spec.containers[0].ports[0].protocol",
        "spec.containers[0].terminationMessagePath", "spec.containers[0].terminationMessagePolicy",
        "spec.dnsPolicy", "spec.restartPolicy", "spec.schedulerName", "spec.terminationGracePeriodSeconds"}
    assert all("managedFields" in note for note in dropped.values())


def test_a_default_a_manager_owns_stays() -> None:
    fields = copy.deepcopy(SSA_FIELDS)
    fields["f:spec"]["f:dnsPolicy"] = {}
    fields["f:spec"]["f:containers"]['k:{"name":"app"}']["f:imagePullPolicy"] = {}
    dropped = k27(pod(applied_by(fields)))
    assert "spec.dnsPolicy" not in dropped and "spec.containers[0].imagePullPolicy" not in dropped
    assert "spec.restartPolicy" in dropped


def test_kubectl_create_owns_every_default_it_sent_through_so_nothing_goes() -> None:
    every = {"f:spec": {"f:containers": {'k:{"name":"app"}': {
        "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {}, "f:terminationMessagePath": {},
        "f:terminationMessagePolicy": {}, "f:ports": {'k:{"containerPort":8080,"protocol":"TCP"}': {
            "f:containerPort": {}, "f:protocol": {}}}}},
        "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:terminationGracePeriodSeconds": {}}}
    assert k27(pod(applied_by(every, "Update"))) == {}


def test_an_atomic_value_owned_whole_keeps_what_is_inside() -> None:
    fields = {"f:spec": {"f:containers": {}}}  # the whole list, as an atomic value
    dropped = k27(pod(applied_by(fields)))
    assert not [p for p in dropped if p.startswith("spec.containers")] and "spec.dnsPolicy" in dropped


def test_managers_silent_on_a_subtree_leave_it_to_the_last_apply() -> None:
    applied = {"spec": {"containers": [{"name": "app", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent"}],
                        "dnsPolicy": "ClusterFirst"}}
    meta = {**applied_by({"f:metadata": {"f:labels": {}}}), "annotations": {LAST_APPLIED: json.dumps(applied)}}
    dropped = k27(pod(meta))
    assert "spec.dnsPolicy" not in dropped and "spec.containers[0].imagePullPolicy" not in dropped
    assert dropped["spec.restartPolicy"].endswith("not in last-applied-configuration")


def test_the_last_apply_keeps_what_the_user_wrote_when_there_are_no_managed_fields() -> None:
    applied = {"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}],
                        "terminationGracePeriodSeconds": 30}}
    dropped = k27(pod({"annotations": {LAST_APPLIED: json.dumps(applied)}}))
    assert "spec.containers[0].ports[0].protocol" not in dropped and "spec.terminationGracePeriodSeconds" not in dropped
    assert "spec.containers[0].resources" in dropped


def test_an_unreadable_last_apply_counts_as_setting_everything() -> None:
    assert k27(pod({"annotations": {LAST_APPLIED: "{not json"}})) == {}


def test_values_that_differ_from_the_default_stay_whoever_set_them() -> None:
    obj = pod(dnsPolicy="None", terminationGracePeriodSeconds=5, enableServiceLinks=1)
    obj["spec"]["containers"][0]["imagePullPolicy"] = "Always"  # the default of a tagged image is IfNotPresent
    dropped = k27(obj)
    assert not {"spec.dnsPolicy", "spec.terminationGracePeriodSeconds", "spec.enableServiceLinks",
                "spec.containers[0].imagePullPolicy"} & set(dropped)


def test_a_manifest_no_server_returned_is_authored_throughout() -> None:
    obj = pod()
    del obj["metadata"]["uid"]
    assert Provenance.of(obj).authored and k27(obj) == {}


def test_custom_resources_and_unknown_versions_are_left_alone() -> None:
    cr = {"apiVersion": "example.com/v1", "kind": "Pod", "metadata": {"name": "x", "uid": "u"},
          "spec": {"dnsPolicy": "ClusterFirst"}}
    assert k27(cr) == {} and rows_for("apps/v1beta1", "Deployment") == []


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("registry:5000/team/app", "Always"),
    ("registry:5000/team/app:2", "IfNotPresent"), ("nginx@sha256:" + "0" * 64, "IfNotPresent")])
def test_pull_policy_default_follows_the_tag(image: str, policy: str) -> None:
    assert pull_policy({"image": image}) == policy


def test_service_target_port_equal_to_port_is_a_default_a_named_one_is_not() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop", "uid": "u"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80, "protocol": "UDP"},
                                                           {"port": 81, "targetPort": "http"}]}}
    assert set(k27(svc)) == {"spec.ports[0].targetPort"}


def test_workload_templates_use_the_pod_defaults() -> None:
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "s", "uid": "u"},
              "spec": {"revisionHistoryLimit": 10, "progressDeadlineSeconds": 600, "replicas": 2,
                       "template": {"spec": pod()["spec"]}}}
    dropped = k27(deploy)
    assert {"spec.revisionHistoryLimit", "spec.progressDeadlineSeconds", "spec.template.spec.dnsPolicy"} <= set(dropped)
    assert "spec.replicas" not in dropped
