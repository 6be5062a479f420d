"""The ten phases against the sandbox clusters: objects, Secrets and volume data move live, twice, under a lock."""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.backends.live_source import LiveSource
from k3smig_lib.backends.live_target import LiveTarget
from k3smig_lib.core.objects import PRE_QUIESCE
from k3smig_lib.k8s.client import ClusterRef, Kube
from k3smig_lib.k8s.lock import LockHeldError
from k3smig_lib.k8s.quiesce import restore
from k3smig_lib.k8s.volhelper import remaining
from k3smig_lib.runbook import runner
from k3smig_lib.runbook.record import ANCHOR_ANNOTATION, ANCHOR_NAMESPACE, anchor_name, verify_run
from k3smig_lib.runbook.rerender import rerender

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
import invariants  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PARAMS = REPO / "parameters" / "sandbox.yaml"

pytestmark = pytest.mark.integration


def summary(run_dir: Path, phase: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "artifacts" / phase / "phase_result.json").read_text())
    return data


@pytest.fixture(scope="module")
def live(sandbox, seeded, tmp_path_factory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("live")
    return {"source_kubeconfig": str(sandbox.kubeconfig), "target_kubeconfig": str(sandbox.kubeconfig),
            "export_dir": str(work / "export"), "runs": work / "runs"}


def run(live: dict[str, Any], phases: str | None = None, **extra: Any) -> runner.RunOutcome:
    overrides = {k: v for k, v in live.items() if k != "runs"} | extra
    return runner.run(PARAMS, phases=phases, runs_root=live["runs"], overrides=overrides)


def restore_source(sandbox: Any) -> list[str]:
    """Roll the source back: every workload k3smig quiesced gets its recorded replicas (other tests need it)."""
    kube = Kube.of(ClusterRef(str(sandbox.kubeconfig), "k3smig-source", "source"))
    restored = []
    for plural in ("deployments", "statefulsets"):
        for obj in kube.json("GET", f"/apis/apps/v1/{plural}", counter="lists").get("items") or []:
            meta = obj["metadata"]
            if PRE_QUIESCE in (meta.get("annotations") or {}):
                kind = "Deployment" if plural == "deployments" else "StatefulSet"
                restore(kube, kind, meta["namespace"], meta["name"])
                restored.append(f"{kind}/{meta['namespace']}/{meta['name']}")
    return restored


@pytest.fixture(scope="module")
def first(live, sandbox) -> Iterator[runner.RunOutcome]:
    yield run(live)
    assert len(restore_source(sandbox)) == 5


GRAFANA = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "grafana", "namespace": "monitoring"}}


def test_the_example_moves_to_the_target_with_a_pass_verdict(first, sandbox):
    assert (first.status, first.verdict) == ("Completed", "PASS"), first.failed_phase
    target = LiveTarget(ClusterRef(str(sandbox.kubeconfig), "k3smig-target", "target"))
    deploy = target.get(GRAFANA)
    assert deploy is not None
    assert deploy["spec"]["replicas"] == 1  # released: its volume was proven equal
    assert deploy["metadata"]["annotations"]["k3smig.io/data-verified"] == "true"
    secrets = summary(first.run_dir, "50_migrate_secrets")["summary"]
    assert secrets["keys equal on target"] > 10


def test_the_five_volumes_are_proven_every_held_workload_released_and_no_helper_left(first, sandbox):
    data = summary(first.run_dir, "70_migrate_data")
    assert data["summary"]["volumes verified"] == 5 and data["summary"]["workloads released"] == 5
    for side in ("source", "target"):
        assert remaining(Kube.of(ClusterRef(str(sandbox.kubeconfig), f"k3smig-{side}", side))) == []
    source = LiveSource(ClusterRef(str(sandbox.kubeconfig), "k3smig-source", "source"))
    quiesced = source.kube.json("GET", "/apis/apps/v1/namespaces/monitoring/deployments/grafana", counter="gets")
    assert quiesced["spec"]["replicas"] == 0  # the source is held down, its count recorded for rollback
    assert quiesced["metadata"]["annotations"]["k3smig.io/pre-quiesce-replicas"] == "1"
    with (first.run_dir / "artifacts" / "70_migrate_data" / "app_checks.csv").open() as fh:
        results = {row["check"]: row["result"] for row in csv.DictReader(fh)}
    assert results["vaultwarden keys, attachments, sends"] == "PASS" and results["grafana dashboards"] == "PASS"
    assert results["gitlab runner overlap"] == "PASS"  # held on the target until cutover


def test_phase_70_live_report_shows_release_downtime_and_links_each_volume_to_its_checksums(first):
    with (first.run_dir / "artifacts" / "70_migrate_data" / "released.csv").open() as fh:
        released = list(csv.DictReader(fh))
    assert {row["released"] for row in released} == {"PASS"}
    downtimes = [int(row["downtime (s)"]) for row in released if row.get("downtime (s)")]
    assert downtimes and summary(first.run_dir, "70_migrate_data")["summary"]["longest downtime (s)"] == max(downtimes)
    page = (first.run_dir / "70_migrate_data.html").read_text()
    links = set(re.findall(r'href="(artifacts/70_migrate_data/manifests/[^"]+)"', page))
    assert len(links) == 10 and all((first.run_dir / link).is_file() for link in links)
    assert 'title="' in page and " KiB</td>" in page  # byte counts for people, exact count in the tooltip
    assert "True</td>" not in page and "False</td>" not in page  # statuses worded, never a bare boolean


