"""``k3smig report``: render a run's HTML again from its executed notebooks, and check it against the ledger.

Reports are derived, not hand-made: every page is a function of the run's own files
(:mod:`k3smig_lib.runbook.report`, :mod:`k3smig_lib.runbook.index`), so rendering them again must
give the bytes the ledger recorded. A page that differs was edited after the run (or rendered by
another k3smig version: the ledger names the one that ran).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from k3smig_lib.core.fsafe import atomic_write
from k3smig_lib.runbook.index import render_index
from k3smig_lib.runbook.ledger import read_ledger
from k3smig_lib.runbook.report import render_phase

_NOT_HEADER = ("phases", "files", "ledger_hash")


def rendered_pages(run_dir: Path) -> dict[str, str]:
    """Every HTML page of the run, rendered now from its files: ``{"40_export_manifests.html": "<!doctype…"}``."""
    ledger = read_ledger(run_dir)
    header: dict[str, Any] = {k: v for k, v in ledger.items() if k not in _NOT_HEADER}
    records: list[dict[str, Any]] = list(ledger.get("phases", []))
    pages = {f"{phase}.html": render_phase(run_dir, phase, header)
             for phase in dict.fromkeys(r["phase"] for r in records) if (run_dir / f"{phase}.ipynb").is_file()}
    pages["index.html"] = render_index(header, records, str(ledger.get("verdict", "")))
    return pages


def rerender(run_dir: Path, *, out: Path | None = None) -> list[str]:
    """Render every page again; return how they differ from the ledger (empty = identical).

    Args:
        run_dir: the run folder (never written to).
        out: a folder to write the pages into as well (for a reader without k3smig's own files).

    Raises:
        LedgerError: the ledger is missing or unreadable.
    """
    recorded: dict[str, str] = read_ledger(run_dir).get("files", {})
    problems = []
    for name, text in rendered_pages(run_dir).items():
        digest = hashlib.sha256(text.encode()).hexdigest()
        if name not in recorded:
            problems.append(f"{name}: not in the ledger")
        elif recorded[name] != digest:
            problems.append(f"{name}: the re-rendered page differs from the one the ledger recorded")
        if out is not None:
            atomic_write(out, name, text)
    return problems
