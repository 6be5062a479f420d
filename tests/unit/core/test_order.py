"""Apply order on K3s (docs/cleaning-rules.md §8)."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.core.clean import clean_objects
from k3smig_lib.core.order import STAGES, sort_for_apply, stage_dir_name, stage_of

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))
from cleanfixtures import load_all  # noqa: E402


def obj(kind: str, name: str, namespace: str = "", api_version: str = "v1", **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **extra}


def cleaned_export() -> list[dict[str, Any]]:
    return [c.cleaned for c in clean_objects(load_all()).kept() if c.cleaned is not None]


def test_stages_follow_the_design_ranks() -> None:
    assert [s.rank for s in STAGES] == [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 99]
    assert [stage_dir_name(s) for s in STAGES][:5] == [
        "01-crds",
        "02-namespaces",
        "03-priorityclasses",
        "04-rbac",
        "05-secrets-configmaps",
    ]
    assert stage_dir_name(STAGES[-1]) == "99-other"


@pytest.mark.parametrize(
    ("kind", "api_version", "rank"),
    [
        ("CustomResourceDefinition", "apiextensions.k8s.io/v1", 1),
        ("Namespace", "v1", 2),
        ("PriorityClass", "scheduling.k8s.io/v1", 3),
        ("RoleBinding", "rbac.authorization.k8s.io/v1", 4),
        ("ConfigMap", "v1", 5),
        ("ResourceQuota", "v1", 6),
        ("PersistentVolumeClaim", "v1", 7),
        ("Endpoints", "v1", 9),
        ("CronJob", "batch/v1", 10),
        ("ClusterIssuer", "cert-manager.io/v1", 11),
        ("Ingress", "networking.k8s.io/v1", 12),
        ("NetworkPolicy", "networking.k8s.io/v1", 13),
        ("ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1", 14),
        ("ServiceMonitor", "monitoring.coreos.com/v1", 99),
        ("Certificate", "certificates.example.com/v1", 99),
    ],
)
def test_stage_of_each_kind(kind: str, api_version: str, rank: int) -> None:
    assert stage_of(obj(kind, "x", api_version=api_version)).rank == rank


def test_rbac_follows_the_design_order_within_its_stage() -> None:
    objects = [
        obj("RoleBinding", "rb", "a"),
        obj("ClusterRoleBinding", "crb"),
        obj("ServiceAccount", "sa", "a"),
        obj("Role", "r", "a"),
        obj("ClusterRole", "cr"),
    ]
    assert [o["kind"] for o in sort_for_apply(objects)] == [
        "ClusterRole",
        "Role",
        "ServiceAccount",
        "ClusterRoleBinding",
        "RoleBinding",
    ]


def test_pull_secret_then_dns_credentials_then_app_secrets_then_certificates_then_config_maps() -> None:
    objects = [
        obj("ConfigMap", "settings", "shop"),
        obj(
            "Secret",
            "web-tls",
            "shop",
            type="kubernetes.io/tls",
            metadata={
                "name": "web-tls",
                "namespace": "shop",
                "annotations": {"cert-manager.io/certificate-name": "w"},
            },
        ),
        obj("Secret", "le-account-key", "shop", type="Opaque", data={"tls.key": "a2V5"}),
        obj("Secret", "web-env", "shop", type="Opaque", data={"url": "eA=="}),
        obj("Secret", "external-dns-scaleway", "shop", type="Opaque", data={"SCW_SECRET_KEY": "eA=="}),
        obj("Secret", "scw-registry", "shop", type="kubernetes.io/dockerconfigjson"),
    ]
    assert [o["metadata"]["name"] for o in sort_for_apply(objects)] == [
        "scw-registry",
        "external-dns-scaleway",
        "web-env",
        "le-account-key",
        "web-tls",
        "settings",
    ]


def test_sort_is_stable_and_independent_of_input_order() -> None:
    objects = cleaned_export()
    expected = sort_for_apply(objects)
    shuffled = list(objects)
    random.Random(7).shuffle(shuffled)
    assert sort_for_apply(shuffled) == expected


def test_cleaned_export_applies_dependencies_first() -> None:
    ordered = sort_for_apply(cleaned_export())
    position = {(o["kind"], o["metadata"]["name"]): i for i, o in enumerate(ordered)}
    assert (
        position[("CustomResourceDefinition", "servicemonitors.monitoring.coreos.com")]
        < position[("ServiceMonitor", "web")]
    )
    assert (
        position[("Namespace", "shop")]
        < position[("ServiceAccount", "web")]
        < position[("Secret", "web-env")]
    )
    assert position[("Secret", "regcred")] < position[("Secret", "web-env")] < position[("Secret", "web-tls")]
    assert position[("PersistentVolume", "backups-nfs")] < position[("PersistentVolumeClaim", "backups")]
    assert position[("PersistentVolumeClaim", "web-uploads")] < position[("Service", "web")]
    assert position[("StatefulSet", "prometheus")] < position[("Deployment", "grafana")]
    assert position[("Secret", "web-tls")] < position[("ClusterIssuer", "letsencrypt-prod")]
    assert (
        position[("Certificate", "api-tls")]
        < position[("Ingress", "web")]
        < position[("NetworkPolicy", "web-allow-ingress")]
    )
    assert position[("MutatingWebhookConfiguration", "shop-defaults")] < position[("ServiceMonitor", "web")]
