"""The run ledger (``run.json``): sha256 of every file of the run, phase records chained by hash.

Any changed, missing or added byte after the run makes ``k3smig verify`` fail; the chain makes a
rewritten phase record visible even if someone re-hashes the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k3smig_lib.core.fsafe import atomic_write
from k3smig_lib.core.objects import canonical_json
from k3smig_lib.errors import LedgerError
from k3smig_lib.phases.catalog import report_status
from k3smig_lib.runbook.failure import Failure

LEDGER = "run.json"
#: The signed run record (DSSE envelope of an in-toto Statement); written last, so not in the ledger.
ENVELOPE = "run.intoto.dsse.json"
_UNLEDGERED = (LEDGER, ENVELOPE)


@dataclass(frozen=True)
class PhaseRecord:
    """One attempt at one phase, as ``run.json`` lists it under ``phases`` (before the chain adds prev/hash).

    The JSON keeps the keys records always had, so ledgers written before this class still verify and
    read the same; ``failure`` is added only when a cell raised (a completed phase's record is unchanged).

    Attributes:
        phase: the phase name (``40_export_manifests``).
        status: Completed, PartiallyFailed or Failed.
        started: UTC start time.
        seconds: wall time of the phase, kernel start and report included.
        timing: seconds per step (``kernel_start``, ``execute``, ``html``).
        summary: the phase's key figures.
        errors: one line per error (``RuntimeError: …`` when a cell raised), as before.
        warnings: the phase's warnings.
        notes: its notes.
        degraded: checks that ran with less than the real tool.
        not_run: why the phase did nothing, when it did nothing.
        failure: where and how a cell raised (see :class:`~k3smig_lib.runbook.failure.Failure`).
    """

    phase: str
    status: str
    started: str
    seconds: float
    timing: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)
    not_run: str = ""
    failure: Failure | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as the ledger stores it, with its ``report_status``."""
        body: dict[str, Any] = {
            "phase": self.phase, "status": self.status, "started": self.started, "seconds": self.seconds,
            "timing": self.timing, "summary": self.summary, "errors": self.errors, "warnings": self.warnings,
            "notes": self.notes, "degraded": self.degraded, "not_run": self.not_run,
        }
        if self.failure is not None:
            body["failure"] = self.failure.to_json()
        return {**body, "report_status": report_status(body)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PhaseRecord:
        """Read a ledger record back (``prev``, ``hash`` and ``report_status`` are derived, so dropped)."""
        failure = data.get("failure")
        return cls(phase=str(data["phase"]), status=str(data.get("status", "")), started=str(data.get("started", "")),
                   seconds=float(data.get("seconds") or 0), timing=dict(data.get("timing") or {}),
                   summary=dict(data.get("summary") or {}), errors=list(data.get("errors") or []),
                   warnings=list(data.get("warnings") or []), notes=list(data.get("notes") or []),
                   degraded=list(data.get("degraded") or []), not_run=str(data.get("not_run") or ""),
                   failure=Failure.from_json(failure) if failure else None)


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_tree(run_dir: Path) -> dict[str, str]:
    """sha256 of every regular file under ``run_dir`` except the ledger and the envelope (relative POSIX paths).

    Symlinks are never followed (a linked folder would pull outside files into the run); they and other
    non-regular entries are reported by :func:`shape_problems`.
    """
    out: dict[str, str] = {}
    for folder, dirs, files in os.walk(run_dir, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder, name)
            rel = path.relative_to(run_dir).as_posix()
            if rel not in _UNLEDGERED and stat.S_ISREG(path.lstat().st_mode):
                out[rel] = file_sha256(path)
    return dict(sorted(out.items()))


def shape_problems(run_dir: Path, recorded: dict[str, str]) -> list[str]:
    """Entries a run folder must not hold: symlinks, FIFOs, devices, sockets, and folders no recorded file needs.

    Hashes cannot see these (a symlink or an empty folder has no content to hash), yet each can mislead
    a reader or a tool that walks the folder later.
    """
    needed = {"."} | {Path(rel).parent.as_posix() for rel in [*recorded, *_UNLEDGERED]}
    needed |= {parent.as_posix() for rel in recorded for parent in Path(rel).parents}
    problems = []
    for folder, dirs, files in os.walk(run_dir, followlinks=False):
        for name in sorted(dirs + files):
            path = Path(folder, name)
            rel = path.relative_to(run_dir).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                problems.append(f"symlink in the run folder: {rel} -> {os.readlink(path)}")
            elif stat.S_ISDIR(mode):
                if rel not in needed:
                    problems.append(f"folder added after the run: {rel}")
            elif not stat.S_ISREG(mode):
                what = ("FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode)
                        else "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file")
                problems.append(f"{what} in the run folder: {rel}")
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
    return problems


def chain_record(prev_hash: str, record: dict[str, Any]) -> dict[str, Any]:
    """Return ``record`` with ``prev`` and ``hash`` = sha256(prev + canonical record)."""
    body = {k: v for k, v in record.items() if k not in ("prev", "hash")}
    body["prev"] = prev_hash
    body["hash"] = hashlib.sha256(prev_hash.encode() + canonical_json(body)).hexdigest()
    return body


def write_ledger(run_dir: Path, header: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Write ``run.json`` with the header, the chained phase records and the hash of every file.

    Written atomically: a run killed while writing keeps its previous ledger, so ``--resume`` works.
    """
    ledger = dict(header)
    ledger["phases"] = records
    ledger["files"] = hash_tree(run_dir)
    ledger["ledger_hash"] = hashlib.sha256(canonical_json(ledger)).hexdigest()
    atomic_write(run_dir, LEDGER, json.dumps(ledger, indent=2, sort_keys=True) + "\n")
    return ledger


def read_ledger(run_dir: Path) -> dict[str, Any]:
    """Load ``run.json``.

    Raises:
        LedgerError: missing or unreadable ledger.
    """
    path = run_dir / LEDGER
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise LedgerError(f"cannot read the ledger {path}: {e}", fix="give the folder of a k3smig run") from e
    return data


def verify_ledger(run_dir: Path) -> list[str]:
    """Re-hash the run against its ledger; return the problems found (empty = intact).

    This alone proves nothing against someone who can rewrite the ledger: :mod:`k3smig_lib.runbook.record`
    adds the signature check.

    Raises:
        LedgerError: the ledger itself is missing or unreadable.
    """
    ledger = read_ledger(run_dir)
    problems: list[str] = []
    body = {k: v for k, v in ledger.items() if k != "ledger_hash"}
    if hashlib.sha256(canonical_json(body)).hexdigest() != ledger.get("ledger_hash"):
        problems.append("run.json was edited (ledger_hash does not match its content)")
    prev = ""
    for record in ledger.get("phases", []):
        if chain_record(prev, record)["hash"] != record.get("hash") or record.get("prev") != prev:
            problems.append(f"phase record {record.get('phase')} breaks the hash chain")
        prev = str(record.get("hash", ""))
    recorded: dict[str, str] = ledger.get("files", {})
    problems += digest_differences(recorded, hash_tree(run_dir), missing="missing", extra="added after the run",
                                   changed="changed")
    return problems + shape_problems(run_dir, recorded)


def digest_differences(expected: dict[str, str], actual: dict[str, str], *, missing: str, extra: str,
                       changed: str) -> list[str]:
    """``<label>: <file>`` for every file missing from ``actual``, not in ``expected``, or with another digest."""
    out = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            out.append(f"{missing}: {name}")
        elif name not in expected:
            out.append(f"{extra}: {name}")
        elif expected[name] != actual[name]:
            out.append(f"{changed}: {name}")
    return out


#: The hash-only check, kept for callers that verify an unsigned ledger on purpose.
verify = verify_ledger
