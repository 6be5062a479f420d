"""What every phase shares: its artifact folder, its tables, its three-outcome result.

Phases hand results to later phases only through files (``artifacts/<phase>/phase_result.json`` plus
artifacts), never through kernel state, so any notebook can run alone, resume, or be audited later.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from k3smig_lib.core.config import Settings
from k3smig_lib.core.fsafe import atomic_write
from k3smig_lib.errors import PhaseError

Status = Literal["Completed", "PartiallyFailed", "Failed"]

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


@dataclass
class PhaseRun:
    """State of one phase while its notebook runs: findings, tables written, outcome.

    Args:
        cfg: the run settings.
        phase: phase name (``40_export_manifests``).
    """

    cfg: Settings
    phase: str
    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=now_iso)
    summary: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # reports are read in full: show whole tables (a few hundred rows at most), not pandas' 60-row cut
        pd.set_option("display.max_rows", 2000)
        pd.set_option("display.max_columns", 50)
        pd.set_option("display.max_colwidth", 160)
        pd.set_option("display.width", 200)

    @property
    def dir(self) -> Path:
        """Artifact folder of this phase (created on first use)."""
        path = phase_dir(self.cfg, self.phase)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _write(self, name: str, data: str) -> Path:
        """Write one artifact of this phase, confined to the run folder and atomic (see fsafe)."""
        path = atomic_write(self.cfg.run_path(), f"artifacts/{self.phase}/{name}", data)
        if name not in self.artifacts:
            self.artifacts.append(name)
        return path

    def save_table(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Write ``frame`` as ``<name>.csv`` and return it for display."""
        self._write(f"{name}.csv", frame.to_csv(index=False))
        return frame

    def save_json(self, name: str, data: Any) -> Path:
        """Write ``data`` as pretty, sorted JSON (stable bytes for the ledger)."""
        return self._write(name, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")

    def save_text(self, name: str, text: str) -> Path:
        """Write a text artifact (manifests, diffs, rendered inventories).

        Raises:
            UnsafePathError: ``name`` would leave the phase's artifact folder (``..``, a symlink).
        """
        return self._write(name, text)

    @property
    def status(self) -> Status:
        """Failed on any error, PartiallyFailed on warnings, else Completed."""
        if self.errors:
            return "Failed"
        return "PartiallyFailed" if self.warnings else "Completed"

    def finish(self) -> pd.DataFrame:
        """Write ``phase_result.json`` and return the outcome as a table.

        Raises:
            PhaseError: the phase failed; the notebook stops here and the runner stops the run.
        """
        result = {
            "phase": self.phase,
            "status": self.status,
            "apply": self.cfg.apply,
            "started": self.started_at,
            "finished": now_iso(),
            "seconds": round(time.monotonic() - self.started, 3),
            "summary": self.summary,
            "errors": self.errors,
            "warnings": self.warnings,
            "artifacts": sorted(self.artifacts),
        }
        atomic_write(self.cfg.run_path(), f"artifacts/{self.phase}/{RESULT_FILE}",
                     json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
        rows = [{"item": "status", "value": self.status}]
        rows += [{"item": k, "value": v} for k, v in self.summary.items()]
        rows += [{"item": "error", "value": e} for e in self.errors]
        rows += [{"item": "warning", "value": w} for w in self.warnings]
        if self.errors:
            raise PhaseError(
                f"phase {self.phase} failed: " + "; ".join(self.errors[:3]),
                phase=self.phase[:2],
                fix="read the tables above; the report lists each failed check and its fix",
            )
        return pd.DataFrame(rows)
