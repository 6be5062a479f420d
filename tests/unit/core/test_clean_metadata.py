"""Universal metadata and status (M1-M14, S1) on every kept object, CRs included."""

from __future__ import annotations

from k3smig_lib.core.clean import CleanedObject, CleanReport, clean_objects

SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "selfLink",
    "creationTimestamp",
    "generation",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
)


def rules_at(item: CleanedObject, path: str) -> list[str]:
    return [c.rule_id for c in item.changes if c.path == path]


def test_no_kept_object_carries_server_fields_or_status(clean_report: CleanReport) -> None:
    for item in clean_report.kept():
        assert item.cleaned is not None
        assert not set(SERVER_FIELDS) & set(item.cleaned["metadata"]), item.ref
        assert "status" not in item.cleaned, item.ref


def test_each_server_field_is_removed_by_its_own_rule(clean_report: CleanReport) -> None:
    web = clean_report.get("Deployment/shop/web")
    assert rules_at(web, "metadata.uid") == ["M1"]
    assert rules_at(web, "metadata.resourceVersion") == ["M2"]
    assert rules_at(clean_report.get("ConfigMap/shop/web-config"), "metadata.selfLink") == ["M3"]
    assert rules_at(web, "metadata.creationTimestamp") == ["M4"]
    assert rules_at(web, "metadata.generation") == ["M5"]
    assert rules_at(web, "metadata.managedFields") == ["M6"]
    assert rules_at(web, "status") == ["S1"]


def test_an_object_being_deleted_on_the_source_comes_back_alive(clean_report: CleanReport) -> None:
    flags = clean_report.get("ConfigMap/shop/feature-flags-legacy")
    assert rules_at(flags, "metadata.deletionTimestamp") == ["M7"]
    assert rules_at(flags, "metadata.deletionGracePeriodSeconds") == ["M7"]
    assert flags.cleaned is not None and flags.cleaned["data"] == {"checkout-v2": "false"}


def test_generate_name_is_removed_only_when_a_name_is_set(clean_report: CleanReport) -> None:
    job = clean_report.get("Job/shop/search-reindex-8kq2m")
    assert job.cleaned is not None and job.cleaned["metadata"]["name"] == "search-reindex-8kq2m"
    assert rules_at(job, "metadata.generateName") == ["M9"]
    unnamed = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"generateName": "backup-", "namespace": "a"},
        "spec": {"template": {"spec": {"containers": [{"name": "b", "image": "busybox"}]}}},
    }
    cleaned = clean_objects([unnamed]).objects[0].cleaned
    assert cleaned is not None and cleaned["metadata"]["generateName"] == "backup-"


def test_last_applied_is_removed_after_explicit_node_ports_were_read(clean_report: CleanReport) -> None:
    svc = clean_report.get("Service/monitoring/prometheus-nodeport")
    assert svc.facts["explicit_node_ports"] == [30090]
    assert rules_at(svc, "metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']") == [
        "M10"
    ]
    assert svc.cleaned is not None and "annotations" not in svc.cleaned["metadata"]


def test_revision_and_controller_uid_bookkeeping_is_removed(clean_report: CleanReport) -> None:
    web = clean_report.get("Deployment/shop/web")
    assert rules_at(web, "metadata.annotations['deployment.kubernetes.io/revision']") == ["M11"]
    job = clean_report.get("Job/shop/db-migrate")
    assert job.cleaned is not None
    assert job.cleaned["metadata"]["labels"] == {
        "batch.kubernetes.io/job-name": "db-migrate",
        "job-name": "db-migrate",
    }
    assert {c.path for c in job.changes if c.rule_id == "M12"} == {
        "metadata.labels['batch.kubernetes.io/controller-uid']",
        "metadata.labels.controller-uid",
    }


def test_system_finalizers_are_stripped_and_foreign_ones_kept_with_a_warning(clean_report: CleanReport) -> None:
    pvc = clean_report.get("PersistentVolumeClaim/shop/web-uploads")
    assert pvc.cleaned is not None and "finalizers" not in pvc.cleaned["metadata"]
    monitor = clean_report.get("ServiceMonitor/shop/web")
    assert monitor.cleaned is not None
    assert monitor.cleaned["metadata"]["finalizers"] == ["monitoring.coreos.com/status-cleanup"]
    actions = {(c.action, tuple(c.before)) for c in monitor.changes if c.rule_id == "M13"}
    assert actions == {
        ("remove", ("foregroundDeletion",)),
        ("warn", ("monitoring.coreos.com/status-cleanup",)),
    }


def test_source_platform_labels_annotations_and_finalizers_are_removed(clean_report: CleanReport) -> None:
    shop = clean_report.get("Namespace/_cluster/shop")
    assert shop.cleaned is not None
    assert shop.cleaned["metadata"] == {"labels": {"kubernetes.io/metadata.name": "shop"}, "name": "shop"}
    assert {c.path for c in shop.changes if c.rule_id == "M14"} == {
        "metadata.annotations['field.cattle.io/projectId']",
        "metadata.annotations['lifecycle.cattle.io/create.namespace-auth']",
        "metadata.labels['field.cattle.io/projectId']",
        "metadata.finalizers",
    }
    lb = clean_report.get("Service/shop/web-public")
    assert sum(c.rule_id == "M14" for c in lb.changes) == 2  # service.beta.kubernetes.io/scw-loadbalancer-*
    monitor = clean_report.get("ServiceMonitor/shop/web")
    assert "openshift.io/generated-by" in [
        c.path.split("'")[1] for c in monitor.changes if c.rule_id == "M14"
    ]


def test_unrelated_labels_and_annotations_survive(clean_report: CleanReport) -> None:
    ingress = clean_report.get("Ingress/shop/web").cleaned
    assert ingress is not None
    assert ingress["metadata"]["annotations"] == {
        "cert-manager.io/cluster-issuer": "letsencrypt-prod",
        "external-dns.alpha.kubernetes.io/hostname": "shop.example.org",
        "nginx.ingress.kubernetes.io/proxy-body-size": "20m",
    }


def test_a_workload_quiesced_by_an_earlier_run_gets_its_recorded_replicas_back_and_loses_the_record():
    from k3smig_lib.core.clean import clean_objects

    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "db", "namespace": "shop",
                        "annotations": {"k3smig.io/pre-quiesce-replicas": "3",
                                        "k3smig.io/quiesced-at": "2025-01-20T10:00:00Z", "team": "data"}},
           "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db"}]}}}}
    (item,) = clean_objects([sts]).kept()
    assert item.cleaned is not None
    assert item.cleaned["spec"]["replicas"] == 3
    assert item.cleaned["metadata"]["annotations"] == {"team": "data"}
    assert {c.rule_id for c in item.changes if c.rule_id == "M15"} == {"M15"}
