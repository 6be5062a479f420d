"""Tables for people: how every DataFrame of a report is drawn, in JupyterLab and in the HTML report alike.

pandas' own HTML puts a row-number column first, right-aligns text, repeats a ``<style>`` block per
table and shows 223 rows in one block; an auditor reading phase 40 then scrolls 29,000 pixels. Here a
table has no row numbers, text is left-aligned and numbers right-aligned, statuses are worded from one
vocabulary (:data:`STATUSES`) and coloured by class, a long table shows its worst rows first with the
full table folded in ``<details>`` (or, past :data:`MAX_INLINE_ROWS`, only the CSV link), and columns
that name evidence files (diffs, volume manifests) link to them.

A frame says where its CSV and its linked files live through ``frame.attrs`` (set by
:meth:`k3smig_lib.phases._base.PhaseRun.save_table`): ``csv`` (path relative to the run folder) and
``links`` (column → folder relative to the run folder) and ``sizes`` (columns of byte counts, shown as
"96.2 KiB" with the exact count in the cell's tooltip; the CSV keeps the exact numbers).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import pandas as pd

from k3smig_lib.core.paths import scrub
from k3smig_lib.core.status import ReportStatus

#: The one status vocabulary of the reports (NOT RUN always comes with its reason).
STATUSES = tuple(s.value for s in ReportStatus)
#: Words that mean one of the statuses, as older tables and tools write them.
_WORDS = {"pass": ReportStatus.PASS, "fail": ReportStatus.FAIL, "failed": ReportStatus.FAIL,
          "error": ReportStatus.FAIL, "degraded": ReportStatus.DEGRADED, "warn": ReportStatus.DEGRADED,
          "warning": ReportStatus.DEGRADED, "not run": ReportStatus.NOT_RUN}
#: Columns whose true/false means a check passed or failed.
CHECK_COLUMNS = ("ok", "fits", "equal", "ready")
#: Columns read for the worst-rows-first order.
STATUS_COLUMNS = ("status", "result", "severity", "verdict", *CHECK_COLUMNS)
#: Rows shown before a long table folds.
HEAD_ROWS = 15
#: A table longer than this folds (its worst rows stay visible).
FOLD_ROWS = 25
#: Longer tables are not repeated inline at all: the CSV holds them.
MAX_INLINE_ROWS = 250
_RANK: dict[str, int] = {ReportStatus.FAIL: 0, ReportStatus.DEGRADED: 1, ReportStatus.NOT_RUN: 2,
                         ReportStatus.PASS: 4}


def status_word(value: Any, column: str = "") -> str:
    """The vocabulary word for a cell ("" when the cell is not a status).

    Examples:
        >>> status_word(True, "ok"), status_word("warning", "severity"), status_word("yes", "notes")
        ('PASS', 'DEGRADED', '')
    """
    if isinstance(value, bool) and column in CHECK_COLUMNS:
        return ReportStatus.of(value).value
    text = str(value).strip()
    if text in STATUSES:
        return text
    if text.lower().startswith("not run"):
        return ReportStatus.NOT_RUN.value
    if column in STATUS_COLUMNS and text.lower() in _WORDS:
        return _WORDS[text.lower()].value
    return ""


def _rank(row: Mapping[str, Any], columns: list[str]) -> int:
    ranks = [_RANK.get(status_word(row[c], c), 3) for c in columns]
    return min(ranks) if ranks else 3


def human_bytes(count: int) -> str:
    """A byte count for people: binary units, one decimal.

    Examples:
        >>> human_bytes(98530), human_bytes(2147483648), human_bytes(512)
        ('96.2 KiB', '2.0 GiB', '512 bytes')
    """
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(count) >= factor:
            return f"{count / factor:.1f} {unit}"
    return f"{count} bytes"


def _cell(value: Any, column: str, links: Mapping[str, str], sizes: frozenset[str] = frozenset()) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "<td></td>"
    if column in sizes and isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer():
        return f'<td class="n" title="{int(value)} bytes">{human_bytes(int(value))}</td>'
    word = status_word(value, column)
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(value, float) and value.is_integer():  # a count pandas widened for a gap: 1679, not 1679.0
        value = int(value)
    text = word if word and isinstance(value, bool) else scrub(str(value))
    shown = html.escape(text)
    if column in links and text:
        shown = f'<a href="{html.escape(links[column].rstrip("/") + "/" + text)}">{shown}</a>'
    cls = f' class="s-{word.replace(" ", "-")}"' if word else (' class="n"' if numeric else "")
    return f"<td{cls}>{shown}</td>"


def _rows(frame: pd.DataFrame, links: Mapping[str, str], sizes: frozenset[str] = frozenset()) -> str:
    cols = [str(c) for c in frame.columns]
    body = "".join("<tr>" + "".join(_cell(v, c, links, sizes) for c, v in zip(cols, row, strict=True)) + "</tr>"
                   for row in frame.itertuples(index=False, name=None))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    return f'<table class="k3t"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a meaningful index (a pivot's row labels) turned into columns, row numbers dropped."""
    if isinstance(frame.index, pd.RangeIndex) and frame.index.name is None:
        return frame
    if frame.index.name is None and frame.index.names == [None]:
        return frame.reset_index(drop=True)
    return frame.reset_index()


def table_html(frame: pd.DataFrame) -> str:
    """The HTML of one report table (see the module docstring for what it does and why)."""
    attrs = dict(frame.attrs)
    frame = _plain(frame)
    links: Mapping[str, str] = attrs.get("links") or {}
    sizes = frozenset(attrs.get("sizes") or ())
    csv = str(attrs.get("csv") or "")
    csv_link = f' · <a href="{html.escape(csv)}">CSV</a>' if csv else ""
    if frame.empty:
        return f'<p class="k3t-empty">No rows.{csv_link}</p>'
    n = len(frame)
    if n <= FOLD_ROWS:
        note = f'<p class="k3t-note">{n} row{"s" if n != 1 else ""}{csv_link}</p>' if csv else ""
        return _rows(frame, links, sizes) + note
    status_cols = [c for c in frame.columns if str(c) in STATUS_COLUMNS]
    ordered = frame
    if status_cols:
        ranks = [_rank(dict(zip(frame.columns, r, strict=True)), status_cols)
                 for r in frame.itertuples(index=False, name=None)]
        ordered = frame.iloc[sorted(range(n), key=ranks.__getitem__)]
    head = _rows(ordered.head(HEAD_ROWS), links, sizes)
    what = "worst first" if status_cols else "first rows"
    summary = f"{n} rows; {HEAD_ROWS} shown ({what})"
    if n > MAX_INLINE_ROWS:
        return f'{head}<p class="k3t-note">{summary}; every row is in the{csv_link[3:] or " CSV"}.</p>'
    return (f'{head}<details class="k3t-all"><summary>{summary}: show all {n} rows</summary>'
            f'{_rows(frame, links, sizes)}</details><p class="k3t-note">{n} rows{csv_link}</p>')


def install() -> bool:
    """Draw every DataFrame with :func:`table_html` in the running IPython kernel; False outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    if shell is None:
        return False
    formatters = shell.display_formatter.formatters
    formatters["text/html"].for_type(pd.DataFrame, table_html)
    formatters["text/plain"].for_type(pd.DataFrame, lambda frame, printer, cycle: printer.text(scrub(repr(frame))))
    return True
