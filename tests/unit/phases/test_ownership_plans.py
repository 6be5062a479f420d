"""Ownership plans as phase 70 makes them: the example's volumes, the target pod spec that mounts each.

The target owner comes from the pod's securityContext (never a blanket 1000); a pod that says nothing
keeps the source's owners; a volume whose files already match needs no chown and no root writer.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path

import pytest

from k3smig_lib.backends.snapshot import SnapshotSource
from k3smig_lib.core.config import Settings
from k3smig_lib.core.manifest import Manifest
from k3smig_lib.core.objects import Obj
from k3smig_lib.core.ownership import OwnershipPlan, plan_ownership
from k3smig_lib.errors import TargetError
from k3smig_lib.phases.context import open_target
from k3smig_lib.phases.data import consumer_spec, target_user
from k3smig_lib.phases.deploy import desired_objects

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "prod-cluster"


@pytest.fixture(scope="module")
def example() -> tuple[list[Obj], dict[str, tuple[object, Manifest]]]:
    """Target objects as phase 60 writes them, and each source volume with its manifest."""
    with tempfile.TemporaryDirectory() as folder:
        cfg = Settings(run_dir=f"{folder}/run", target_dir=f"{folder}/target")
        objects, _ = desired_objects(cfg, open_target(cfg))
    source = SnapshotSource(EXAMPLE)
    volumes = {}
    for v in source.list_volumes():
        with source.volume(v) as sv:
            volumes[v.id] = (v, sv.manifest())
    return objects, volumes


def plan_of(example, volume_id: str, objects: list[Obj] | None = None) -> tuple[OwnershipPlan, Manifest]:
    target_objects, volumes = example
    v, manifest = volumes[volume_id]
    return plan_ownership(v.id, manifest, consumer_spec(objects or target_objects, v)), manifest


@pytest.mark.parametrize(("volume", "owner", "container"), [
    ("monitoring/grafana-data", 472, "grafana"),
    ("monitoring/prometheus-data", 65534, "prometheus"),
    ("monitoring/storage-loki-0", 10001, "loki"),  # a StatefulSet's claim, from its volumeClaimTemplate
    ("pgadmin/pgadmin-data", 5050, "pgadmin"),
])
def test_the_target_owner_is_the_pods_own_user_and_a_matching_volume_needs_no_root(example, volume, owner,
                                                                                   container):
    plan, manifest = plan_of(example, volume)
    assert (plan.target_uid, plan.target_gid) == (owner, owner)
    assert plan.source == "pod securityContext" and plan.containers == [container]
    assert plan.action == "preserve" and plan.note.endswith("the source already matches")
    assert plan.histogram[0]["uid"] == owner and len(plan.histogram) == 1
    assert target_user(plan, manifest) == ((owner, owner), f"{owner}:{owner}, the only owner in the volume: "
                                           "no chown needed, so no root")


def test_a_pod_that_sets_no_user_keeps_the_source_owners_and_root_writes(example):
    plan, manifest = plan_of(example, "vaultwarden/vaultwarden-data")
    assert (plan.target_uid, plan.target_gid, plan.source, plan.action) == (None, None, "source owners", "preserve")
    assert "never a blanket 1000" in plan.note
    assert target_user(plan, manifest) == (None, "root: the volume's files belong to root")


def test_files_owned_by_another_user_are_chowned_to_the_pods_user_by_root(example):
    _, volumes = example
    v, manifest = volumes["monitoring/grafana-data"]
    foreign = dataclasses.replace(manifest, entries={
        p: dataclasses.replace(e, uid=1000, gid=1000) if p != "." else e for p, e in manifest.entries.items()})
    target_objects, _ = example
    plan = plan_ownership(v.id, foreign, consumer_spec(target_objects, v))
    changed = len(foreign.entries) - 1
    assert plan.action == "chown" and plan.note.endswith(f"{changed} entries will be chowned")
    assert plan.expected(1000, 1000) == (472, 472) and plan.expected(472, 472) == (472, 472)
    user, why = target_user(plan, foreign)
    assert user is None and why.startswith("root: the plan changes owners")


def test_two_writers_running_as_different_users_are_an_error_not_a_guess(example):
    target_objects, _ = example
    objects = copy.deepcopy(target_objects)
    grafana = next(o for o in objects if o["metadata"]["name"] == "grafana" and o["kind"] == "Deployment")
    spec = grafana["spec"]["template"]["spec"]
    mount = next(m for m in spec["containers"][0]["volumeMounts"])
    spec["containers"].append({"name": "backup", "image": "busybox", "securityContext": {"runAsUser": 1000},
                               "volumeMounts": [dict(mount)]})
    with pytest.raises(TargetError, match=r"run as different users \(grafana=\(472, 472\), backup=\(1000, 472\)\)"):
        plan_of(example, "monitoring/grafana-data", objects)
    spec["containers"][-1]["volumeMounts"][0]["readOnly"] = True  # a reader does not decide the owner
    plan, _ = plan_of(example, "monitoring/grafana-data", objects)
    assert plan.containers == ["grafana"] and plan.target_uid == 472


def test_a_pod_running_as_root_keeps_file_owners_but_takes_its_fs_group(example):
    target_objects, _ = example
    objects = copy.deepcopy(target_objects)
    grafana = next(o for o in objects if o["metadata"]["name"] == "grafana" and o["kind"] == "Deployment")
    grafana["spec"]["template"]["spec"]["securityContext"] = {"runAsUser": 0, "fsGroup": 2000}
    plan, manifest = plan_of(example, "monitoring/grafana-data", objects)
    assert (plan.target_uid, plan.target_gid, plan.action) == (None, 2000, "chown")
    assert plan.note.startswith("the pod runs as root, so file owners are kept; target runs as *:2000")
    assert plan.expected(472, 472) == (472, 2000)


def test_a_spec_that_does_not_mount_the_volume_is_refused(example):
    target_objects, volumes = example
    v, manifest = volumes["monitoring/grafana-data"]
    prometheus = next(o for o in target_objects if o["metadata"]["name"] == "prometheus" and o["kind"] == "Deployment")
    with pytest.raises(TargetError, match="does not mount volume 'monitoring/grafana-data'"):
        plan_ownership(v.id, manifest, prometheus["spec"]["template"]["spec"])
    assert consumer_spec([prometheus], v) is None  # phase 70 finds no consumer: it keeps the source owners
    assert plan_ownership(v.id, manifest, None).action == "preserve"
