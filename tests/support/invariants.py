"""Cross-report invariants: the numbers of one run must reconcile across its phases (issue 11).

``problems(run_dir)`` reads only the run's own files (phase results, CSV tables, the ledger) and
returns every figure that disagrees with another; the demo test and the live pipeline test both call it.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

FINDINGS = ("errors", "warnings", "notes", "degraded")


def result(run_dir: Path, phase: str) -> dict[str, Any]:
    path = run_dir / "artifacts" / phase / "phase_result.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def table(run_dir: Path, phase: str, name: str) -> list[dict[str, str]]:
    path = run_dir / "artifacts" / phase / f"{name}.csv"
    if not path.is_file():
        return []
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _phase_counts(run_dir: Path, ledger: dict[str, Any]) -> list[str]:
    """90's table of phases shows, for each phase, the counts of that phase's own record and result."""
    out = []
    records = {r["phase"]: r for r in ledger.get("phases", [])}
    for row in table(run_dir, "90_validate_migration", "phases"):
        res, rec = result(run_dir, row["phase"]), records.get(row["phase"], {})
        for kind in FINDINGS:
            if kind in row and row[kind] != "":
                shown, own, recorded = int(row[kind]), len(res.get(kind) or []), len(rec.get(kind) or [])
                if not shown == own == recorded:
                    out.append(f"{row['phase']}: 90 shows {shown} {kind}, the phase result {own}, "
                               f"the ledger {recorded}")
        if res and not row["status"].startswith(res.get("report_status", "?")):
            out.append(f"{row['phase']}: 90 shows status {row['status']!r}, the phase {res.get('report_status')!r}")
    lint = result(run_dir, "00_preflight")
    if lint and lint["summary"].get("lint warnings") is not None:
        warned = sum(1 for r in table(run_dir, "00_preflight", "compatibility") if r["severity"] == "warning")
        if not lint["summary"]["lint warnings"] == warned == len(lint.get("notes") or []):
            out.append(f"00: lint warnings {lint['summary']['lint warnings']}, compatibility table {warned}, "
                       f"notes {len(lint.get('notes') or [])}")
    return out


def _secret_keys(run_dir: Path) -> list[str]:
    """keys compared + keys without data = keys fingerprinted; and the comparison table has exactly those rows."""
    res = result(run_dir, "50_migrate_secrets")
    summary = res.get("summary") or {}
    if "keys compared" not in summary:
        return [] if not res or not res.get("apply", True) else ["50: no comparison of keys recorded"]
    out = []
    compared, without, fingerprinted = summary["keys compared"], summary["keys without data"], \
        summary["keys fingerprinted"]
    if compared + without != fingerprinted:
        out.append(f"50: keys compared {compared} + keys without data {without} != keys fingerprinted {fingerprinted}")
    ledger = [r for r in table(run_dir, "50_migrate_secrets", "ledger_source") if r["action"] == "migrate" and r["key"]]
    if len(ledger) != fingerprinted:
        out.append(f"50: {len(ledger)} migrating keys in the source ledger, summary says {fingerprinted}")
    rows = [r for r in table(run_dir, "50_migrate_secrets", "ledger_compare") if r["key"]]
    if len(rows) != compared + without:
        out.append(f"50: the comparison table has {len(rows)} keyed rows, the summary {compared} + {without}")
    written = [r for r in table(run_dir, "50_migrate_secrets", "apply") if r["ref_id"].startswith("Secret/")
               and r["action"] in ("create", "update")]
    if "secrets written" in summary and summary["secrets written"] != len(written):
        out.append(f"50: secrets written {summary['secrets written']} but {len(written)} Secrets in the apply table")
    return out


def _capacity(run_dir: Path) -> list[str]:
    """One CPU and memory total: the capacity table, the summary and the compatibility lint agree."""
    summary = result(run_dir, "00_preflight").get("summary") or {}
    rows = {r["resource"]: float(r["needed"]) for r in table(run_dir, "00_preflight", "capacity")}
    out = []
    for resource, rule in (("CPU requests (cores)", "cpu-capacity"), ("memory requests (GiB)", "memory-capacity")):
        lint = next((r for r in table(run_dir, "00_preflight", "compatibility") if r["id"] == rule), None)
        said = float(re.search(r"request ([0-9.]+)", lint["message"]).group(1)) if lint else None
        if resource not in rows or summary.get(resource) is None:
            out.append(f"00: {resource} missing from the capacity table or the summary")
            continue
        if not (abs(rows[resource] - float(summary[resource])) < 0.01 and said is not None
                and abs(rows[resource] - said) < 0.01):
            out.append(f"00: {resource}: capacity table {rows[resource]}, summary {summary[resource]}, lint {said}")
    return out


def _certificates(run_dir: Path) -> list[str]:
    """A certificate past its expiry (at the time the phase judged it) is never shown as kept."""
    out = []
    judged = str((result(run_dir, "80_configure_network").get("summary") or {}).get("judged at", ""))[:10]
    for row in table(run_dir, "80_configure_network", "certificates"):
        if judged and row["not after"] and row["not after"] < judged and row["on the target"] == "kept":
            out.append(f"80: {row['certificate']} expired on {row['not after']} but shows kept")
    return out


def problems(run_dir: Path) -> list[str]:
    """Every cross-report disagreement of one run (empty: the numbers reconcile)."""
    ledger = json.loads((run_dir / "run.json").read_text())
    return _phase_counts(run_dir, ledger) + _secret_keys(run_dir) + _capacity(run_dir) + _certificates(run_dir)
