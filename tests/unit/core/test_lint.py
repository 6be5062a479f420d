"""The K3s compatibility lint on a realistic export, plus focused cases for each check."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from k3smig_lib.core.clean import CleanOptions
from k3smig_lib.core.lint import Capacity, Risk, lint

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))
from cleanfixtures import load_all  # noqa: E402


@pytest.fixture(scope="module")
def risks() -> list[Risk]:
    return lint(load_all(), Capacity(disk_gb=200))


def find(risks: list[Risk], check: str, ref_id: str | None = None) -> list[Risk]:
    return [r for r in risks if r.id == check and (ref_id is None or r.ref_id == ref_id)]


def service(name: str, port: int, kind: str = "LoadBalancer") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "edge"},
        "spec": {"type": kind, "selector": {"app": name}, "ports": [{"port": port}]},
    }


def deployment(
    name: str, image: str, replicas: int = 1, cpu: str = "100m", memory: str = "64Mi"
) -> dict[str, Any]:
    container = {"name": name, "image": image, "resources": {"requests": {"cpu": cpu, "memory": memory}}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def test_every_risk_says_how_to_fix_it_and_errors_come_first(risks: list[Risk]) -> None:
    assert risks and all(r.fix and r.message and r.severity in ("info", "warning", "error") for r in risks)
    order = {"error": 0, "warning": 1, "info": 2}
    assert [order[r.severity] for r in risks] == sorted(order[r.severity] for r in risks)


def test_pvc_requests_beyond_the_disk_are_a_warning_and_fit_on_a_larger_disk(risks: list[Risk]) -> None:
    (small,) = find(lint(load_all(), Capacity(disk_gb=80)), "disk-capacity")
    assert small.severity == "warning" and small.rule_id == "T3" and "91.3 GB" in small.message
    (large,) = find(risks, "disk-capacity")
    assert large.severity == "info"


def test_requests_count_replicas_and_skip_objects_that_are_not_migrated(risks: list[Risk]) -> None:
    (cpu,) = find(risks, "cpu-capacity")
    (memory,) = find(risks, "memory-capacity")
    assert "1.67 cores" in cpu.message and cpu.severity == "info"  # web 2×250m + prometheus 1 + 170m
    assert "2.91 GiB" in memory.message
    (tight,) = find(lint(load_all(), Capacity(cpu=2.5, memory_gib=4.0)), "cpu-capacity")  # 1.67 of 2.0
    assert tight.severity == "warning"
    (over,) = find(lint([deployment("api", "api:1", replicas=4, cpu="1")], Capacity(cpu=4.0)), "cpu-capacity")
    assert over.severity == "error" and "4.00 cores" in over.message


def test_read_write_many_claims_and_foreign_storage_classes_are_reported(risks: list[Risk]) -> None:
    assert {r.ref_id for r in find(risks, "rwx-volume")} == {
        "PersistentVolumeClaim/shop/web-uploads",
        "PersistentVolumeClaim/monitoring/backups",
    }
    (klass,) = find(risks, "storage-class")
    assert klass.ref_id == "StorageClass/_cluster/scw-bssd" and "5 claim(s)" in klass.message
    assert find(risks, "static-volume", "PersistentVolume/_cluster/backups-nfs")


def test_block_volume_cannot_live_on_local_path() -> None:
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "raw", "namespace": "db"},
        "spec": {
            "volumeMode": "Block",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "scw-bssd",
        },
    }
    (risk,) = find(lint([pvc]), "block-volume")
    assert risk.severity == "error"


def test_load_balancers_behind_ingress_become_cluster_ip_and_others_take_host_ports(
    risks: list[Risk],
) -> None:
    assert find(risks, "loadbalancer-behind-ingress", "Service/shop/web-public")[0].severity == "info"
    (postgres,) = find(risks, "loadbalancer-servicelb", "Service/monitoring/postgres-public")
    assert postgres.severity == "warning" and "[5432]" in postgres.message


def test_load_balancer_on_443_or_a_shared_port_is_an_error() -> None:
    clashes = find(
        lint([service("gw", 443), service("db-a", 5432), service("db-b", 5432)]), "loadbalancer-port-clash"
    )
    assert {r.severity for r in clashes} == {"error"} and len(clashes) == 2
    assert any("ingress-nginx" in r.message for r in clashes)


def test_ingress_class_and_controller_specific_annotations(risks: list[Risk]) -> None:
    assert find(risks, "ingress-class", "Ingress/blog/docs")[0].severity == "warning"
    assert find(risks, "ingress-class-annotation", "Ingress/shop/web")[0].rule_id == "K24"
    (foreign,) = find(risks, "ingress-annotations", "Ingress/blog/docs")
    assert "traefik.ingress.kubernetes.io/router.middlewares" in foreign.message


def test_traefik_routes_are_flagged_for_rewriting(risks: list[Risk]) -> None:
    assert {r.ref_id for r in find(risks, "traefik-route")} == {
        "IngressRoute/blog/blog",
        "Middleware/blog/redirect-www",
    }
    assert find(risks, "traefik-crd")[0].severity == "info"


def test_node_pinning_removed_is_info_and_custom_labels_need_the_vm_labelled(risks: list[Risk]) -> None:
    assert find(risks, "node-pinning", "Deployment/shop/web")[0].severity == "info"
    (docs,) = find(risks, "node-pinning", "Deployment/blog/docs")
    assert docs.severity == "warning" and "workload-tier=frontend" in docs.fix
    assert find(risks, "node-pinning", "Pod/monitoring/debug-shell")[0].rule_id == "K7"


def test_host_path_volumes_are_not_migrated(risks: list[Risk]) -> None:
    (risk,) = find(risks, "host-path")
    assert risk.ref_id == "Deployment/blog/docs" and "/srv/docs-site" in risk.message


def test_images_outside_the_scaleway_registry_unless_rewritten(risks: list[Risk]) -> None:
    images = {r.message.split(" ")[0] for r in find(risks, "image-registry")}
    assert {"grafana/grafana:11.1.0", "ghcr.io/acme/shop-web:2.4.1", "busybox:1.36"} <= images
    assert "registry.k8s.io/kube-proxy:v1.30.2" not in images  # kube-system is not migrated
    mirrored = lint(
        load_all(), options=CleanOptions(registry_rewrites={"docker.io/": "rg.fr-par.scw.cloud/m/"})
    )
    assert "grafana/grafana:11.1.0" not in {r.message.split(" ")[0] for r in find(mirrored, "image-registry")}
    private = find(
        lint([deployment("job", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/job:3")]), "image-registry"
    )
    assert private[0].severity == "warning"


def test_crds_without_planned_operators_and_crs_without_crds(risks: list[Risk]) -> None:
    (crd,) = find(risks, "crd-operator")
    assert "servicemonitors.monitoring.coreos.com" in crd.message and "1 ServiceMonitor" in crd.message
    orphan = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "p", "namespace": "a"},
    }
    assert find(lint([orphan]), "missing-crd")[0].ref_id == "PodMonitor/*/*"


def test_helm_releases_are_reported_once_per_release() -> None:
    plain = find(lint(load_all()), "helm-managed")
    assert [r.ref_id for r in plain] == ["HelmRelease/vaultwarden/vaultwarden"]
    assert "plain manifests" in plain[0].message and "--take-ownership" in plain[0].fix
    kept = find(lint(load_all(), options=CleanOptions(keep_helm_releases=True)), "helm-managed")
    assert "keeps its release record" in kept[0].message


def test_suspended_jobs_and_cron_jobs(risks: list[Risk]) -> None:
    assert [r.ref_id for r in find(risks, "standalone-job")] == ["Job/shop/db-migrate"]
    assert find(risks, "cronjob-suspended")[0].ref_id == "CronJob/shop/nightly-report"


def test_fs_group_on_local_path_volumes_needs_an_explicit_chown(risks: list[Risk]) -> None:
    grafana = find(risks, "fsgroup-local-path", "Deployment/monitoring/grafana")
    assert grafana and "472" in grafana[0].fix
    assert not find(
        risks, "fsgroup-local-path", "StatefulSet/monitoring/prometheus"
    )  # no PVC volume in its spec


def test_network_policies_are_enforced_on_k3s(risks: list[Risk]) -> None:
    (risk,) = find(risks, "network-policy")
    assert risk.ref_id == "Namespace/_cluster/shop" and "kube-router" in risk.message


def test_cleaner_warnings_without_a_dedicated_check_are_surfaced(risks: list[Risk]) -> None:
    assert {r.ref_id for r in find(risks, "cleaning-m13")} == {
        "ConfigMap/shop/feature-flags-legacy",
        "ServiceMonitor/shop/web",
    }
    assert find(risks, "cleaning-t6", "Ingress/blog/docs")


def test_an_openshift_route_is_kept_with_a_warning_and_its_equivalent_ingress() -> None:
    from k3smig_lib.core.clean.routes import route_to_ingress

    folder = Path(__file__).resolve().parents[2] / "fixtures" / "openshift"
    route = yaml.safe_load((folder / "route1-openshift4-raw.yaml").read_text())
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "console", "namespace": "openshift-console"},
               "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443}]}}
    risks = [r for r in lint([route, service]) if r.id == "openshift-route"]
    assert [(r.severity, r.ref_id) for r in risks] == [("warning", "Route/openshift-console/console")]
    assert "equivalent Ingress" in risks[0].fix
    ingress, notes = route_to_ingress(route, services=[service])
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"] == {
        "service": {"name": "console", "port": {"number": 443}}}
    assert ingress["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}
    assert ingress["spec"]["tls"] == [{"hosts": ["console-openshift-console.apps-crc.testing"],
                                       "secretName": "console-tls"}]
    assert notes and "console-tls" in notes[0]
