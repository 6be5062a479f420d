"""Pod spec rules (K7-K11, K16, K25, KEEP6) on bare Pods and every kind of workload template."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.core.clean import CleanOptions, CleanReport, clean_objects
from k3smig_lib.core.objects import pod_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))
from cleanfixtures import load  # noqa: E402

EXPORT = (
    "clean-shop-app.yaml",
    "clean-stateful.yaml",
    "clean-batch.yaml",
    "clean-cluster-plumbing.yaml",
    "clean-traefik.yaml",
)


@pytest.fixture(scope="module")
def report() -> CleanReport:
    return clean_objects(load(*EXPORT))


def cleaned_pod_spec(report: CleanReport, object_id: str) -> dict[str, Any]:
    cleaned = report.get(object_id).cleaned
    assert cleaned is not None
    spec = pod_spec(cleaned)
    assert spec is not None
    return spec


def test_bare_pod_loses_node_name_priority_token_volume_and_alias(report: CleanReport) -> None:
    spec = cleaned_pod_spec(report, "Pod/monitoring/debug-shell")
    for gone in ("nodeName", "priority", "serviceAccount", "nodeSelector", "volumes"):
        assert gone not in spec
    assert "volumeMounts" not in spec["containers"][0]
    assert spec["serviceAccountName"] == "default" and spec["preemptionPolicy"] == "PreemptLowerPriority"


def test_template_node_selector_keeps_os_and_drops_source_node_keys(report: CleanReport) -> None:
    spec = cleaned_pod_spec(report, "Deployment/shop/web")
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert "affinity" not in spec  # its only required term pinned a source zone


def test_custom_node_label_is_kept_with_a_warning_to_label_the_vm(report: CleanReport) -> None:
    docs = report.get("Deployment/blog/docs")
    assert cleaned_pod_spec(report, "Deployment/blog/docs")["nodeSelector"] == {"workload-tier": "frontend"}
    (warning,) = [c for c in docs.changes if c.rule_id == "K9"]
    assert warning.action == "warn" and warning.after == "workload-tier=frontend"


def test_node_affinity_keeps_portable_expressions_and_preferences() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                            {
                                "key": "kubernetes.io/hostname",
                                "operator": "In",
                                "values": ["scw-prod-pool-apps-8f2c1"],
                            },
                        ]
                    }
                ]
            },
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {
                        "matchExpressions": [
                            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["fr-par-1"]}
                        ]
                    },
                }
            ],
        }
    }
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "a"},
        "spec": {
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {"affinity": affinity, "containers": [{"name": "api", "image": "api:1"}]},
            },
        },
    }
    spec = cleaned_pod_spec(clean_objects([deploy]), "Deployment/a/api")
    required = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}
    ]
    assert "preferredDuringSchedulingIgnoredDuringExecution" in spec["affinity"]["nodeAffinity"]


def test_node_selector_value_naming_a_source_node_is_removed_whatever_its_key() -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-7"}}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "a"},
        "spec": {
            "nodeSelector": {"example.com/host": "worker-7"},
            "containers": [{"name": "c", "image": "c"}],
        },
    }
    assert "nodeSelector" not in cleaned_pod_spec(clean_objects([node, pod]), "Pod/a/p")
    opts = CleanOptions(source_node_names=frozenset({"worker-7"}))
    assert "nodeSelector" not in cleaned_pod_spec(clean_objects([pod], opts), "Pod/a/p")


def test_template_noise_is_removed_from_deployments_and_cron_job_templates(report: CleanReport) -> None:
    web = report.get("Deployment/shop/web").cleaned
    assert web is not None and web["spec"]["template"]["metadata"] == {"labels": {"app": "web"}}
    cron = report.get("CronJob/shop/nightly-report").cleaned
    assert cron is not None
    assert "metadata" not in cron["spec"]["jobTemplate"]
    assert "metadata" not in cron["spec"]["jobTemplate"]["spec"]["template"]
    assert {c.path for c in report.get("CronJob/shop/nightly-report").changes if c.rule_id == "K25"} == {
        "spec.jobTemplate.metadata.creationTimestamp",
        "spec.jobTemplate.spec.template.metadata.creationTimestamp",
        "spec.jobTemplate.spec.template.metadata.annotations['kubectl.kubernetes.io/restartedAt']",
    }


def test_pull_secrets_are_left_alone_unless_a_target_pull_secret_is_named(report: CleanReport) -> None:
    assert cleaned_pod_spec(report, "Deployment/shop/web")["imagePullSecrets"] == [{"name": "regcred"}]
    with_secret = clean_objects(load(*EXPORT), CleanOptions(pull_secret_name="scw-registry"))
    assert cleaned_pod_spec(with_secret, "Deployment/shop/web")["imagePullSecrets"] == [
        {"name": "scw-registry"}
    ]
    assert cleaned_pod_spec(with_secret, "CronJob/shop/nightly-report")["imagePullSecrets"] == [
        {"name": "scw-registry"}
    ]
    sa = with_secret.get("ServiceAccount/shop/web")
    assert [(c.before, c.after) for c in sa.changes if c.rule_id == "K16"] == [
        ([{"name": "regcred"}], [{"name": "scw-registry"}])
    ]
    assert "imagePullSecrets" not in cleaned_pod_spec(with_secret, "Deployment/monitoring/grafana")


def test_ownership_fields_are_kept_and_cited(report: CleanReport) -> None:
    grafana = report.get("Deployment/monitoring/grafana")
    assert cleaned_pod_spec(report, "Deployment/monitoring/grafana")["securityContext"] == {
        "fsGroup": 472,
        "runAsGroup": 472,
        "runAsUser": 472,
    }
    (keep,) = [c for c in grafana.changes if c.rule_id == "KEEP6"]
    assert keep.after == ["fsGroup=472", "securityContext"]
    web = next(c for c in report.get("Deployment/shop/web").changes if c.rule_id == "KEEP6")
    assert "priorityClassName=app-critical" in web.after
