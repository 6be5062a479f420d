"""The phases of a run and the facts about them that the runner, the reports and the index share.

Kept apart from :mod:`k3smig_lib.phases._base` (which every phase notebook uses, with pandas and the
table helpers) so that the runner process, which only orders phases and reads their results, does not
import pandas: it is the public face of ``phases`` for the ``runbook`` layer.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from k3smig_lib.core.config import Settings
from k3smig_lib.core.status import ReportStatus

__all__ = ["FINDINGS", "PHASES", "RESULT_FILE", "PhaseStatus", "ReportStatus", "now_iso", "phase_dir",
           "read_result", "report_status"]


class PhaseStatus(StrEnum):
    """A phase's (and a run's) three outcomes, as ``phase_result.json`` and ``run.json`` record them."""

    COMPLETED = "Completed"
    PARTIALLY_FAILED = "PartiallyFailed"
    FAILED = "Failed"


PHASES = (
    "00_preflight",
    "10_provision_infrastructure",
    "20_configure_k3s",
    "30_inventory_source",
    "40_export_manifests",
    "50_migrate_secrets",
    "60_deploy_applications",
    "70_migrate_data",
    "80_configure_network",
    "90_validate_migration",
)


RESULT_FILE = "phase_result.json"
#: Lists of findings a phase keeps; each item remembers the report cell (method) that found it.
FINDINGS = ("errors", "warnings", "notes", "degraded")


def report_status(result: dict[str, Any]) -> ReportStatus:
    """A phase's outcome in the reports' one vocabulary: FAIL, NOT RUN, DEGRADED or PASS.

    FAIL on any error; NOT RUN when the phase said it did nothing (with its reason); DEGRADED when it ran
    with less power than asked (a structural check instead of the real tool) or left warnings; PASS else.

    Examples:
        >>> report_status({"status": "Completed", "not_run": "no VM"}), report_status({"warnings": ["w"]})
        (<ReportStatus.NOT_RUN: 'NOT RUN'>, <ReportStatus.DEGRADED: 'DEGRADED'>)
    """
    if result.get("status") == PhaseStatus.FAILED or result.get("errors"):
        return ReportStatus.FAIL
    if result.get("not_run"):
        return ReportStatus.NOT_RUN
    if result.get("degraded") or result.get("warnings"):
        return ReportStatus.DEGRADED
    return ReportStatus.PASS


def now_iso() -> str:
    """UTC timestamp with seconds, as every artifact records it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def phase_dir(cfg: Settings, phase: str) -> Path:
    """``<run>/artifacts/<phase>``."""
    return cfg.run_path() / "artifacts" / phase


def read_result(cfg: Settings, phase: str) -> dict[str, Any] | None:
    """The ``phase_result.json`` of an earlier phase, or ``None`` when it has not run in this run folder."""
    path = phase_dir(cfg, phase) / RESULT_FILE
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data
