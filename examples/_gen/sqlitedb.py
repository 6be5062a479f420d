"""Real SQLite files built with the ``sqlite3`` module, as stable as SQLite allows.

The database is written in rollback-journal mode with a fixed page size and vacuumed, so the same
statements give the same bytes *with the same SQLite library*. The header records the version of
the library that last wrote the file (offset 96) and SQLite may lay pages out differently across
versions, so bytes can differ between SQLite versions while every table's content stays equal.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

Row = Sequence[Any]


def build(
    schema: str,
    rows: Mapping[str, Sequence[Row]],
    *,
    user_version: int = 0,
    extra: Callable[[sqlite3.Connection], None] | None = None,
) -> bytes:
    """Create a database from ``schema`` and ``rows`` (table → rows in column order) and return its bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "db.sqlite3"
        con = sqlite3.connect(path)
        try:
            con.execute("PRAGMA page_size = 4096")
            con.execute("PRAGMA journal_mode = DELETE")
            con.executescript(schema)
            for table, table_rows in rows.items():
                if table_rows:
                    marks = ", ".join("?" * len(table_rows[0]))
                    con.executemany(f'INSERT INTO "{table}" VALUES ({marks})', table_rows)
            if extra is not None:
                extra(con)
            con.execute(f"PRAGMA user_version = {int(user_version)}")
            con.commit()
            con.execute("VACUUM")
        finally:
            con.close()
        return path.read_bytes()
