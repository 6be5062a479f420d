"""Service rules (K1-K6) with their keep-list (KEEP1-KEEP3): addresses, ports and ServiceLB."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.core.clean import CleanOptions, CleanReport, clean_objects

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))
from cleanfixtures import load  # noqa: E402


@pytest.fixture(scope="module")
def report() -> CleanReport:
    return clean_objects(load("clean-shop-app.yaml", "clean-stateful.yaml"))


def spec(report: CleanReport, object_id: str) -> dict[str, Any]:
    cleaned = report.get(object_id).cleaned
    assert cleaned is not None
    return dict(cleaned["spec"])


def test_cluster_ip_from_the_source_cidr_is_removed(report: CleanReport) -> None:
    web = spec(report, "Service/shop/web")
    assert "clusterIP" not in web and "clusterIPs" not in web
    assert web["selector"] == {"app": "web"}
    assert "type" not in web and "K27" in report.get("Service/shop/web").rule_ids  # ClusterIP: the API default


def test_headless_service_keeps_cluster_ip_none(report: CleanReport) -> None:
    headless = report.get("Service/monitoring/prometheus-headless")
    assert spec(report, "Service/monitoring/prometheus-headless")["clusterIP"] == "None"
    assert spec(report, "Service/monitoring/prometheus-headless")["clusterIPs"] == ["None"]
    assert [c.action for c in headless.changes if c.rule_id == "KEEP1"] == ["keep"]
    assert not [c for c in headless.changes if c.rule_id in ("K1", "K2")]


def test_load_balancer_fronted_by_an_ingress_becomes_cluster_ip(report: CleanReport) -> None:
    public = spec(report, "Service/shop/web-public")
    assert public["type"] == "ClusterIP"
    for gone in (
        "externalTrafficPolicy",
        "allocateLoadBalancerNodePorts",
        "healthCheckNodePort",
        "loadBalancerIP",
    ):
        assert gone not in public
    assert "nodePort" not in public["ports"][0]
    note = next(c.note for c in report.get("Service/shop/web-public").changes if c.rule_id == "K3")
    assert "ClusterIP" in note


def test_load_balancer_without_ingress_stays_and_warns_about_host_ports(report: CleanReport) -> None:
    postgres = report.get("Service/monitoring/postgres-public")
    cleaned = spec(report, "Service/monitoring/postgres-public")
    assert cleaned["type"] == "LoadBalancer"
    assert "externalIPs" not in cleaned and "loadBalancerClass" not in cleaned
    (warning,) = [c for c in postgres.changes if c.rule_id == "K6"]
    assert warning.action == "warn" and "[5432]" in warning.note


def test_load_balancer_on_port_443_warns_about_the_ingress_controller() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "gw", "namespace": "edge"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "gw"}, "ports": [{"port": 443}]},
    }
    (item,) = clean_objects([svc]).objects
    assert "collide with the ingress controller" in item.changes[-1].note


def test_auto_assigned_node_ports_are_removed_and_explicit_ones_too_unless_exposed(
    report: CleanReport,
) -> None:
    ports = spec(report, "Service/monitoring/prometheus-nodeport")["ports"]
    assert all("nodePort" not in p for p in ports)
    notes = [
        c.note for c in report.get("Service/monitoring/prometheus-nodeport").changes if c.rule_id == "K3"
    ]
    assert notes == [
        "set explicitly, but expose_node_ports is false",
        "auto-assigned: would collide or fall out of range",
    ]


def test_explicit_node_port_is_kept_when_the_vm_exposes_node_ports() -> None:
    report = clean_objects(load("clean-stateful.yaml"), CleanOptions(expose_node_ports=True))
    item = report.get("Service/monitoring/prometheus-nodeport")
    assert item.cleaned is not None
    assert [p.get("nodePort") for p in item.cleaned["spec"]["ports"]] == [30090, None]
    assert [(c.path, c.after) for c in item.changes if c.rule_id == "KEEP2"] == [
        ("spec.ports[0].nodePort", 30090)
    ]


def test_manual_endpoints_of_a_selectorless_service_are_kept(report: CleanReport) -> None:
    assert report.get("Service/monitoring/external-db").facts.get("fronted_by_ingress") is False
    assert "KEEP3" in report.get("Endpoints/monitoring/external-db").rule_ids
    assert "KEEP3" in report.get("EndpointSlice/monitoring/external-db-manual").rule_ids
