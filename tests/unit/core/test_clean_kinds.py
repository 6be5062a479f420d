"""Per-kind rules (K12-K15, K17-K24): Jobs, CronJobs, ServiceAccounts, storage, RBAC, Namespaces."""

from __future__ import annotations

import sys
from pathlib import Path

from k3smig_lib.core.clean import CleanReport, clean_objects

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))
from cleanfixtures import cleaned  # noqa: E402


def test_standalone_job_loses_its_uid_bound_selector_and_is_suspended(clean_report: CleanReport) -> None:
    job = cleaned(clean_report, "Job/shop/db-migrate")
    assert "selector" not in job["spec"] and job["spec"]["suspend"] is True
    assert job["spec"]["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/job-name": "db-migrate",
        "job-name": "db-migrate",
    }


def test_job_annotated_idempotent_is_not_suspended(clean_report: CleanReport) -> None:
    job = clean_report.get("Job/shop/search-reindex-8kq2m")
    assert "suspend" not in cleaned(clean_report, "Job/shop/search-reindex-8kq2m")["spec"]
    assert "K13" not in job.rule_ids and "K12" in job.rule_ids


def test_job_with_a_manual_selector_keeps_it() -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "m", "namespace": "a"},
        "spec": {
            "manualSelector": True,
            "selector": {"matchLabels": {"run": "m"}},
            "template": {
                "metadata": {"labels": {"run": "m"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m"}]},
            },
        },
    }
    out = clean_objects([job]).objects[0].cleaned
    assert out is not None and out["spec"]["selector"] == {"matchLabels": {"run": "m"}}


def test_cron_job_is_suspended_until_cutover(clean_report: CleanReport) -> None:
    item = clean_report.get("CronJob/shop/nightly-report")
    assert cleaned(clean_report, "CronJob/shop/nightly-report")["spec"]["suspend"] is True
    assert [(c.before, c.after) for c in item.changes if c.rule_id == "K14"] == [(False, True)]


def test_service_account_drops_token_references_but_keeps_other_secrets(clean_report: CleanReport) -> None:
    assert "secrets" not in cleaned(clean_report, "ServiceAccount/shop/web")
    builder = clean_report.get("ServiceAccount/shop/builder")
    assert cleaned(clean_report, "ServiceAccount/shop/builder")["secrets"] == [{"name": "builder-ci-token"}]
    assert [c.before for c in builder.changes if c.rule_id == "K15"] == [["builder-dockercfg-7lq4k"]]


def test_dynamic_pvc_is_unbound_from_its_source_volume(clean_report: CleanReport) -> None:
    pvc = cleaned(clean_report, "PersistentVolumeClaim/shop/web-uploads")
    assert "volumeName" not in pvc["spec"] and "annotations" not in pvc["metadata"]
    grafana = cleaned(clean_report, "PersistentVolumeClaim/monitoring/grafana")
    assert "dataSource" not in grafana["spec"] and "dataSourceRef" not in grafana["spec"]


def test_pvc_bound_to_a_kept_static_pv_keeps_its_binding(clean_report: CleanReport) -> None:
    backups = cleaned(clean_report, "PersistentVolumeClaim/monitoring/backups")
    assert backups["spec"]["volumeName"] == "backups-nfs" and backups["spec"]["storageClassName"] == ""
    pv = cleaned(clean_report, "PersistentVolume/_cluster/backups-nfs")
    assert pv["spec"]["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "name": "backups",
        "namespace": "monitoring",
    }
    assert "annotations" not in pv["metadata"] and pv["spec"]["nfs"]["server"] == "10.20.0.5"


def test_stateful_set_claim_templates_lose_status_and_timestamps(clean_report: CleanReport) -> None:
    template = cleaned(clean_report, "StatefulSet/monitoring/prometheus")["spec"]["volumeClaimTemplates"][0]
    assert "status" not in template and template["metadata"] == {"name": "data"}


def test_role_binding_drops_only_the_same_namespace_service_account_namespace(clean_report: CleanReport) -> None:
    subjects = cleaned(clean_report, "RoleBinding/shop/web-config-reader")["subjects"]
    assert subjects == [
        {"kind": "ServiceAccount", "name": "web"},
        {"kind": "ServiceAccount", "name": "auditor", "namespace": "audit"},
    ]


def test_namespace_loses_its_finalizers_and_node_pool_pinning(clean_report: CleanReport) -> None:
    shop = cleaned(clean_report, "Namespace/_cluster/shop")
    assert "spec" not in shop and "annotations" not in shop["metadata"]


def test_legacy_ingress_class_annotation_becomes_ingress_class_name(clean_report: CleanReport) -> None:
    web = cleaned(clean_report, "Ingress/shop/web")
    assert web["spec"]["ingressClassName"] == "nginx"
    assert "kubernetes.io/ingress.class" not in web["metadata"]["annotations"]
    assert web["spec"]["tls"] == [{"hosts": ["shop.example.org"], "secretName": "web-tls"}]
