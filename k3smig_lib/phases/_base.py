"""What every phase shares: its artifact folder, its tables, its three-outcome result.

Phases hand results to later phases only through files (``artifacts/<phase>/phase_result.json`` plus
artifacts), never through kernel state, so any notebook can run alone, resume, or be audited later.
Within a phase, a report cell that needs another cell's work asks for it (:func:`step` does that work
once), so after ``start()`` the cells give the same tables in any order.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import pandas as pd

from k3smig_lib.core import htmltable
from k3smig_lib.core.config import Settings
from k3smig_lib.core.fsafe import atomic_write
from k3smig_lib.core.paths import scrub
from k3smig_lib.errors import PhaseError
from k3smig_lib.phases.catalog import FINDINGS, RESULT_FILE, PhaseStatus, now_iso, phase_dir, report_status

_T = TypeVar("_T")
_P = TypeVar("_P", bound="PhaseRun")


def step(method: Callable[[_P], _T]) -> Callable[[_P], _T]:
    """A report cell whose work is done once per phase object, so the cells can run in any order.

    The first call does the work and keeps what it returns; a later call (the cell run again, or a cell
    that needs this one first: a chart its table, the go/no-go every check) returns the same table without
    doing the work again or recording its findings twice. A step that raised is tried again. ``start()``
    again to redo a phase. While the work runs, :attr:`PhaseRun.current_step` names the step.
    """
    name = method.__name__

    @functools.wraps(method)
    def call(self: _P) -> _T:
        if name not in self.done:
            outer, self.current_step = self.current_step, name
            try:
                self.done[name] = method(self)
            finally:
                self.current_step = outer
        return cast(_T, self.done[name])

    return call


def _located(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a report cell's method so the findings it adds remember it (the report links them to its table)."""

    @functools.wraps(method)
    def call(self: PhaseRun, *args: Any, **kwargs: Any) -> Any:
        before = {kind: len(getattr(self, kind)) for kind in FINDINGS}
        try:
            return method(self, *args, **kwargs)
        finally:
            for kind in FINDINGS:
                where = self.where.setdefault(kind, [])
                where += [""] * (before[kind] - len(where))
                where += [name] * (len(getattr(self, kind)) - len(where))

    return call


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
    #: Findings to read that are no failure (lint warnings, review items): they leave the status alone.
    notes: list[str] = field(default_factory=list)
    #: Checks that ran with less power than asked (e.g. a structural Prometheus check without promtool).
    degraded: list[str] = field(default_factory=list)
    #: Why the phase did nothing (plan not possible, no VM); empty when it ran.
    not_run: str = ""
    #: For each finding list, the report cell (method) that added each item.
    where: dict[str, list[str]] = field(default_factory=dict)
    #: What each :func:`step` returned, by step name (its work is done once).
    done: dict[str, Any] = field(default_factory=dict, repr=False)
    #: The :func:`step` whose work runs now ("" outside one).
    current_step: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and name != "finish" and callable(member) and not isinstance(
                    member, staticmethod | classmethod | type):
                setattr(cls, name, _located(name, member))

    def __post_init__(self) -> None:
        # reports are read in full: show whole tables (a few hundred rows at most), not pandas' 60-row cut
        pd.set_option("display.max_rows", 2000)
        pd.set_option("display.max_columns", 50)
        pd.set_option("display.max_colwidth", 160)
        pd.set_option("display.width", 200)
        htmltable.install()  # tables for people: no row numbers, statuses worded, long tables folded

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

    def save_table(self, name: str, frame: pd.DataFrame, *, links: dict[str, str] | None = None,
                   sizes: tuple[str, ...] = ()) -> pd.DataFrame:
        """Write ``frame`` as ``<name>.csv`` and return it for display.

        Args:
            name: file name without ``.csv``.
            frame: the table.
            links: column → folder of this phase's artifacts its values name (diffs, manifests): the report
                links each cell to its file.
            sizes: columns of byte counts: the report shows them in KiB/MiB/GiB, the CSV keeps the exact count.
        """
        self._write(f"{name}.csv", frame.to_csv(index=False))
        frame.attrs["csv"] = f"artifacts/{self.phase}/{name}.csv"
        if links:
            frame.attrs["links"] = {col: f"artifacts/{self.phase}/{folder}" for col, folder in links.items()}
        if sizes:
            frame.attrs["sizes"] = list(sizes)
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
    def status(self) -> PhaseStatus:
        """Failed on any error, PartiallyFailed on warnings, else Completed."""
        if self.errors:
            return PhaseStatus.FAILED
        return PhaseStatus.PARTIALLY_FAILED if self.warnings else PhaseStatus.COMPLETED

    def _where_of(self, kind: str) -> list[str]:
        """The report cell of each finding of ``kind`` ("" when it was found outside a report cell)."""
        items: list[str] = getattr(self, kind)
        return (self.where.get(kind, []) + [""] * len(items))[: len(items)]

    def finish(self) -> pd.DataFrame:
        """Write ``phase_result.json`` and return the outcome as a table.

        Raises:
            PhaseError: the phase failed; the notebook stops here and the runner stops the run.
        """
        for kind in FINDINGS:  # machine paths out of every text a report shows (the phase result is one)
            getattr(self, kind)[:] = [scrub(str(item)) for item in getattr(self, kind)]
        self.summary = {k: scrub(v) if isinstance(v, str) else v for k, v in self.summary.items()}
        self.not_run = scrub(self.not_run)
        result: dict[str, Any] = {
            "phase": self.phase,
            "status": self.status,
            "apply": self.cfg.apply,
            "started": self.started_at,
            "finished": now_iso(),
            "seconds": round(time.monotonic() - self.started, 3),
            "summary": self.summary,
            "errors": self.errors,
            "warnings": self.warnings,
            "notes": self.notes,
            "degraded": self.degraded,
            "not_run": self.not_run,
            "where": {kind: self._where_of(kind) for kind in FINDINGS},
            "artifacts": sorted(self.artifacts),
        }
        result["report_status"] = report_status(result)
        atomic_write(self.cfg.run_path(), f"artifacts/{self.phase}/{RESULT_FILE}",
                     json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
        status = str(result["report_status"]) + (f": {self.not_run}" if self.not_run else "")
        rows = [{"item": "status", "value": status}]
        rows += [{"item": k, "value": v} for k, v in self.summary.items()]
        rows += [{"item": "error", "value": e} for e in self.errors]
        rows += [{"item": "warning", "value": w} for w in self.warnings]
        rows += [{"item": "degraded", "value": d} for d in self.degraded]
        rows += [{"item": "note", "value": n} for n in self.notes]
        if self.errors:
            raise PhaseError(
                f"phase {self.phase} failed: " + "; ".join(self.errors[:3]),
                phase=self.phase[:2],
                fix="read the tables above; the report lists each failed check and its fix",
            )
        return pd.DataFrame(rows)
