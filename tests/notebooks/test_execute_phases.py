"""Every phase notebook runs under papermill with parameters/ci.yaml, end to end, twice.

These are the demo's own code paths on the bundled example: a directory target in a temp folder, real
SQLite databases, real tar archives, the real leak gate and ledger.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from k3smig_lib.core.config import Settings
from k3smig_lib.core.leakgate import scan
from k3smig_lib.phases.catalog import PHASES
from k3smig_lib.runbook import runner
from k3smig_lib.runbook.ledger import verify
from k3smig_lib.runbook.record import verify_run
from k3smig_lib.runbook.rerender import rerender
from k3smig_lib.runbook.runner import leak_values

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "parameters" / "ci.yaml"

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("ci-run")


@pytest.fixture(scope="module")
def first_run(workdir):
    return runner.run(CI, runs_root=workdir / "runs", overrides={"target_dir": str(workdir / "target")})


@pytest.fixture(scope="module")
def second_run(first_run, workdir):
    return runner.run(CI, runs_root=workdir / "runs", overrides={"target_dir": str(workdir / "target")})


def result(run_dir, phase):
    return json.loads((run_dir / "artifacts" / phase / "phase_result.json").read_text())


def test_all_ten_phases_complete_with_a_pass_verdict(first_run):
    assert first_run.failed_phase == ""
    assert first_run.verdict == "PASS"
    statuses = {p: result(first_run.run_dir, p)["status"] for p in PHASES}
    assert set(statuses.values()) <= {"Completed", "PartiallyFailed"}, statuses


def test_index_links_ten_reports_and_notebooks(first_run):
    index = (first_run.run_dir / "index.html").read_text()
    for phase in PHASES:
        assert f"{phase}.html" in index
        assert (first_run.run_dir / f"{phase}.html").stat().st_size > 5_000
        assert (first_run.run_dir / f"{phase}.ipynb").is_file()


def test_no_secret_value_anywhere_in_the_run(first_run, workdir):
    cfg = Settings(target_dir=str(workdir / "target"))
    report = scan(first_run.run_dir, leak_values(cfg, "0" * 64))
    assert report.ok and report.values_checked > 20 and report.files_scanned > 100


def test_ledger_verifies_and_catches_one_changed_byte(first_run, tmp_path):
    import shutil

    assert verify(first_run.run_dir) == []
    copy = tmp_path / "copy"
    shutil.copytree(first_run.run_dir, copy)
    target = copy / "artifacts" / "70_migrate_data" / "manifest_compare.csv"
    data = bytearray(target.read_bytes())
    data[-2] ^= 0x01
    target.write_bytes(bytes(data))
    assert verify(copy) == ["changed: artifacts/70_migrate_data/manifest_compare.csv"]


def test_reports_show_the_evidence(first_run):
    d = first_run.run_dir
    assert "risk" in (d / "30_inventory_source.html").read_text().lower()
    export = (d / "40_export_manifests.html").read_text()
    assert "W1" in export and "M6" in export and "T1" in export
    data = (d / "70_migrate_data.html").read_text()
    assert "integrity ok" in data and "grafana dashboards" in data
    assert "PASS" in (d / "90_validate_migration.html").read_text()


def test_the_second_run_changes_nothing(second_run):
    assert second_run.verdict == "PASS"
    deploy = result(second_run.run_dir, "60_deploy_applications")["summary"]
    assert deploy["planned changes"] == 0
    secrets = result(second_run.run_dir, "50_migrate_secrets")["summary"]
    assert secrets["secrets written"] == 0
    transfer = (second_run.run_dir / "artifacts" / "70_migrate_data" / "transfer.csv").read_text()
    assert "whole volume" not in transfer and transfer.count("nothing sent") >= 5


@pytest.mark.parametrize("phase", ["30_inventory_source", "40_export_manifests"])
def test_a_notebook_runs_with_the_plain_papermill_cli(phase, tmp_path):
    out = tmp_path / f"{phase}.ipynb"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / f"{phase}.ipynb"), str(out),
                           "-p", "run_dir", str(tmp_path / "run"), "-p", "environment", "ci"],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result(tmp_path / "run", phase)["status"] in ("Completed", "PartiallyFailed")


def test_a_stale_target_volume_fails_the_data_phase_and_resume_finishes_the_run(tmp_path):
    import shutil

    target = tmp_path / "target"
    stale = target / "volumes" / "vaultwarden" / "vaultwarden-data"
    stale.mkdir(parents=True)
    (stale / "KIBISHII-MARKER").write_text("left by an earlier run")
    failed = runner.run(CI, runs_root=tmp_path / "runs", overrides={"target_dir": str(target)})
    assert (failed.status, failed.failed_phase) == ("Failed", "70_migrate_data")
    errors = " ".join(result(failed.run_dir, "70_migrate_data")["errors"])
    assert "vaultwarden/vaultwarden-data" in errors and "holds other data" in errors
    assert not (failed.run_dir / "80_configure_network.ipynb").exists()
    assert verify(failed.run_dir) == []  # a failed run keeps a complete ledger too

    shutil.rmtree(stale)  # the operator's fix, as the error says
    resumed = runner.resume(failed.run_dir)
    assert (resumed.status, resumed.verdict) == ("Completed", "PASS")
    assert not (stale / "KIBISHII-MARKER").exists()
    ledger = json.loads((resumed.run_dir / "run.json").read_text())
    phases = [p["phase"] for p in ledger["phases"]]
    assert phases.count("70_migrate_data") == 2 and phases[-1] == "90_validate_migration"
    assert verify(resumed.run_dir) == []
    assert verify_run(resumed.run_dir) == [] and rerender(resumed.run_dir) == []  # signed again, pages derived
