"""K3s target remaps (T1, T2, T2b, T4, T5, T6): storage class, access modes, ingress class, images, DNS."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from k3smig_lib.core.clean import CleanOptions, CleanReport, clean_objects
from k3smig_lib.core.clean.remaps import normalize_image, rewrite_image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))
from cleanfixtures import cleaned, load_all  # noqa: E402


def test_claims_and_claim_templates_move_to_local_path(clean_report: CleanReport) -> None:
    assert (
        cleaned(clean_report, "PersistentVolumeClaim/shop/web-uploads")["spec"]["storageClassName"] == "local-path"
    )
    template = cleaned(clean_report, "StatefulSet/monitoring/prometheus")["spec"]["volumeClaimTemplates"][0]
    assert template["spec"]["storageClassName"] == "local-path"


def test_storage_class_comes_from_the_options() -> None:
    objects = load_all()
    other = clean_objects(objects, CleanOptions(storage_class="local-path-retain"))
    assert cleaned(other, "PersistentVolumeClaim/monitoring/grafana")["spec"]["storageClassName"] == (
        "local-path-retain"
    )


def test_read_write_many_becomes_read_write_once_with_a_warning(clean_report: CleanReport) -> None:
    item = clean_report.get("PersistentVolumeClaim/shop/web-uploads")
    assert cleaned(clean_report, "PersistentVolumeClaim/shop/web-uploads")["spec"]["accessModes"] == [
        "ReadWriteOnce"
    ]
    assert [c.action for c in item.changes if c.rule_id == "T2"] == ["rewrite", "warn"]
    rwo = clean_report.get("PersistentVolumeClaim/monitoring/data-prometheus-0")
    assert "T2" not in rwo.rule_ids


def test_retain_is_planned_for_every_new_volume_and_applied_to_kept_static_pvs(clean_report: CleanReport) -> None:
    deferred = [
        c for c in clean_report.get("PersistentVolumeClaim/monitoring/grafana").changes if c.rule_id == "T2b"
    ]
    assert [(c.before, c.after) for c in deferred] == [("Delete", "Retain")] and "deferred" in deferred[
        0
    ].note
    assert cleaned(clean_report, "PersistentVolume/_cluster/backups-nfs")["spec"][
        "persistentVolumeReclaimPolicy"
    ] == ("Retain")


def test_traefik_ingress_moves_to_nginx_and_loses_traefik_annotations(clean_report: CleanReport) -> None:
    docs = cleaned(clean_report, "Ingress/blog/docs")
    assert docs["spec"]["ingressClassName"] == "nginx"
    assert not [k for k in docs["metadata"]["annotations"] if k.startswith("traefik.")]
    warn = [c for c in clean_report.get("Ingress/blog/docs").changes if c.rule_id == "T4" and c.action == "warn"]
    assert len(warn[0].before) == 2


def test_ingress_without_any_class_gets_the_target_class() -> None:
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "i", "namespace": "a"},
        "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}},
    }
    out = clean_objects([ingress], CleanOptions(ingress_class="nginx-public")).objects[0]
    assert out.cleaned is not None and out.cleaned["spec"]["ingressClassName"] == "nginx-public"
    assert [(c.before, c.after) for c in out.changes if c.rule_id == "T4"] == [(None, "nginx-public")]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("grafana/grafana:11.1.0", "rg.fr-par.scw.cloud/mirror/grafana/grafana:11.1.0"),
        ("busybox:1.36", "rg.fr-par.scw.cloud/mirror/library/busybox:1.36"),
        ("docker.io/vaultwarden/server:1.31.0", "rg.fr-par.scw.cloud/mirror/vaultwarden/server:1.31.0"),
        ("ghcr.io/acme/shop-web:2.4.1", "rg.fr-par.scw.cloud/acme/shop-web:2.4.1"),
        ("ghcr.io/acme/shop-web@sha256:0f1e", "rg.fr-par.scw.cloud/acme/shop-web@sha256:0f1e"),
        ("ghcr.io/acme-labs/tool:1", "rg.fr-par.scw.cloud/ghcr/acme-labs/tool:1"),
        ("quay.io/prometheus/prometheus:v2.53.0", None),
    ],
)
def test_image_rewrite_uses_the_longest_prefix_at_a_path_boundary(image: str, expected: str | None) -> None:
    rewrites = {
        "docker.io/": "rg.fr-par.scw.cloud/mirror/",
        "ghcr.io/acme": "rg.fr-par.scw.cloud/acme",
        "ghcr.io/": "rg.fr-par.scw.cloud/ghcr/",
    }
    assert rewrite_image(image, rewrites) == expected


def test_docker_hub_short_names_are_normalised() -> None:
    assert normalize_image("nginx:1.27-alpine") == "docker.io/library/nginx:1.27-alpine"
    assert normalize_image("localhost:5000/app:1") == "localhost:5000/app:1"


def test_images_of_every_container_kind_are_rewritten_when_mirrored() -> None:
    opts = CleanOptions(registry_rewrites={"docker.io/": "rg.fr-par.scw.cloud/mirror/"})
    report = clean_objects(load_all(), opts)
    spec = cleaned(report, "Deployment/monitoring/grafana")["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == "rg.fr-par.scw.cloud/mirror/grafana/grafana:11.1.0"
    web = cleaned(report, "Deployment/shop/web")["spec"]["template"]["spec"]
    assert web["containers"][0]["image"] == "ghcr.io/acme/shop-web:2.4.1"


def test_external_dns_hostnames_are_kept_and_the_target_set_to_the_vm_address() -> None:
    opts = CleanOptions(external_dns_target="212.47.230.10")
    report = clean_objects(load_all(), opts)
    for object_id in ("Ingress/shop/web", "Ingress/blog/docs"):
        annots = cleaned(report, object_id)["metadata"]["annotations"]
        assert annots["external-dns.alpha.kubernetes.io/target"] == "212.47.230.10"
    assert (
        cleaned(report, "Ingress/blog/docs")["metadata"]["annotations"][
            "external-dns.alpha.kubernetes.io/hostname"
        ]
        == "docs.example.org"
    )


def test_stale_external_dns_target_is_a_warning_when_no_vm_address_is_given(clean_report: CleanReport) -> None:
    (warning,) = [
        c for c in clean_report.get("Ingress/blog/docs").changes if c.rule_id == "T6" and c.action == "warn"
    ]
    assert warning.before == "51.15.204.33"
