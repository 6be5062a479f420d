"""The reports' one vocabulary and how phase 90 turns the phases' results into the run's verdict.

Results are written by the real :meth:`PhaseRun.finish` into a run folder and read back as phase 90
reads them: FAIL beats NOT RUN beats DEGRADED beats PASS for one phase; for the run, any failed area
fails the verdict, a phase that did not run in this run folder fails the phases area, and what ran with
less than asked turns PASS into "PASS with notes".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.core.config import Settings
from k3smig_lib.errors import PhaseError
from k3smig_lib.phases import validate
from k3smig_lib.phases._base import PhaseRun
from k3smig_lib.phases.catalog import PHASES, PhaseStatus, ReportStatus, read_result, report_status
from k3smig_lib.phases.validate import AREAS, verdict_of

EARLIER = PHASES[:-1]


def settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(run_dir=str(tmp_path / "run"), target_dir=str(tmp_path / "target"), **extra)  # type: ignore[arg-type]


def finished(cfg: Settings, phase: str, **findings: Any) -> dict[str, Any]:
    """Finish ``phase`` with these findings (lists, or ``not_run``) and return its result as written."""
    run = PhaseRun(cfg=cfg, phase=phase)
    for kind, value in findings.items():
        setattr(run, kind, value)
    if findings.get("errors"):
        with pytest.raises(PhaseError):
            run.finish()
    else:
        run.finish()
    result = read_result(cfg, phase)
    assert result is not None
    return result


@pytest.mark.parametrize(("findings", "status", "word"), [
    ({}, "Completed", "PASS"),
    ({"notes": ["3 review items"]}, "Completed", "PASS"),  # to read, no failure
    ({"warnings": ["w"]}, "PartiallyFailed", "DEGRADED"),
    ({"degraded": ["structural check only"]}, "Completed", "DEGRADED"),
    ({"not_run": "no VM", "warnings": ["w"]}, "PartiallyFailed", "NOT RUN"),  # did nothing: its warnings moot
    ({"errors": ["e"], "not_run": "no VM", "warnings": ["w"]}, "Failed", "FAIL"),  # an error beats everything
])
def test_a_phase_result_carries_its_status_in_the_one_vocabulary(tmp_path, findings, status, word):
    result = finished(settings(tmp_path), "30_inventory_source", **findings)
    assert (result["status"], result["report_status"]) == (status, word)  # plain strings in the JSON
    assert report_status(result) is ReportStatus(word) and PhaseStatus(result["status"]) == status


def test_a_failed_status_alone_is_a_fail_as_the_runner_records_a_phase_that_stopped():
    assert report_status({"phase": "70_migrate_data", "status": "Failed"}) is ReportStatus.FAIL
    assert report_status({"status": PhaseStatus.COMPLETED, "errors": []}) is ReportStatus.PASS
    assert json.dumps([ReportStatus.NOT_RUN, PhaseStatus.PARTIALLY_FAILED]) == '["NOT RUN", "PartiallyFailed"]'


@pytest.mark.parametrize(("checks", "degraded", "apply", "verdict"), [
    ({"objects": True, "phases": True}, [], True, "PASS"),
    ({"objects": True, "phases": True}, ["phase 30 is DEGRADED"], True, "PASS with notes"),
    ({"objects": True, "phases": False}, ["phase 30 is DEGRADED"], True, "FAIL"),  # FAIL beats DEGRADED
    ({}, [], True, "FAIL"),  # nothing checked is no pass
    ({"objects": False}, [], False, "PLAN ONLY"),  # a dry run wrote nothing: nothing to judge
])
def test_the_verdict_of_the_areas(checks, degraded, apply, verdict):
    assert verdict_of(checks, degraded, apply=apply) == verdict


def write_all(cfg: Settings, **special: dict[str, Any]) -> None:
    """A result for every earlier phase: PASS unless ``special`` gives its findings (``None``: not run)."""
    for phase in EARLIER:
        findings = special.get(phase[:2], {})
        if findings is not None:
            finished(cfg, phase, **findings)


def phases_table(cfg: Settings) -> tuple[validate.Validate, dict[str, dict[str, Any]]]:
    phase = validate.start(cfg)
    frame = phase.phases()
    return phase, {str(r["phase"]): dict(r) for _, r in frame.iterrows()}


def test_every_earlier_phase_is_listed_with_its_status_and_counts(tmp_path):
    cfg = settings(tmp_path, apply=True)
    write_all(cfg, **{"10": {"not_run": "no plan: no tofu"}, "20": {"not_run": "no VM"},
                      "30": {"warnings": ["a", "b"]}, "40": {"notes": ["n1", "n2", "n3"]},
                      "70": {"degraded": ["prometheus config checked for structure only"]}})
    phase, rows = phases_table(cfg)
    assert [r for r in rows] == list(EARLIER)
    assert rows["00_preflight"]["status"] == "PASS"
    assert rows["10_provision_infrastructure"]["status"] == "NOT RUN: no plan: no tofu"
    assert (rows["30_inventory_source"]["status"], rows["30_inventory_source"]["warnings"]) == ("DEGRADED", 2)
    assert (rows["40_export_manifests"]["status"], rows["40_export_manifests"]["notes"]) == ("PASS", 3)
    assert (rows["70_migrate_data"]["status"], rows["70_migrate_data"]["degraded"]) == ("DEGRADED", 1)
    assert phase.checks["phases"] is True  # NOT RUN with a reason (no VM) and DEGRADED are no failure
    assert phase.degraded == ["phase 30_inventory_source is DEGRADED (see its report)",
                              "phase 70_migrate_data is DEGRADED (see its report)"]
    assert verdict_of({"phases": phase.checks["phases"]}, phase.degraded, apply=True) == "PASS with notes"


def test_a_failed_phase_fails_the_phases_area_even_among_degraded_ones(tmp_path):
    cfg = settings(tmp_path, apply=True)
    write_all(cfg, **{"30": {"warnings": ["w"]}, "60": {"errors": ["1 conflict"]}})
    phase, rows = phases_table(cfg)
    assert rows["60_deploy_applications"]["status"] == "FAIL" and rows["60_deploy_applications"]["errors"] == 1
    assert phase.checks["phases"] is False
    assert verdict_of({"phases": phase.checks["phases"]}, phase.degraded, apply=True) == "FAIL"


def test_a_phase_missing_from_the_run_folder_fails_the_phases_area(tmp_path):
    cfg = settings(tmp_path, apply=True)
    write_all(cfg, **{"80": None})
    phase, rows = phases_table(cfg)
    assert rows["80_configure_network"]["status"] == "NOT RUN: not run in this run folder"
    assert not any(str(r["status"]).startswith("FAIL") for r in rows.values())
    assert phase.checks["phases"] is False


def test_the_verdict_checks_every_area_itself_and_names_the_failed_ones_in_order(tmp_path):
    cfg = settings(tmp_path, apply=True)  # nothing migrated: an empty target, no data phase, no earlier phase
    phase = validate.start(cfg)
    table = phase.verdict()  # the first cell run: it asks every area for its check
    assert list(table.columns) == ["verdict", "objects", "secrets", "volumes", "applications", "phases"]
    assert table.iloc[0].to_dict() == {"verdict": "FAIL", "objects": "FAIL", "secrets": "FAIL", "volumes": "FAIL",
                                       "applications": "FAIL", "phases": "FAIL"}
    assert phase.errors == ["failed checks: objects, secrets, volumes, applications, phases"]
    assert phase.where["errors"] == ["verdict"]
    saved = json.loads((phase.dir / "verdict.json").read_text())
    assert saved["verdict"] == "FAIL" and set(saved["checks"]) == set(AREAS) - {"health"}  # a folder target
    assert not any(saved["checks"].values())
    assert phase.verdict() is table and len(phase.errors) == 1  # run again: same table, the error once


def test_a_dry_run_gives_plan_only_and_no_error(tmp_path):
    phase = validate.start(settings(tmp_path, apply=False))
    assert phase.verdict().iloc[0]["verdict"] == "PLAN ONLY" and phase.errors == []
    assert validate.load_verdict(phase.cfg) == "PLAN ONLY"
