"""Whole-object whiteouts (W1-W11) and their KEEP exceptions, on realistic exports."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from k3smig_lib.core.clean import CleanOptions, CleanReport, clean_objects

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))
from cleanfixtures import load  # noqa: E402


def verdict(report: CleanReport, object_id: str) -> str:
    item = report.get(object_id)
    return item.changes[0].rule_id if item.dropped else "kept"


def test_owned_replicaset_and_pod_are_dropped_naming_their_owner(clean_report: CleanReport) -> None:
    assert verdict(clean_report, "ReplicaSet/shop/web-7d9c5b8f4") == "W1"
    assert "Deployment/web" in clean_report.get("ReplicaSet/shop/web-7d9c5b8f4").changes[0].note
    assert verdict(clean_report, "ControllerRevision/monitoring/prometheus-5c8f7b9d6") == "W1"
    assert verdict(clean_report, "Job/shop/nightly-report-28623270") == "W1"


def test_cert_manager_chain_objects_owned_by_their_parents_are_dropped(clean_report: CleanReport) -> None:
    assert verdict(clean_report, "Certificate/shop/web-tls") == "W1"  # ingress-shim recreates it from the Ingress


def test_issuance_history_is_never_migrated_owned_or_not(clean_report: CleanReport) -> None:
    assert verdict(clean_report, "CertificateRequest/shop/web-tls-2") == "W13"
    assert verdict(clean_report, "Order/shop/web-tls-2-1785539741") == "W13"


def test_owned_cert_manager_tls_secret_is_kept_as_a_keep4_exception(clean_report: CleanReport) -> None:
    secret = clean_report.get("Secret/shop/web-tls")
    assert not secret.dropped and secret.cleaned is not None
    assert "ownerReferences" not in secret.cleaned["metadata"]
    assert secret.cleaned["metadata"]["annotations"]["cert-manager.io/certificate-name"] == "web-tls"
    assert "KEEP4" in secret.rule_ids and "M8" in secret.rule_ids


def test_finished_pods_and_completed_jobs_are_history(clean_report: CleanReport) -> None:
    assert verdict(clean_report, "Pod/monitoring/fsck-once") == "W2"
    assert verdict(clean_report, "Pod/shop/nightly-report-28623270-k4v9s") == "W2"
    assert verdict(clean_report, "Job/shop/seed-catalogue") == "W2"
    assert verdict(clean_report, "Job/shop/db-migrate") == "kept"


def test_mirror_pod_is_dropped_even_though_its_node_owns_it(clean_report: CleanReport) -> None:
    assert verdict(clean_report, "Pod/edge/edge-agent-scw-prod-pool-apps-8f2c1") == "W3"


def test_generated_endpoints_go_but_manual_endpoints_of_a_selectorless_service_stay(
    clean_report: CleanReport,
) -> None:
    assert verdict(clean_report, "Endpoints/shop/web") == "W4"
    assert verdict(clean_report, "EndpointSlice/shop/web-6xq9z") == "W4"
    manual = clean_report.get("Endpoints/monitoring/external-db")
    assert "KEEP3" in manual.rule_ids and manual.cleaned is not None
    assert manual.cleaned["subsets"][0]["addresses"] == [{"ip": "10.20.0.7"}]
    assert verdict(clean_report, "EndpointSlice/monitoring/external-db-manual") == "kept"


def test_generated_token_secrets_go_but_a_manual_token_secret_stays_without_its_token(
    clean_report: CleanReport,
) -> None:
    assert verdict(clean_report, "Secret/shop/web-token-x7k2p") == "W5"
    assert verdict(clean_report, "Secret/shop/builder-dockercfg-7lq4k") == "W5"
    manual = clean_report.get("Secret/shop/builder-ci-token")
    assert manual.cleaned is not None and "data" not in manual.cleaned
    assert manual.cleaned["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "builder"}
    removed = [c for c in manual.changes if c.rule_id == "W5" and c.path == "data"]
    assert removed[0].before == ["token", "ca.crt", "namespace"]


def test_per_namespace_defaults_are_dropped(clean_report: CleanReport) -> None:
    assert verdict(clean_report, "ServiceAccount/shop/default") == "W6"
    assert verdict(clean_report, "ConfigMap/shop/kube-root-ca.crt") == "W6"


def test_default_service_account_with_pull_secrets_says_so_in_the_note() -> None:
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": "shop"},
        "imagePullSecrets": [{"name": "regcred"}],
    }
    (item,) = clean_objects([sa]).objects
    assert item.changes[0].rule_id == "W6" and "regcred" in item.changes[0].note


def test_dynamic_and_cloud_disk_pvs_are_dropped_and_static_nfs_pv_is_kept(clean_report: CleanReport) -> None:
    assert verdict(clean_report, "PersistentVolume/_cluster/pvc-eeeeeeee-ffff-4000-8111-222222222222") == "W7"
    assert verdict(clean_report, "PersistentVolume/_cluster/backups-nfs") == "kept"
    hand_made_csi = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "legacy-disk"},
        "spec": {
            "csi": {"driver": "csi.scaleway.com", "volumeHandle": "fr-par-1/123"},
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
        },
    }
    assert clean_objects([hand_made_csi]).objects[0].changes[0].rule_id == "W7"


@pytest.mark.parametrize(
    "object_id",
    [
        "Node/_cluster/scw-prod-pool-apps-8f2c1",
        "Event/shop/web.17d5a0c9a3f4b2e1",
        "Lease/shop/shop-web-leader",
        "VolumeAttachment/_cluster/csi-4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e",
        "APIService/_cluster/v1beta1.metrics.k8s.io",
        "APIService/_cluster/v1.apps",
        "FlowSchema/_cluster/probes",
        "PriorityLevelConfiguration/_cluster/workload-low",
        "CertificateSigningRequest/_cluster/csr-8x2kq",
        "Namespace/_cluster/kube-system",
        "DaemonSet/kube-system/kube-proxy",
        "Service/default/kubernetes",
        "Endpoints/default/kubernetes",
        "ClusterRole/_cluster/view",
        "ClusterRoleBinding/_cluster/coredns-reader",
        "ClusterRole/_cluster/coredns-reader",
        "PriorityClass/_cluster/system-cluster-critical",
    ],
)
def test_cluster_plumbing_is_dropped(object_id: str, clean_report: CleanReport) -> None:
    assert verdict(clean_report, object_id) == "W8"


def test_application_priority_class_and_webhook_are_kept(clean_report: CleanReport) -> None:
    assert verdict(clean_report, "PriorityClass/_cluster/app-critical") == "kept"
    assert verdict(clean_report, "MutatingWebhookConfiguration/_cluster/shop-defaults") == "kept"


def test_removed_api_versions_and_olm_objects_are_dropped(clean_report: CleanReport) -> None:
    assert verdict(clean_report, "Ingress/blog/legacy-blog") == "W9"
    assert verdict(clean_report, "PodSecurityPolicy/_cluster/restricted") == "W9"
    assert verdict(clean_report, "Subscription/operators/grafana-operator") == "W10"


@pytest.mark.parametrize(
    "object_id",
    [
        "Namespace/_cluster/ingress-nginx",
        "Deployment/ingress-nginx/ingress-nginx-controller",
        "IngressClass/_cluster/nginx",
        "CSIDriver/_cluster/csi.scaleway.com",
        "StorageClass/_cluster/scw-bssd",
        "ClusterRole/_cluster/ingress-nginx",
        "ClusterRoleBinding/_cluster/ingress-nginx",
        "ValidatingWebhookConfiguration/_cluster/ingress-nginx-admission",
        "Namespace/_cluster/cert-manager",
        "Deployment/cert-manager/cert-manager",
        "CustomResourceDefinition/_cluster/certificates.cert-manager.io",
        "Secret/cert-manager/cert-manager-webhook-ca",
    ],
)
def test_source_platform_add_ons_are_dropped(object_id: str, clean_report: CleanReport) -> None:
    assert verdict(clean_report, object_id) == "W11"


def test_acme_account_keys_of_kept_issuers_survive_even_in_the_platform_namespace(
    clean_report: CleanReport,
) -> None:
    for object_id in (
        "Secret/cert-manager/letsencrypt-prod-account-key",
        "Secret/shop/shop-staging-account-key",
    ):
        item = clean_report.get(object_id)
        assert not item.dropped and "KEEP4" in item.rule_ids


def test_platform_and_system_namespaces_come_from_the_options() -> None:
    objects = load("clean-stateful.yaml")
    report = clean_objects(objects, CleanOptions(platform_namespaces=frozenset({"monitoring"})))
    assert {item.changes[0].rule_id for item in report.objects if item.ref.namespace == "monitoring"} == {
        "W11"
    }


def test_helm_release_record_is_dropped_unless_releases_are_kept() -> None:
    objects = load("clean-helm.yaml")
    record = "Secret/vaultwarden/sh.helm.release.v1.vaultwarden.v3"
    assert verdict(clean_objects(objects), record) == "KEEP5"
    kept = clean_objects(objects, CleanOptions(keep_helm_releases=True)).get(record)
    assert not kept.dropped and [c.action for c in kept.changes if c.rule_id == "KEEP5"] == ["keep"]


def test_traefik_crds_and_routes_are_dropped_with_a_rewrite_hint(clean_report: CleanReport) -> None:
    for object_id in (
        "CustomResourceDefinition/_cluster/ingressroutes.traefik.io",
        "IngressRoute/blog/blog",
        "Middleware/blog/redirect-www",
    ):
        item = clean_report.get(object_id)
        assert item.changes[0].rule_id == "T4" and "Ingress" in item.changes[0].note


def test_csi_snapshots_of_the_source_storage_are_dropped() -> None:
    snapshot = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": "grafana-2024-03-10", "namespace": "monitoring"},
        "spec": {
            "source": {"persistentVolumeClaimName": "grafana"},
            "volumeSnapshotClassName": "scw-snapshot",
        },
    }
    (item,) = clean_objects([snapshot]).objects
    assert item.dropped and item.changes[0].rule_id == "W11"
