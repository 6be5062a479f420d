"""The run ledger (``run.json``): sha256 of every file of the run, phase records chained by hash.

Any changed, missing or added byte after the run makes ``k3smig verify`` fail; the chain makes a
rewritten phase record visible even if someone re-hashes the files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from k3smig_lib.core.fsafe import atomic_write
from k3smig_lib.core.objects import canonical_json
from k3smig_lib.errors import LedgerError

LEDGER = "run.json"


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_tree(run_dir: Path) -> dict[str, str]:
    """sha256 of every regular file under ``run_dir`` except the ledger itself (relative POSIX paths)."""
    return {
        p.relative_to(run_dir).as_posix(): file_sha256(p)
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.relative_to(run_dir).as_posix() != LEDGER
    }


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


def verify(run_dir: Path) -> list[str]:
    """Re-hash the run against its ledger; return the problems found (empty = intact).

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
    actual = hash_tree(run_dir)
    for rel in sorted(set(recorded) | set(actual)):
        if rel not in actual:
            problems.append(f"missing: {rel}")
        elif rel not in recorded:
            problems.append(f"added after the run: {rel}")
        elif recorded[rel] != actual[rel]:
            problems.append(f"changed: {rel}")
    return problems
