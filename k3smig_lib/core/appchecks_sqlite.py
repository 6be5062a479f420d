"""SQLite proofs: integrity, per-table row counts, and the one safe way to copy a live database.

Rule 6 and §4.4: a SQLite file is never copied with ``cp`` while open — in WAL mode the committed
pages may all still sit in ``-wal`` (copying the main file alone gives ``no such table``). The copy
uses the online-backup API in one step (``Connection.backup(pages=-1)``), is checked with
``integrity_check`` before it replaces the target (``quick_check`` would miss an index that no longer
matches its table), and stale ``-wal``/``-shm`` files of the target are
removed so SQLite cannot "recover" an old WAL into the new copy.

Checks open databases read-only through a ``file:`` URI. A WAL database whose ``-wal`` is absent
(cleanly closed) is opened with ``immutable=1``: a read-only WAL connection would otherwise create
``-wal``/``-shm`` files it cannot remove — new files in a volume that is about to be hashed.
Only the single row ``ok`` from ``PRAGMA integrity_check`` counts as healthy; its output names pages
and indexes, never row contents, so it can go into a report.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from k3smig_lib.errors import AppCheckError
from k3smig_lib.log import logger

_HEADER = b"SQLite format 3\x00"
_MAX_LINES = 20


@dataclass
class SqliteReport:
    """Health and shape of one SQLite database.

    Attributes:
        path: the database file.
        integrity: ``"ok"``, or the first lines of ``integrity_check`` / the error that stopped it.
        ok: integrity is exactly ``ok``.
        tables: user table → ``count(*)`` (-1 when the table could not be counted).
        user_version: ``PRAGMA user_version`` (-1 when unreadable).
        journal_mode: ``wal`` or ``delete`` (from the file header: WAL is the only persistent mode).
    """

    path: str
    integrity: str
    ok: bool
    tables: dict[str, int]
    user_version: int
    journal_mode: str

    def raise_if_failed(self) -> None:
        """Raise :class:`AppCheckError` with the integrity output unless the database is healthy."""
        if not self.ok:
            raise AppCheckError(
                f"SQLite database {self.path} failed integrity_check: {self.integrity}",
                fix="restore the source from its last good backup before migrating (the target is untouched)",
            )


def _is_wal(db: Path) -> bool:
    with db.open("rb") as fh:
        header = fh.read(100)
    return header.startswith(_HEADER) and len(header) >= 20 and header[18] == 2


@contextmanager
def open_readonly(db: Path) -> Iterator[sqlite3.Connection]:
    """Open ``db`` read-only without leaving ``-wal``/``-shm`` files behind.

    Raises:
        AppCheckError: the file does not exist or is not a regular file.
    """
    if not db.is_file():
        raise AppCheckError(f"SQLite database {db} does not exist or is not a regular file",
                            fix="check the path inside the volume (e.g. data/db.sqlite3)")
    wal_sidecar = Path(f"{db}-wal")
    immutable = _is_wal(db) and not wal_sidecar.exists()
    uri = f"file:{urllib.parse.quote(str(db.absolute()))}?mode=ro" + ("&immutable=1" if immutable else "")
    con = sqlite3.connect(uri, uri=True)
    try:
        yield con
    finally:
        con.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_counts(con: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in con.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    counts: dict[str, int] = {}
    for name in names:
        try:
            counts[name] = int(con.execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()[0])
        except sqlite3.DatabaseError:
            counts[name] = -1
    return counts


def sqlite_check(db: Path) -> SqliteReport:
    """Check a database: ``integrity_check``, per-table row counts, ``user_version``, journal mode.

    A corrupt database yields ``ok=False`` with the integrity output; it does not raise, so a report
    can show it. Call :meth:`SqliteReport.raise_if_failed` to stop.

    Args:
        db: the database file.

    Returns:
        The report.

    Raises:
        AppCheckError: the file does not exist.

    Examples:
        >>> r = sqlite_check(Path("data/db.sqlite3"))  # doctest: +SKIP
        >>> r.ok, r.tables["users"]  # doctest: +SKIP
        (True, 3)
    """
    with open_readonly(db) as con:
        journal = "wal" if _is_wal(db) else "delete"
        try:
            rows = [str(r[0]) for r in con.execute("PRAGMA integrity_check").fetchall()]
        except sqlite3.DatabaseError as e:
            return SqliteReport(str(db), f"integrity_check could not run: {e}", False, {}, -1, journal)
        ok = rows == ["ok"]
        integrity = "ok" if ok else "\n".join(rows[:_MAX_LINES])
        try:
            tables = _table_counts(con)
            user_version = int(con.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.DatabaseError as e:
            return SqliteReport(str(db), f"{integrity}\nschema unreadable: {e}", False, {}, -1, journal)
    return SqliteReport(str(db), integrity, ok, tables, user_version, journal)


def _remove_sidecars(db: Path) -> list[str]:
    removed = []
    for suffix in ("-wal", "-shm"):
        side = Path(f"{db}{suffix}")
        with suppress(FileNotFoundError):
            side.unlink()
            removed.append(side.name)
    return removed


def sqlite_backup(src: Path, dst: Path) -> None:
    """Copy a (possibly live) database with the online-backup API, atomically replacing ``dst``.

    The copy is written to a temporary file beside ``dst`` and checked with ``integrity_check``; only
    then are stale ``dst-wal``/``dst-shm`` removed and the copy renamed onto ``dst``. On failure
    ``dst`` is left untouched (case 24: abort before touching the target).

    Args:
        src: the source database (read-only connection; a running writer is fine).
        dst: the destination file; its directory must exist. Stop the app that uses it first.

    Raises:
        AppCheckError: the source is missing, unreadable or the copy fails ``integrity_check``.

    Examples:
        >>> sqlite_backup(Path("/data/db.sqlite3"), Path("/restore/db.sqlite3"))  # doctest: +SKIP
    """
    tmp = dst.with_name(f".{dst.name}.k3smig-{secrets.token_hex(4)}.tmp")
    try:
        with open_readonly(src) as source:
            target = sqlite3.connect(tmp)
            try:
                source.backup(target, pages=-1)
                check = [str(r[0]) for r in target.execute("PRAGMA integrity_check").fetchall()]
            finally:
                target.close()
        if check != ["ok"]:
            raise AppCheckError(f"the backup of {src} fails integrity_check: {'; '.join(check[:_MAX_LINES])}",
                                fix="the source is corrupt; repair or restore it before migrating")
        removed = _remove_sidecars(dst)
        os.replace(tmp, dst)
    except sqlite3.DatabaseError as e:
        raise AppCheckError(f"backing up {src} failed: {e}",
                            fix="check that the source is a healthy SQLite database") from e
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
            with suppress(FileNotFoundError):
                leftover.unlink()
    removed += _remove_sidecars(dst)
    logger.info("sqlite backup %s -> %s (stale sidecars removed: %s)", src, dst, removed or "none")


def compare_sqlite(a: SqliteReport, b: SqliteReport) -> list[str]:
    """List the differences between two reports (empty when equal).

    Compared: health of each side, ``user_version``, the table set and every row count.

    Examples:
        >>> compare_sqlite(SqliteReport("a", "ok", True, {"t": 2}, 1, "wal"),
        ...                SqliteReport("b", "ok", True, {"t": 1}, 1, "wal"))
        ['table t: 2 rows in a, 1 in b']
    """
    diffs = [f"{r.path} is not healthy: {r.integrity.splitlines()[0] if r.integrity else '?'}"
             for r in (a, b) if not r.ok]
    if a.user_version != b.user_version:
        diffs.append(f"user_version: {a.user_version} in {a.path}, {b.user_version} in {b.path}")
    for table in sorted(set(a.tables) | set(b.tables)):
        if table not in b.tables:
            diffs.append(f"table {table}: missing from {b.path}")
        elif table not in a.tables:
            diffs.append(f"table {table}: extra in {b.path}")
        elif a.tables[table] != b.tables[table]:
            diffs.append(f"table {table}: {a.tables[table]} rows in {a.path}, {b.tables[table]} in {b.path}")
    return diffs


__all__ = ["SqliteReport", "compare_sqlite", "open_readonly", "sqlite_backup", "sqlite_check"]
