"""The cleaning pipeline end to end: every rule of docs/cleaning-rules.md fires on realistic exports.

The fixtures under tests/fixtures/k8s/clean-*.yaml are one export of a small production cluster
(`kubectl get -o yaml` objects with uids, managedFields, status, owned objects, token Secrets…).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from k3smig_lib.core.clean import RULES, Change, CleanedObject, CleanOptions, CleanReport, clean_objects
from k3smig_lib.core.lint import Capacity, lint

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))
from cleanfixtures import load_all  # noqa: E402

FULL = CleanOptions(
    registry_rewrites={
        "docker.io/": "rg.fr-par.scw.cloud/mirror/",
        "ghcr.io/acme/": "rg.fr-par.scw.cloud/acme/",
    },
    pull_secret_name="scw-registry",
    keep_helm_releases=True,
    expose_node_ports=True,
    external_dns_target="212.47.230.10",
)


def export() -> list[dict[str, Any]]:
    return load_all(openshift=True)


@pytest.fixture(scope="module")
def reports() -> dict[str, CleanReport]:
    return {"default": clean_objects(export()), "full": clean_objects(export(), FULL)}


def changes(item: CleanedObject, rule_id: str) -> list[Change]:
    return [c for c in item.changes if c.rule_id == rule_id]


# rule → (options, object id, action, fragment of the changed path)
EXPECTED: dict[str, tuple[str, str, str, str]] = {
    "W1": ("default", "Pod/shop/web-7d9c5b8f4-x2lqp", "drop", ""),
    "W2": ("default", "Job/shop/seed-catalogue", "drop", ""),
    "W3": ("default", "Pod/edge/edge-agent-scw-prod-pool-apps-8f2c1", "drop", ""),
    "W4": ("default", "Endpoints/shop/web", "drop", ""),
    "W5": ("default", "Secret/shop/web-token-x7k2p", "drop", ""),
    "W6": ("default", "ServiceAccount/shop/default", "drop", ""),
    "W7": ("default", "PersistentVolume/_cluster/pvc-eeeeeeee-ffff-4000-8111-222222222222", "drop", ""),
    "W8": ("default", "Node/_cluster/scw-prod-pool-apps-8f2c1", "drop", ""),
    "W9": ("default", "Ingress/blog/legacy-blog", "drop", ""),
    "W10": ("default", "Subscription/operators/grafana-operator", "drop", ""),
    "W11": ("default", "StorageClass/_cluster/scw-bssd", "drop", ""),
    "W12": ("default", "ServiceAccount/crane-complex-demo/builder", "drop", ""),
    "W13": ("default", "CertificateRequest/shop/web-tls-2", "drop", ""),
    "M1": ("default", "Deployment/shop/web", "remove", "metadata.uid"),
    "M2": ("default", "Deployment/shop/web", "remove", "metadata.resourceVersion"),
    "M3": ("default", "ConfigMap/shop/web-config", "remove", "metadata.selfLink"),
    "M4": ("default", "Deployment/shop/web", "remove", "metadata.creationTimestamp"),
    "M5": ("default", "Deployment/shop/web", "remove", "metadata.generation"),
    "M6": ("default", "Deployment/shop/web", "remove", "metadata.managedFields"),
    "M7": ("default", "ConfigMap/shop/feature-flags-legacy", "remove", "metadata.deletionTimestamp"),
    "M8": ("default", "Secret/shop/web-tls", "remove", "metadata.ownerReferences"),
    "M9": ("default", "Job/shop/search-reindex-8kq2m", "remove", "metadata.generateName"),
    "M10": ("default", "Deployment/shop/web", "remove", "last-applied-configuration"),
    "M11": ("default", "Deployment/shop/web", "remove", "deployment.kubernetes.io/revision"),
    "M12": (
        "default",
        "Job/shop/db-migrate",
        "remove",
        "metadata.labels['batch.kubernetes.io/controller-uid']",
    ),
    "M13": ("default", "PersistentVolumeClaim/shop/web-uploads", "remove", "metadata.finalizers"),
    "M14": ("default", "Namespace/_cluster/shop", "remove", "field.cattle.io/projectId"),
    "M15": ("default", "StatefulSet/monitoring/prometheus", "rewrite", "spec.replicas"),
    "S1": ("default", "Deployment/shop/web", "remove", "status"),
    "K1": ("default", "Service/shop/web", "remove", "spec.clusterIP"),
    "K2": ("default", "Service/shop/web", "remove", "spec.clusterIPs"),
    "K3": ("default", "Service/monitoring/prometheus-nodeport", "remove", "spec.ports[1].nodePort"),
    "K4": ("default", "Service/shop/web-public", "remove", "spec.healthCheckNodePort"),
    "K5": ("default", "Service/monitoring/postgres-public", "remove", "spec.externalIPs"),
    "K6": ("default", "Service/shop/web-public", "rewrite", "spec.type"),
    "K7": ("default", "Pod/monitoring/debug-shell", "remove", "spec.nodeName"),
    "K8": ("default", "Pod/monitoring/debug-shell", "remove", "spec.priority"),
    "K9": ("default", "Deployment/shop/web", "remove", "nodeSelector['kubernetes.io/hostname']"),
    "K10": ("default", "Pod/monitoring/debug-shell", "remove", "spec.volumes"),
    "K11": ("default", "Deployment/shop/web", "remove", "spec.template.spec.serviceAccount"),
    "K12": ("default", "Job/shop/db-migrate", "remove", "spec.selector"),
    "K13": ("default", "Job/shop/db-migrate", "rewrite", "spec.suspend"),
    "K14": ("default", "CronJob/shop/nightly-report", "rewrite", "spec.suspend"),
    "K15": ("default", "ServiceAccount/shop/web", "remove", "secrets"),
    "K16": ("full", "ServiceAccount/shop/web", "rewrite", "imagePullSecrets"),
    "K17": ("default", "PersistentVolumeClaim/shop/web-uploads", "remove", "spec.volumeName"),
    "K18": (
        "default",
        "PersistentVolumeClaim/shop/web-uploads",
        "remove",
        "volume.kubernetes.io/selected-node",
    ),
    "K19": ("default", "PersistentVolumeClaim/monitoring/grafana", "remove", "spec.dataSource"),
    "K20": ("default", "PersistentVolume/_cluster/backups-nfs", "remove", "spec.claimRef.uid"),
    "K21": ("default", "StatefulSet/monitoring/prometheus", "remove", "spec.volumeClaimTemplates[0].status"),
    "K22": ("default", "RoleBinding/shop/web-config-reader", "remove", "subjects[0].namespace"),
    "K23": ("default", "Namespace/_cluster/shop", "remove", "spec.finalizers"),
    "K24": ("default", "Ingress/shop/web", "remove", "kubernetes.io/ingress.class"),
    "K25": ("default", "Deployment/shop/web", "remove", "spec.template.metadata.creationTimestamp"),
    "K26": ("default", "ServiceAccount/crane-complex-demo/app-sa", "remove", "imagePullSecrets"),
    "K27": ("default", "Pod/monitoring/debug-shell", "remove", "spec.dnsPolicy"),
    "T1": ("default", "PersistentVolumeClaim/shop/web-uploads", "rewrite", "spec.storageClassName"),
    "T2": ("default", "PersistentVolumeClaim/shop/web-uploads", "warn", "spec.accessModes"),
    "T2b": ("default", "PersistentVolume/_cluster/backups-nfs", "rewrite", "persistentVolumeReclaimPolicy"),
    "T4": ("default", "Ingress/blog/docs", "rewrite", "spec.ingressClassName"),
    "T5": ("full", "Deployment/monitoring/grafana", "rewrite", "containers[grafana].image"),
    "T6": ("full", "Ingress/shop/web", "rewrite", "external-dns.alpha.kubernetes.io/target"),
    "KEEP1": ("default", "Service/monitoring/prometheus-headless", "keep", "spec.clusterIP"),
    "KEEP2": ("full", "Service/monitoring/prometheus-nodeport", "keep", "spec.ports[0].nodePort"),
    "KEEP3": ("default", "Endpoints/monitoring/external-db", "keep", ""),
    "KEEP4": ("default", "Secret/shop/web-tls", "keep", ""),
    "KEEP5": ("default", "Secret/vaultwarden/sh.helm.release.v1.vaultwarden.v3", "drop", ""),
    "KEEP6": ("default", "Deployment/monitoring/grafana", "keep", "podSpec"),
}
#: Rules decided by the lint rather than per object (T3 needs the VM size).
LINT_RULES = {"T3"}


@pytest.mark.parametrize("rule_id", sorted(EXPECTED))
def test_rule_fires_on_its_realistic_fixture(rule_id: str, reports: dict[str, CleanReport]) -> None:
    variant, object_id, action, path = EXPECTED[rule_id]
    fired = changes(reports[variant].get(object_id), rule_id)
    assert any(c.action == action and path in c.path for c in fired), fired


def test_every_rule_in_the_catalogue_has_a_test_row() -> None:
    assert set(RULES) == set(EXPECTED) | LINT_RULES


def test_every_rule_in_the_catalogue_is_exercised_by_the_fixtures(reports: dict[str, CleanReport]) -> None:
    fired = {rule for report in reports.values() for rule in report.rule_counts()}
    fired |= {risk.rule_id for risk in lint(export(), Capacity(disk_gb=60), FULL)}
    assert set(RULES) - fired == set()


def test_catalogue_rows_carry_title_reason_and_peer() -> None:
    assert all(rule.title and rule.reason and rule.who for rule in RULES.values())
    assert RULES["K6"].family == "K" and RULES["KEEP4"].family == "KEEP" and RULES["T2b"].family == "T"


def test_whiteouts_are_one_drop_change_with_a_reason(reports: dict[str, CleanReport]) -> None:
    for item in reports["default"].dropped():
        assert item.cleaned is None and len(item.changes) == 1
        assert item.changes[0].action == "drop" and item.changes[0].note, item.ref


def test_cleaning_never_modifies_the_input_and_keeps_the_original_hash() -> None:
    objects = export()
    pristine = copy.deepcopy(objects)
    report = clean_objects(objects)
    assert objects == pristine
    web = report.get("Deployment/shop/web")
    assert web.original == next(
        o for o in pristine if o["metadata"].get("uid") == web.original["metadata"]["uid"]
    )
    assert len(web.original_sha256) == 64 and web.cleaned_sha256 != web.original_sha256


def test_cleaning_the_cleaned_export_again_changes_nothing(reports: dict[str, CleanReport]) -> None:
    first = reports["default"]
    kept = [item.cleaned for item in first.kept() if item.cleaned is not None]
    second = clean_objects(kept)
    assert [item.cleaned for item in second.objects] == kept
    assert not [c for item in second.objects for c in item.changes if c.action in ("drop", "remove")]


def _secret_values() -> set[str]:
    values: set[str] = set()
    for obj in export():
        if obj["kind"] != "Secret":
            continue
        for raw in (obj.get("data") or {}).values():
            values.add(raw)
            try:
                values.add(base64.b64decode(raw, validate=True).decode(errors="ignore"))
            except binascii.Error:
                pass
    return {v for v in values if len(v) >= 8}


@pytest.mark.parametrize("variant", ["default", "full"])
def test_no_secret_value_appears_in_any_change(variant: str, reports: dict[str, CleanReport]) -> None:
    secrets = _secret_values()
    assert secrets, "the fixtures must contain Secret data for this test to mean anything"
    text = json.dumps([[c.__dict__ for c in item.changes] for item in reports[variant].objects], default=str)
    facts = json.dumps(reports[variant].facts(), default=str)
    leaked = [s for s in secrets if s in text or s in facts]
    assert leaked == []


def test_last_applied_of_a_secret_is_recorded_as_a_size(reports: dict[str, CleanReport]) -> None:
    (change,) = changes(reports["default"].get("Secret/shop/web-env"), "M10")
    assert change.before.startswith("<") and change.before.endswith(" bytes>")


def test_report_counts_warnings_and_partitions(reports: dict[str, CleanReport]) -> None:
    report = reports["default"]
    assert len(report.kept()) + len(report.dropped()) == len(report.objects) == len(export())
    assert report.rule_counts()["W8"] >= 10
    assert {c.rule_id for _, c in report.warnings()} >= {"T2", "K6", "M13", "K9", "T4", "T6"}
    with pytest.raises(KeyError, match="Deployment/shop/nope"):
        report.get("Deployment/shop/nope")


VALIDATED_KINDS = {
    "Deployment",
    "StatefulSet",
    "Service",
    "PersistentVolumeClaim",
    "PersistentVolume",
    "Ingress",
    "Secret",
    "ConfigMap",
    "Job",
    "CronJob",
    "Pod",
    "ServiceAccount",
    "Namespace",
    "RoleBinding",
    "Role",
    "Endpoints",
    "EndpointSlice",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "PriorityClass",
    "MutatingWebhookConfiguration",
    "CustomResourceDefinition",
}


@pytest.mark.parametrize("variant", ["default", "full"])
def test_cleaned_objects_are_valid_kubernetes_1_33(variant: str, reports: dict[str, CleanReport]) -> None:
    checked = set()
    for item in reports[variant].kept():
        if item.ref.kind in VALIDATED_KINDS and item.cleaned is not None:
            kubernetes_validate.validate(item.cleaned, "1.33.0", strict=True)
            checked.add(item.ref.kind)
    assert checked >= {"Deployment", "Service", "PersistentVolumeClaim", "Ingress", "Secret", "StatefulSet"}


def test_the_schema_check_would_catch_a_leftover_field() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"clusterIp": "1.2.3.4"},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, "1.33.0", strict=True)


def test_facts_follow_the_pvc_to_pv_to_storage_class_chain(reports: dict[str, CleanReport]) -> None:
    facts = reports["default"].facts()["PersistentVolumeClaim/shop/web-uploads"]
    assert facts["pv_name"] == "pvc-eeeeeeee-ffff-4000-8111-222222222222"
    assert (facts["storage_class"], facts["provisioner"]) == ("scw-bssd", "csi.scaleway.com")
    assert facts["requested_bytes"] == facts["capacity_bytes"] == 20 * 2**30
    assert facts["selected_node"] == "scw-prod-pool-apps-8f2c1" and facts["access_modes"] == ["ReadWriteMany"]


def test_facts_keep_what_stripping_removes(reports: dict[str, CleanReport]) -> None:
    facts = reports["default"].facts()
    assert facts["Service/monitoring/prometheus-nodeport"]["explicit_node_ports"] == [30090]
    assert facts["Deployment/monitoring/grafana"]["pod_security"] == {
        "fsGroup": 472,
        "runAsGroup": 472,
        "runAsUser": 472,
    }
    assert facts["Deployment/monitoring/grafana"]["claims"] == ["grafana"]
    assert facts["Deployment/shop/web"]["requests"] == {"cpu": 0.25, "memory_bytes": 256 * 2**20}
    assert facts["Deployment/vaultwarden/vaultwarden"]["helm_release"] == {
        "name": "vaultwarden",
        "namespace": "vaultwarden",
    }
    assert facts["Secret/shop/web-tls"]["cert_manager_certificate"] == "web-tls"
    assert facts["Secret/shop/web-env"]["data_keys"] == ["database-url", "session-key"]
    assert (
        facts["StatefulSet/monitoring/prometheus"]["volume_claim_templates"][0]["requested_bytes"]
        == 50 * 2**30
    )


def test_custom_resources_get_the_universal_rules_only(reports: dict[str, CleanReport]) -> None:
    monitor = reports["full"].get("ServiceMonitor/shop/web")
    assert {rule[0] for rule in monitor.rule_ids} <= {"M", "S"}
    assert monitor.cleaned is not None
    assert monitor.cleaned["spec"]["template"]["spec"]["nodeName"] == "must-not-be-touched-on-a-cr"


def test_a_custom_kind_named_like_a_builtin_is_not_touched_by_per_kind_rules() -> None:
    volcano_job = {
        "apiVersion": "batch.volcano.sh/v1alpha1",
        "kind": "Job",
        "metadata": {"name": "train", "namespace": "ml", "uid": "5d1e"},
        "spec": {"selector": {"app": "train"}, "template": {"spec": {"nodeName": "gpu-1", "containers": []}}},
    }
    (item,) = clean_objects([volcano_job]).objects
    assert item.rule_ids == ["M1"]
    assert item.cleaned is not None and item.cleaned["spec"] == volcano_job["spec"]
