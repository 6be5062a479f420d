"""Application proofs on top of the manifests: dashboards, attachments, Prometheus configuration.

A manifest proves the bytes arrived; these checks prove the application will find its data
(rule 13): Grafana's dashboard UIDs and versions, Vaultwarden's attachment files against the rows
that reference them (case 25), and the structure of a Prometheus configuration. SQLite checks live
in :mod:`k3smig_lib.core.appchecks_sqlite` and are re-exported here.

Running ``promtool`` is not pure, so it lives in the adapter :mod:`k3smig_lib.tools.promtool`, whose
``prometheus_check`` falls back to :func:`structural_problems` when promtool is missing.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from k3smig_lib.core.appchecks_sqlite import (
    SqliteReport,
    compare_sqlite,
    open_readonly,
    sqlite_backup,
    sqlite_check,
)
from k3smig_lib.errors import AppCheckError
from k3smig_lib.log import logger

OPTIONAL_VAULTWARDEN_DIRS = ("sends", "icon_cache")


@dataclass
class Dashboard:
    """One Grafana dashboard as stored in ``grafana.db``."""

    uid: str
    title: str
    version: int
    folder_uid: str


def grafana_dashboards(db: Path) -> list[Dashboard]:
    """List the dashboards (not folders, not soft-deleted) of a Grafana SQLite database, by UID.

    Works with the pre-10 schema (``folder_id`` → folder row) and the newer ``folder_uid`` column.

    Args:
        db: ``grafana.db`` (read-only; copy it with ``sqlite_backup`` first if Grafana is running).

    Returns:
        Dashboards sorted by UID; ``folder_uid`` is ``""`` for the General folder.

    Raises:
        AppCheckError: the file has no ``dashboard`` table.

    Examples:
        >>> [d.uid for d in grafana_dashboards(Path("grafana.db"))]  # doctest: +SKIP
        ['node-exporter', 'k8s-pods']
    """
    with open_readonly(db) as con:
        cols = {str(r[1]) for r in con.execute("PRAGMA table_info(dashboard)")}
        if not {"uid", "title", "version", "folder_id"} <= cols:
            raise AppCheckError(f"{db} has no Grafana dashboard table (columns: {sorted(cols)})",
                                fix="point the check at grafana.db inside the Grafana data volume")
        folder = "COALESCE(f.uid, '')"
        if "folder_uid" in cols:
            folder = "COALESCE(NULLIF(d.folder_uid, ''), f.uid, '')"
        where = "d.is_folder = 0" + (" AND d.deleted IS NULL" if "deleted" in cols else "")
        rows = con.execute(
            f"SELECT d.uid, d.title, d.version, {folder} FROM dashboard d "
            f"LEFT JOIN dashboard f ON f.id = d.folder_id AND f.is_folder = 1 AND f.org_id = d.org_id "
            f"WHERE {where} ORDER BY d.uid"
        ).fetchall()
    return [Dashboard(uid=str(u), title=str(t), version=int(v), folder_uid=str(f)) for u, t, v, f in rows]


@dataclass
class AttachmentReport:
    """Vaultwarden attachment rows versus files on disk.

    Attributes:
        referenced: rows in the ``attachments`` table.
        present: rows whose file ``attachments/<cipher_uuid>/<id>`` exists.
        missing: ``<cipher_uuid>/<id>`` of rows without a file (an error: the download would fail).
        orphans: files under ``attachments/`` no row references (a warning).
        optional_dirs: ``sends``/``icon_cache`` → present; absence is "not present", not a failure.
    """

    referenced: int
    present: int
    missing: list[str]
    orphans: list[str]
    optional_dirs: dict[str, bool] = field(default_factory=dict)

    def raise_if_failed(self) -> None:
        """Raise on missing files; orphans are only logged as a warning."""
        if self.orphans:
            logger.warning("%d unreferenced attachment files, e.g. %s", len(self.orphans), self.orphans[:3])
        if self.missing:
            raise AppCheckError(
                f"{len(self.missing)} of {self.referenced} Vaultwarden attachments have no file, "
                f"e.g. {self.missing[:3]}",
                fix="copy attachments/ again from the source; if the source misses them too, record it",
            )


def _attachment_files(folder: Path) -> set[str]:
    found: set[str] = set()
    if not folder.is_dir():
        return found
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            full = Path(dirpath, name)
            if stat.S_ISREG(os.lstat(full).st_mode):
                found.add(full.relative_to(folder).as_posix())
    return found


def vaultwarden_attachments(root: Path) -> AttachmentReport:
    """Compare the ``attachments`` table of ``db.sqlite3`` with the files under ``attachments/``.

    Args:
        root: the Vaultwarden data directory (holding ``db.sqlite3``).

    Returns:
        The report (does not raise on missing files; see :meth:`AttachmentReport.raise_if_failed`).

    Raises:
        AppCheckError: ``db.sqlite3`` is missing or has no ``attachments`` table.
    """
    with open_readonly(root / "db.sqlite3") as con:
        try:
            refs = {f"{c}/{i}" for c, i in con.execute("SELECT cipher_uuid, id FROM attachments")}
        except sqlite3.DatabaseError as e:
            raise AppCheckError(f"{root / 'db.sqlite3'} has no readable attachments table: {e}",
                                fix="point the check at the Vaultwarden data directory") from e
    files = _attachment_files(root / "attachments")
    return AttachmentReport(
        referenced=len(refs),
        present=len(refs & files),
        missing=sorted(refs - files),
        orphans=sorted(files - refs),
        optional_dirs={d: (root / d).is_dir() for d in OPTIONAL_VAULTWARDEN_DIRS},
    )


_TOP_KEYS = frozenset({
    "global", "runtime", "scrape_config_files", "scrape_configs", "rule_files", "alerting", "remote_write",
    "remote_read", "storage", "tracing", "otlp",
})
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNIT_MS = (365 * 86400000, 7 * 86400000, 86400000, 3600000, 60000, 1000, 1)


def parse_duration(text: Any) -> int | None:
    """Milliseconds of a Prometheus duration (``1m30s``), or ``None`` if it is not one.

    Examples:
        >>> parse_duration("1m30s"), parse_duration("banana")
        (90000, None)
    """
    if str(text) == "0":
        return 0
    m = _DURATION.match(str(text)) if text not in (None, "") else None
    if m is None:
        return None
    return sum(int(v) * unit for v, unit in zip(m.groups(), _UNIT_MS, strict=True) if v)


def _duration(where: str, value: Any, problems: list[str]) -> int | None:
    if value is None:
        return None
    ms = parse_duration(value)
    if ms is None:
        problems.append(f"{where}: not a valid duration string: {value!r}")
    return ms


def structural_problems(text: str) -> list[str]:
    """Structural checks promtool would also fail on; an empty list means none found."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return [f"not valid YAML: {e}"]
    if doc is None:
        return []
    if not isinstance(doc, dict):
        return ["the top level is not a mapping"]
    problems = [f"unknown top-level key {k!r}" for k in doc if k not in _TOP_KEYS]
    glob = doc.get("global") or {}
    if not isinstance(glob, dict):
        return problems + ["global is not a mapping"]
    g_interval = _duration("global.scrape_interval", glob.get("scrape_interval"), problems) or 60000
    g_timeout = _duration("global.scrape_timeout", glob.get("scrape_timeout"), problems)
    _duration("global.evaluation_interval", glob.get("evaluation_interval"), problems)
    if g_timeout is not None and g_timeout > g_interval:
        problems.append("global scrape timeout greater than scrape interval")
    rule_files = doc.get("rule_files") or []
    if not isinstance(rule_files, list) or not all(isinstance(r, str) for r in rule_files):
        problems.append("rule_files must be a list of strings")
    problems += _scrape_problems(doc.get("scrape_configs") or [], g_interval)
    return problems