def test_the_live_run_reconciles_is_signed_and_anchored_on_the_target(first, sandbox):
    assert invariants.problems(first.run_dir) == []
    assert verify_run(first.run_dir, against_target=True) == []
    assert rerender(first.run_dir) == []
    target = LiveTarget(ClusterRef(str(sandbox.kubeconfig), "k3smig-target", "target"))
    record = target.get({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": anchor_name(first.run_dir.name), "namespace": ANCHOR_NAMESPACE}})
    assert record is not None and record["metadata"]["annotations"][ANCHOR_ANNOTATION] == f"sha256:{first.digest}"
    for page in first.run_dir.glob("*.html"):
        text = page.read_text()
        assert "<script" not in text and "cdnjs" not in text and str(REPO) not in text, page.name


def test_the_export_is_also_a_snapshot_folder(first, live):
    export = Path(live["export_dir"])
    assert (export / "cluster.yaml").is_file()
    assert any((export / "manifests").rglob("Deployment.yaml"))


def test_a_second_run_changes_nothing_and_sends_no_byte(first, live):
    second = run(live)
    assert second.verdict == "PASS"
    assert summary(second.run_dir, "60_deploy_applications")["summary"]["planned changes"] == 0
    assert summary(second.run_dir, "50_migrate_secrets")["summary"]["secrets written"] == 0
    assert summary(second.run_dir, "70_migrate_data")["summary"]["bytes sent"] == 0


def test_a_differing_target_object_is_a_conflict_until_update_is_asked(first, live, sandbox):
    target = LiveTarget(ClusterRef(str(sandbox.kubeconfig), "k3smig-target", "target"))
    cm = target.get({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "vaultwarden-env", "namespace": "vaultwarden"}})
    assert cm is not None
    changed = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "vaultwarden-env", "namespace": "vaultwarden"},
               "data": {**cm.get("data", {}), "SIGNUPS_ALLOWED": "changed-by-someone"}}
    target.server.apply(changed, dry_run=False, force=True)
    before = target.get(changed)["metadata"]["resourceVersion"]  # type: ignore[index]
    refused = run(live, phases="60")
    assert refused.status == "Failed" and refused.failed_phase == "60_deploy_applications"
    errors = summary(refused.run_dir, "60_deploy_applications")["errors"]
    assert any("vaultwarden-env" in e for e in errors)
    assert target.get(changed)["metadata"]["resourceVersion"] == before  # type: ignore[index]
    converged = run(live, phases="60", existing="update")
    assert converged.status == "Completed"
    assert target.get(changed)["data"]["SIGNUPS_ALLOWED"] != "changed-by-someone"  # type: ignore[index]


def test_a_second_concurrent_run_is_refused_and_names_the_holder(first, live, sandbox):
    target = LiveTarget(ClusterRef(str(sandbox.kubeconfig), "k3smig-target", "target"))
    other = target.lock("someone-elses-run")
    other.acquire()
    try:
        before = sorted(p.name for p in live["runs"].iterdir())
        with pytest.raises(LockHeldError, match="someone-elses-run"):
            run(live, phases="60")
        assert sorted(p.name for p in live["runs"].iterdir()) == before
    finally:
        other.release()


def test_preflight_refuses_a_target_that_is_the_source(live):
    outcome = run(live, phases="00", target_context="k3smig-source")
    assert outcome.failed_phase == "00_preflight"
    errors = " ".join(summary(outcome.run_dir, "00_preflight")["errors"])
    assert "target identical to source" in errors


def test_preflight_names_a_missing_credential_without_any_value(live, monkeypatch):
    monkeypatch.delenv("SCW_ACCESS_KEY", raising=False)
    monkeypatch.delenv("SCW_SECRET_KEY", raising=False)
    outcome = run(live, phases="00", manage_dns=True)
    errors = " ".join(summary(outcome.run_dir, "00_preflight")["errors"])
    assert outcome.failed_phase == "00_preflight" and "SCW_SECRET_KEY is not set" in errors


def test_preflight_refuses_a_source_identity_without_the_permissions_it_needs(live, sandbox, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))  # tests/integration is not a package
    from test_live_source import _delete_namespace, _narrow_service_account

    narrow = _narrow_service_account(sandbox, "k3smig-narrow-preflight", tmp_path)
    try:
        outcome = run(live, phases="00", source_kubeconfig=str(narrow))
    finally:
        _delete_namespace(sandbox, "k3smig-narrow-preflight")
    assert outcome.failed_phase == "00_preflight"
    errors = " ".join(summary(outcome.run_dir, "00_preflight")["errors"])
    assert "list secrets (all namespaces) denied" in errors and "a ClusterRole rule" in errors
