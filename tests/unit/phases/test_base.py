"""Phase artifacts stay inside the run folder and are written whole."""

import json

import pandas as pd
import pytest

from k3smig_lib.core.config import Settings
from k3smig_lib.errors import UnsafePathError
from k3smig_lib.phases._base import PhaseRun


def test_artifacts_are_written_under_the_phase_folder(tmp_path):
    run = PhaseRun(cfg=Settings(run_dir=str(tmp_path / "run")), phase="40_export_manifests")
    run.save_table("overview", pd.DataFrame([{"a": 1}]))
    run.save_text("diffs/ConfigMap__shop__cfg.diff", "x")
    run.finish()
    folder = tmp_path / "run" / "artifacts" / "40_export_manifests"
    result = json.loads((folder / "phase_result.json").read_text())
    assert result["artifacts"] == ["diffs/ConfigMap__shop__cfg.diff", "overview.csv"]
    assert (folder / "overview.csv").read_text() == "a\n1\n"


@pytest.mark.parametrize("name", ["../../../PWNED-key", "prometheus/../../../../PWNED", "/etc/PWNED"])
def test_an_artifact_name_that_leaves_the_run_folder_is_refused(tmp_path, name):
    run = PhaseRun(cfg=Settings(run_dir=str(tmp_path / "run")), phase="70_migrate_data")
    with pytest.raises(UnsafePathError):
        run.save_text(name, "x")
    assert list(tmp_path.rglob("*PWNED*")) == []


def test_a_symlink_planted_in_the_run_folder_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "run" / "artifacts" / "70_migrate_data"
    folder.mkdir(parents=True)
    (folder / "prometheus").symlink_to(outside)
    run = PhaseRun(cfg=Settings(run_dir=str(tmp_path / "run")), phase="70_migrate_data")
    with pytest.raises(UnsafePathError, match="symlink"):
        run.save_text("prometheus/prometheus.yml", "x")
    assert list(outside.iterdir()) == []
