"""Which workloads phase 60 holds at 0, and when phase 70 gives their replicas back (the example cluster).

Held: a workload that mounts a claim (until its data is proven) and a GitLab Runner (until cutover: two
runners with one registration take each other's jobs). Released: only with every claim it needs proven,
never a runner, and a workload released by an earlier run stays released.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from k3smig_lib.backends.snapshot import SnapshotSource
from k3smig_lib.core.config import Settings
from k3smig_lib.core.objects import Obj, get_path, ref
from k3smig_lib.phases import data
from k3smig_lib.phases.context import open_target
from k3smig_lib.phases.data import required_claims
from k3smig_lib.phases.deploy import (
    HELD_UNTIL,
    INTENDED,
    VERIFIED,
    desired_objects,
    hold,
    is_singleton,
    mounts_claims,
    release,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "prod-cluster"


@pytest.fixture(scope="module")
def source_objects() -> dict[str, Obj]:
    return {ref(o).id: o for o in SnapshotSource(EXAMPLE).list_objects()}


def settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(run_dir=str(tmp_path / "run"), target_dir=str(tmp_path / "target"), **extra)  # type: ignore[arg-type]


def replicas(obj: Obj) -> int:
    return int(get_path(obj, "spec.replicas", 1))


def annotations(obj: Obj) -> dict[str, str]:
    return dict(get_path(obj, "metadata.annotations", {}) or {})


def test_only_the_gitlab_runner_is_a_singleton(source_objects):
    singletons = sorted(i for i, o in source_objects.items() if is_singleton(o))
    assert singletons == ["Deployment/gitlab-runner/gitlab-runner"]
    runner = source_objects["Deployment/gitlab-runner/gitlab-runner"]
    as_daemonset = {**runner, "kind": "DaemonSet"}  # a DaemonSet has no replicas to hold: not held
    assert not is_singleton(as_daemonset)
    moved = copy.deepcopy(runner)  # the image behind a registry rewrite is still a runner
    moved["spec"]["template"]["spec"]["containers"][0]["image"] = "rg.fr-par.scw.cloud/mirror/gitlab-runner:v17"
    assert is_singleton(moved)


def test_hold_records_the_intended_replicas_and_release_gives_them_back(source_objects):
    coredns = source_objects["Deployment/kube-system/coredns"]  # 2 replicas in the export
    held = hold(coredns)
    assert replicas(held) == 0 and annotations(held)[INTENDED] == "2"
    assert replicas(coredns) == 2 and INTENDED not in annotations(coredns)  # the source object is untouched
    released = release(held)
    assert replicas(released) == 2 and annotations(released)[VERIFIED] == "true"
    assert replicas(held) == 0 and VERIFIED not in annotations(held)


def test_phase_60_holds_claim_mounting_workloads_and_the_runner_and_leaves_the_rest(tmp_path, source_objects):
    objects, rows = desired_objects(settings(tmp_path), open_target(settings(tmp_path)))
    by_id = {ref(o).id: o for o in objects}
    states = {r["workload"]: r["state"] for r in rows}
    claims = {"Deployment/monitoring/grafana", "Deployment/monitoring/prometheus", "StatefulSet/monitoring/loki",
              "Deployment/pgadmin/pgadmin", "Deployment/vaultwarden/vaultwarden"}
    assert set(states) == claims | {"Deployment/gitlab-runner/gitlab-runner"}
    for wid in claims:
        assert replicas(by_id[wid]) == 0 and annotations(by_id[wid])[INTENDED] == "1", wid
        assert states[wid] == "held at 0 until data verified" and HELD_UNTIL not in annotations(by_id[wid])
    runner = by_id["Deployment/gitlab-runner/gitlab-runner"]
    assert replicas(runner) == 0 and annotations(runner)[HELD_UNTIL] == "cutover"
    assert states["Deployment/gitlab-runner/gitlab-runner"].startswith("held at 0 until cutover")
    assert mounts_claims(source_objects["StatefulSet/monitoring/loki"]) == ["storage"]  # its volumeClaimTemplate
    alertmanager = by_id["Deployment/monitoring/alertmanager"]  # mounts no claim: applied as exported
    assert replicas(alertmanager) == 1 and INTENDED not in annotations(alertmanager)


def test_a_workload_verified_by_an_earlier_run_stays_released_on_a_re_run(tmp_path):
    cfg = settings(tmp_path, apply=True)
    target = open_target(cfg)
    objects, _ = desired_objects(cfg, target)
    target.apply(objects, dry_run=False, existing="update")
    grafana = next(o for o in objects if ref(o).id == "Deployment/monitoring/grafana")
    target.apply([release(grafana)], dry_run=False, existing="update")  # what phase 70 writes once proven
    again, rows = desired_objects(cfg, target)
    states = {r["workload"]: r["state"] for r in rows}
    assert states["Deployment/monitoring/grafana"] == "released (data verified earlier)"
    assert replicas(next(o for o in again if ref(o).id == "Deployment/monitoring/grafana")) == 1
    assert states["Deployment/pgadmin/pgadmin"] == "held at 0 until data verified"  # the others stay held


def test_a_statefulset_needs_the_claim_of_every_intended_replica_proven():
    loki = hold({"kind": "StatefulSet", "metadata": {"name": "loki", "namespace": "monitoring"},
                 "spec": {"replicas": 3, "volumeClaimTemplates": [{"metadata": {"name": "storage"}}],
                          "template": {"spec": {"containers": [{"name": "loki", "image": "grafana/loki"}]}}}})
    assert required_claims(loki) == ["storage-loki-0", "storage-loki-1", "storage-loki-2"]


def test_phase_70_releases_every_proven_workload_and_never_the_runner(tmp_path):
    cfg = settings(tmp_path, apply=True, include_loki=False)
    phase = data.start(cfg)
    rows = {r["workload"]: r["released"] for _, r in phase.release().iterrows()}  # copies and proves first
    phase.close()
    assert phase.verified == {"monitoring/grafana-data", "monitoring/prometheus-data", "pgadmin/pgadmin-data",
                              "vaultwarden/vaultwarden-data"}
    assert set(rows.values()) == {"PASS"} and len(rows) == 5
    # Loki's volume was left out on purpose (include_loki: false): it starts empty, so nothing holds it back
    assert "monitoring/storage-loki-0" in phase.skipped and rows["StatefulSet/monitoring/loki"] == "PASS"
    assert "Deployment/gitlab-runner/gitlab-runner" not in rows  # held until cutover: phase 80 starts it
    written = {ref(o).id: o for o in open_target(cfg).list_objects()}
    for wid in rows:
        assert replicas(written[wid]) == 1 and annotations(written[wid])[VERIFIED] == "true", wid
    assert "Deployment/gitlab-runner/gitlab-runner" not in written  # phase 70 writes only what it releases