def _scrape_problems(jobs: Any, g_interval: int) -> list[str]:
    if not isinstance(jobs, list):
        return ["scrape_configs must be a list"]
    problems: list[str] = []
    seen: set[str] = set()
    for i, job in enumerate(jobs):
        name = job.get("job_name") if isinstance(job, dict) else None
        if not isinstance(name, str) or not name:
            problems.append(f"scrape_configs[{i}]: job_name is missing")
            continue
        if name in seen:
            problems.append(f"found multiple scrape configs with job name {name!r}")
        seen.add(name)
        interval = _duration(f"{name}.scrape_interval", job.get("scrape_interval"), problems) or g_interval
        timeout = _duration(f"{name}.scrape_timeout", job.get("scrape_timeout"), problems)
        if timeout is not None and timeout > interval:
            problems.append(f"{name}: scrape timeout greater than scrape interval")
        for j, sc in enumerate(job.get("static_configs") or []):
            targets = sc.get("targets") if isinstance(sc, dict) else None
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                problems.append(f"{name}.static_configs[{j}].targets must be a list of strings")
    return problems


__all__ = [
    "AttachmentReport",
    "Dashboard",
    "SqliteReport",
    "compare_sqlite",
    "grafana_dashboards",
    "parse_duration",
    "sqlite_backup",
    "sqlite_check",
    "structural_problems",
    "vaultwarden_attachments",
]
