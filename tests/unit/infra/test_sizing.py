"""Sizing: one VM of the chosen type with headroom, else the node count and type the Terraform module can build."""

from __future__ import annotations

from typing import Any

import pytest

from k3smig_lib.core.clean import clean_objects
from k3smig_lib.infra.sizing import HEADROOM, Demand, demand_of, sizing_rows, verdict


def workload(kind: str, name: str, replicas: int, cpu: str, memory: str, namespace: str = "apps") -> dict[str, Any]:
    container = {"name": name, "image": f"example/{name}:1", "resources": {"requests": {"cpu": cpu, "memory": memory}}}
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": name}},
                            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}}
    if kind != "DaemonSet":
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def demand(*objects: dict[str, Any]) -> Demand:
    return demand_of(clean_objects(list(objects)).kept())


def test_replicas_multiply_daemonsets_count_per_node_and_kube_system_is_not_migrated() -> None:
    d = demand(
        workload("Deployment", "web", 3, "500m", "1Gi"),
        workload("StatefulSet", "db", 1, "1", "4Gi"),
        workload("DaemonSet", "agent", 1, "100m", "128Mi"),
        workload("Deployment", "coredns", 2, "4", "8Gi", namespace="kube-system"),
    )
    assert (d.cpu, d.memory_gib) == (2.5, 7.0)
    assert (d.per_node_cpu, d.per_node_memory_gib) == (0.1, 0.125)
    assert d.largest == "StatefulSet/apps/db" and d.largest_memory_gib == 4.0


def test_a_source_that_fits_gets_one_row_and_says_so() -> None:
    rows = sizing_rows(demand(workload("Deployment", "web", 2, "500m", "1Gi")), "GP1-XS")
    assert len(rows) == 1 and rows[0]["holds"]
    assert (rows[0]["server_count"], rows[0]["agent_count"]) == (1, 0)
    assert verdict(rows) == f"fits on one GP1-XS with {HEADROOM:.0%} headroom"


def test_headroom_is_kept_free() -> None:
    # GP1-XS: (4 - 0.5 platform) x 0.8 = 2.8 cores usable; 3 cores would fit without the headroom.
    rows = sizing_rows(Demand(cpu=3.0, memory_gib=1.0), "GP1-XS")
    assert rows[0]["usable cores"] == 2.8 and not rows[0]["holds"]


def test_too_much_for_one_vm_proposes_three_servers_of_the_type_or_one_larger_vm() -> None:
    rows = sizing_rows(demand(workload("Deployment", "web", 10, "500m", "2Gi")), "GP1-XS")
    assert [(r["option"], r["server_count"], r["agent_count"], r["instance_type"]) for r in rows] == [
        ("chosen VM", 1, 0, "GP1-XS"), ("more GP1-XS nodes", 3, 0, "GP1-XS"), ("one larger VM", 1, 0, "GP1-S")]
    assert all(r["holds"] for r in rows[1:])
    text = verdict(rows)
    assert text.startswith("the source requests more than one GP1-XS holds")
    assert "server_count: 3, agent_count: 0, instance_type: GP1-XS" in text


def test_beyond_three_servers_agents_are_added_and_daemonsets_cost_on_each() -> None:
    rows = sizing_rows(Demand(cpu=12.0, memory_gib=20.0, per_node_cpu=0.3), "GP1-XS")
    same = rows[1]
    # per node (4 - 0.5) x 0.8 - 0.3 = 2.5 cores: 12 cores take 5 nodes, 3 servers + 2 agents.
    assert (same["server_count"], same["agent_count"]) == (3, 2)
    assert same["usable cores"] == 12.5


def test_a_pod_larger_than_one_node_needs_a_larger_type() -> None:
    rows = sizing_rows(Demand(cpu=3.5, memory_gib=2, largest_cpu=3.5, largest_memory_gib=2), "GP1-XS")
    assert [r["option"] for r in rows] == ["chosen VM", "one larger VM"]
    assert rows[1]["instance_type"] == "GP1-S"


def test_an_unlisted_type_uses_the_capacity_given_for_it() -> None:
    rows = sizing_rows(Demand(cpu=1, memory_gib=1), "POP2-8C-32G", vcpu=8, ram_gib=32)
    assert rows[0]["holds"] and rows[0]["usable cores"] == 6.0
    with pytest.raises(ValueError, match="not in INSTANCE_SIZES"):
        sizing_rows(Demand(), "POP2-8C-32G")
