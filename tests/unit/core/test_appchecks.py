"""Application checks (cases 23-25, §4.4, §10): real SQLite files, real corruption."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from k3smig_lib.core.appchecks import (
    compare_sqlite,
    grafana_dashboards,
    sqlite_backup,
    sqlite_check,
    vaultwarden_attachments,
)
from k3smig_lib.errors import AppCheckError

# --- SQLite -----------------------------------------------------------------------------------------


def _db(path: Path, rows: int = 3000, *, wal: bool = False) -> Path:
    con = sqlite3.connect(path)
    if wal:
        con.execute("PRAGMA journal_mode=wal")
    con.execute("CREATE TABLE ciphers (uuid TEXT PRIMARY KEY, data TEXT NOT NULL)")
    con.execute("CREATE INDEX ciphers_data ON ciphers (data)")
    con.execute("CREATE TABLE users (uuid TEXT PRIMARY KEY, email TEXT)")
    data = [(f"c{i:05d}", f"row{i:05d}" * 5) for i in range(rows)]
    con.executemany("INSERT INTO ciphers VALUES (?, ?)", data)
    con.execute("INSERT INTO users VALUES ('u1', 'ops@example.org')")
    con.execute("PRAGMA user_version = 7")
    con.commit()
    con.close()
    return path


def test_healthy_database_reports_counts_version_and_mode(tmp_path: Path) -> None:
    report = sqlite_check(_db(tmp_path / "db.sqlite3", wal=True))
    assert (report.ok, report.integrity, report.user_version, report.journal_mode) == (True, "ok", 7, "wal")
    assert report.tables == {"ciphers": 3000, "users": 1}


def test_check_of_a_closed_wal_database_leaves_no_sidecar_files(tmp_path: Path) -> None:
    _db(tmp_path / "db.sqlite3", wal=True)
    assert os.listdir(tmp_path) == ["db.sqlite3"]
    sqlite_check(tmp_path / "db.sqlite3")
    assert os.listdir(tmp_path) == ["db.sqlite3"]  # the volume is about to be hashed


def test_corrupt_table_page_fails_integrity_with_the_sqlite_output(tmp_path: Path) -> None:
    db = _db(tmp_path / "db.sqlite3")
    raw = bytearray(db.read_bytes())
    at = raw.find(b"row00100row00100")  # first hit is the table's leaf page, before the index pages
    raw[at:at + 3] = b"ROW"
    db.write_bytes(bytes(raw))

    report = sqlite_check(db)

    assert not report.ok
    assert report.integrity == "row 101 missing from index ciphers_data"
    with pytest.raises(AppCheckError, match=r"failed integrity_check: row 101 missing from index ciphers_"):
        report.raise_if_failed()


def test_garbage_over_btree_pages_fails_integrity(tmp_path: Path) -> None:
    db = _db(tmp_path / "db.sqlite3")
    raw = bytearray(db.read_bytes())
    for page in (3, 4, 5):
        start = (page - 1) * 4096
        raw[start:start + 1200] = bytes((i * 37) & 0xFF for i in range(1200))
    db.write_bytes(bytes(raw))
    report = sqlite_check(db)
    assert not report.ok
    assert "malformed" in report.integrity or "Tree" in report.integrity or "Page" in report.integrity


def test_a_file_that_is_not_a_database_is_not_ok(tmp_path: Path) -> None:
    (tmp_path / "db.sqlite3").write_bytes(b"this is a config file, not sqlite\n" * 200)
    report = sqlite_check(tmp_path / "db.sqlite3")
    assert not report.ok
    assert "file is not a database" in report.integrity


def test_missing_database_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AppCheckError, match=r"db\.sqlite3 does not exist"):
        sqlite_check(tmp_path / "db.sqlite3")


@pytest.fixture
def live_wal_db(tmp_path: Path) -> Iterator[Path]:
    """A database held open by a writer, all 1,000 committed rows still in the -wal (§4.4)."""
    path = tmp_path / "src" / "db.sqlite3"
    path.parent.mkdir()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=wal")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("CREATE TABLE ciphers (uuid TEXT PRIMARY KEY, data TEXT)")
    con.executemany("INSERT INTO ciphers VALUES (?, ?)", [(f"c{i}", "x" * 50) for i in range(1000)])
    con.commit()
    yield path
    con.close()


def test_copying_only_the_main_file_of_a_live_wal_db_loses_rows(tmp_path: Path, live_wal_db: Path) -> None:
    shutil.copyfile(live_wal_db, tmp_path / "cp.sqlite3")
    copied = sqlite_check(tmp_path / "cp.sqlite3")
    assert copied.tables == {}
    diffs = compare_sqlite(sqlite_check(live_wal_db), copied)
    assert diffs == [f"table ciphers: missing from {tmp_path}/cp.sqlite3"]


def test_online_backup_of_a_live_wal_database_keeps_every_row(tmp_path: Path, live_wal_db: Path) -> None:
    dst = tmp_path / "dst" / "db.sqlite3"
    dst.parent.mkdir()

    sqlite_backup(live_wal_db, dst)

    copy = sqlite_check(dst)
    assert (copy.ok, copy.tables) == (True, {"ciphers": 1000})
    assert compare_sqlite(sqlite_check(live_wal_db), copy) == []
    assert sorted(os.listdir(dst.parent)) == ["db.sqlite3"]


def test_stale_target_wal_is_removed_and_never_replayed(tmp_path: Path) -> None:
    src = _db(tmp_path / "src.sqlite3", rows=50)
    dst = tmp_path / "dst" / "db.sqlite3"
    dst.parent.mkdir()
    old = sqlite3.connect(dst)  # an older database on the target, with a populated -wal left behind
    old.execute("PRAGMA journal_mode=wal")
    old.execute("PRAGMA wal_autocheckpoint=0")
    old.execute("CREATE TABLE ciphers (uuid TEXT PRIMARY KEY, data TEXT NOT NULL)")
    old.executemany("INSERT INTO ciphers VALUES (?, ?)", [(f"old{i}", "stale") for i in range(500)])
    old.commit()
    stale_wal = Path(f"{dst}-wal").read_bytes()
    old.close()
    Path(f"{dst}-wal").write_bytes(stale_wal)
    assert len(stale_wal) > 4096

    sqlite_backup(src, dst)

    assert not Path(f"{dst}-wal").exists() and not Path(f"{dst}-shm").exists()
    copy = sqlite_check(dst)
    assert (copy.ok, copy.tables) == (True, {"ciphers": 50, "users": 1})


def test_backup_of_a_corrupt_source_aborts_before_touching_the_target(tmp_path: Path) -> None:
    src = _db(tmp_path / "src.sqlite3")
    raw = bytearray(src.read_bytes())
    at = raw.find(b"row00100row00100")
    raw[at:at + 3] = b"ROW"
    src.write_bytes(bytes(raw))
    dst = tmp_path / "dst" / "db.sqlite3"
    dst.parent.mkdir()
    dst.write_bytes(b"previous target contents")
    Path(f"{dst}-wal").write_bytes(b"target wal")

    with pytest.raises(AppCheckError, match=r"fails integrity_check: row 101 missing from index ciphers_"):
        sqlite_backup(src, dst)

    assert dst.read_bytes() == b"previous target contents"
    assert sorted(os.listdir(dst.parent)) == ["db.sqlite3", "db.sqlite3-wal"]


def test_compare_reports_version_and_count_differences(tmp_path: Path) -> None:
    a = sqlite_check(_db(tmp_path / "a.sqlite3", rows=10))
    b_path = _db(tmp_path / "b.sqlite3", rows=9)
    con = sqlite3.connect(b_path)
    con.execute("PRAGMA user_version = 6")
    con.execute("CREATE TABLE sends (uuid TEXT)")
    con.commit()
    con.close()
    assert compare_sqlite(a, sqlite_check(b_path)) == [
        f"user_version: 7 in {a.path}, 6 in {b_path}",
        f"table ciphers: 10 rows in {a.path}, 9 in {b_path}",
        f"table sends: extra in {b_path}",
    ]


# --- Grafana ----------------------------------------------------------------------------------------

# The dashboard table as found in a real Grafana SQLite database (DevStats backups, Grafana 8/9).
GRAFANA_V9 = """
CREATE TABLE `dashboard` (
`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `version` INTEGER NOT NULL, `slug` TEXT NOT NULL,
`title` TEXT NOT NULL, `data` TEXT NOT NULL, `org_id` INTEGER NOT NULL, `created` DATETIME NOT NULL,
`updated` DATETIME NOT NULL, `updated_by` INTEGER NULL, `created_by` INTEGER NULL, `gnet_id` INTEGER NULL,
`plugin_id` TEXT NULL, `folder_id` INTEGER NOT NULL DEFAULT 0, `is_folder` INTEGER NOT NULL DEFAULT 0,
`has_acl` INTEGER NOT NULL DEFAULT 0, `uid` TEXT NULL);
"""


def _grafana(path: Path, extra_columns: str = "") -> sqlite3.Connection:
    con = sqlite3.connect(path)
    con.executescript(GRAFANA_V9 + extra_columns)
    rows = [
        (1, 1, "ops", "Ops", "{}", 1, 0, 1, "ops-folder"),
        (2, 3, "node-exporter", "Node Exporter", "{}", 1, 1, 0, "rYdddlPWk"),
        (3, 12, "k8s-pods", "Kubernetes / Pods", "{}", 1, 0, 0, "k8s-pods"),
    ]
    con.executemany(
        "INSERT INTO dashboard (id, version, slug, title, data, org_id, folder_id, is_folder, uid, created, "
        "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '2024-01-01', '2024-01-01')", rows)
    con.commit()
    return con


def test_grafana_dashboards_are_listed_by_uid_with_their_folder(tmp_path: Path) -> None:
    _grafana(tmp_path / "grafana.db").close()
    got = [(d.uid, d.title, d.version, d.folder_uid) for d in grafana_dashboards(tmp_path / "grafana.db")]
    assert got == [("k8s-pods", "Kubernetes / Pods", 12, ""), ("rYdddlPWk", "Node Exporter", 3, "ops-folder")]


def test_grafana_11_schema_uses_folder_uid_and_skips_deleted(tmp_path: Path) -> None:
    con = _grafana(tmp_path / "grafana.db", "ALTER TABLE dashboard ADD COLUMN folder_uid TEXT NULL;"
                                            "ALTER TABLE dashboard ADD COLUMN deleted DATETIME NULL;")
    con.execute("UPDATE dashboard SET folder_uid = 'ops-folder' WHERE id = 3")
    con.execute("UPDATE dashboard SET deleted = '2024-06-01' WHERE id = 2")
    con.commit()
    con.close()
    got = [(d.uid, d.folder_uid) for d in grafana_dashboards(tmp_path / "grafana.db")]
    assert got == [("k8s-pods", "ops-folder")]


def test_a_database_without_dashboards_is_not_grafana(tmp_path: Path) -> None:
    with pytest.raises(AppCheckError, match=r"has no Grafana dashboard table"):
        grafana_dashboards(_db(tmp_path / "db.sqlite3"))


# --- Vaultwarden ------------------------------------------------------------------------------------


def _vaultwarden(root: Path) -> Path:
    root.mkdir()
    con = sqlite3.connect(root / "db.sqlite3")
    con.executescript("""
        CREATE TABLE ciphers (uuid TEXT NOT NULL PRIMARY KEY, atype INTEGER NOT NULL, name TEXT NOT NULL);
        CREATE TABLE attachments (id TEXT NOT NULL PRIMARY KEY,
            cipher_uuid TEXT NOT NULL REFERENCES ciphers (uuid), file_name TEXT NOT NULL,
            file_size INTEGER NOT NULL, akey TEXT);
        INSERT INTO ciphers VALUES ('c-1', 1, '2.enc'), ('c-2', 1, '2.enc');
        INSERT INTO attachments VALUES ('a-1', 'c-1', '2.encname', 11, NULL),
            ('a-2', 'c-1', '2.encname', 22, NULL), ('a-3', 'c-2', '2.encname', 33, NULL);
    """)
    con.close()
    for rel in ("c-1/a-1", "c-2/a-3"):
        (root / "attachments" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "attachments" / rel).write_bytes(b"encrypted")
    (root / "icon_cache").mkdir()
    return root


def test_attachments_missing_and_orphans_are_reported(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    root = _vaultwarden(tmp_path / "data")
    (root / "attachments" / "c-1" / "a-1").unlink()
    (root / "attachments" / "c-9").mkdir()
    (root / "attachments" / "c-9" / "left-over").write_bytes(b"x")

    report = vaultwarden_attachments(root)

    assert (report.referenced, report.present) == (3, 1)
    assert (report.missing, report.orphans) == (["c-1/a-1", "c-1/a-2"], ["c-9/left-over"])
    assert report.optional_dirs == {"sends": False, "icon_cache": True}
    with caplog.at_level(logging.WARNING, logger="k3smig"), \
            pytest.raises(AppCheckError, match=r"2 of 3 Vaultwarden attachments have no file"):
        report.raise_if_failed()
    assert "1 unreferenced attachment files" in caplog.text


def test_complete_attachments_without_sends_pass(tmp_path: Path) -> None:
    root = _vaultwarden(tmp_path / "data")
    (root / "attachments" / "c-1" / "a-2").write_bytes(b"encrypted")
    report = vaultwarden_attachments(root)
    assert (report.present, report.missing, report.orphans) == (3, [], [])
    assert report.optional_dirs["sends"] is False  # "not present", not a failure
    report.raise_if_failed()
