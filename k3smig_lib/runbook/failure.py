"""Where a phase notebook stopped, kept as structure: the cell, its source, the exception and its traceback.

papermill raises the first cell error it finds in the executed notebook; a one-line ``ename: evalue``
tells the next reader what went wrong but not where. The executed notebook already holds the rest: the
failing cell (found by its error output, as papermill finds it) and IPython's traceback. This module
copies that into the run's records in a form that travels: ANSI colour codes stripped (the record is
read as text), machine paths scrubbed, secret values removed (a traceback can quote a credential), and
bounded in size (a recursion error is megabytes: the head and the innermost frames are kept, and the
record says how much was cut).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import nbformat

from k3smig_lib.core.paths import scrub
from k3smig_lib.runbook.leaks import Redactor

#: Lines of the failing cell's source kept in the record (the report hides inputs: this is where they show).
SOURCE_LINES = 15
#: Characters of traceback kept: the head (where it entered) and the tail (the innermost frames, the message).
TRACEBACK_HEAD, TRACEBACK_TAIL = 2_000, 6_000
#: Characters of the exception value kept (it is also the last line of the traceback).
EVALUE_CHARS = 1_000
#: A CSI sequence (colours, cursor moves) or another two-byte escape, as IPython and tools emit them.
_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
#: papermill's own markdown cells around a failure (a banner on top, a marker before the cell).
ERROR_CELL_TAG = "papermill-error-cell-tag"


@dataclass(frozen=True)
class Failure:
    """The cell a phase stopped at, as ``run.json`` and ``phase_result.json`` keep it (``failure``).

    Attributes:
        cell: index of the cell in the run's executed notebook (``<phase>.ipynb``, 0-based), or ``None``
            when the notebook was not written (the kernel died before the first cell).
        cell_id: the cell's nbformat id, the same in the shipped notebook; reports link ``#cell-id=<id>``.
        execution_count: the ``In [n]`` the traceback names.
        source: the first :data:`SOURCE_LINES` lines of the cell, scrubbed.
        source_lines: how many lines the cell has (more than shown when it was cut).
        ename: the exception's class name (``RuntimeError``, or ``DeadKernelError`` for a dead kernel).
        evalue: the exception's message, scrubbed and bounded.
        traceback: the traceback as plain text, scrubbed, bounded (a line says how much was cut).
        cut: characters of traceback left out (0 when whole).
        redacted: labels of the secret values removed (``environment variable SCW_SECRET_KEY``), never values.
    """

    cell: int | None
    cell_id: str
    execution_count: int | None
    source: str
    source_lines: int
    ename: str
    evalue: str
    traceback: str
    cut: int = 0
    redacted: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain data for the run's JSON records."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Failure:
        """Read a record back; fields a record lacks take their empty value."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        empty: dict[str, Any] = {"cell": None, "cell_id": "", "execution_count": None, "source": "",
                                 "source_lines": 0, "ename": "", "evalue": "", "traceback": ""}
        return cls(**{**empty, **known})

    @property
    def anchor(self) -> str:
        """The HTML id nbconvert gives the cell in the phase report (empty without a cell id)."""
        return f"cell-id={self.cell_id}" if self.cell_id else ""


def plain(text: str) -> str:
    r"""``text`` without ANSI escape sequences.

    Examples:
        >>> plain("\x1b[31mRuntimeError\x1b[39m: boom")
        'RuntimeError: boom'
    """
    return _ANSI.sub("", text)


def bounded(text: str, head: int = TRACEBACK_HEAD, tail: int = TRACEBACK_TAIL) -> tuple[str, int]:
    r"""``text`` cut to its first ``head`` and last ``tail`` characters, with a line saying what was left out.

    Examples:
        >>> bounded("a" * 10, head=2, tail=3)
        ('aa\n[… 5 characters (0 lines) cut …]\naaa', 5)
    """
    if len(text) <= head + tail:
        return text, 0
    cut = len(text) - head - tail
    lines = text[head:len(text) - tail].count("\n")
    return f"{text[:head]}\n[… {cut} characters ({lines} lines) cut …]\n{text[len(text) - tail:]}", cut


def _source(cell: nbformat.NotebookNode | None) -> tuple[str, int]:
    lines = str(cell.source).splitlines() if cell is not None else []
    kept = "\n".join(lines[:SOURCE_LINES])
    if len(lines) > SOURCE_LINES:
        kept += f"\n[… {len(lines) - SOURCE_LINES} more lines]"
    return scrub(kept), len(lines)


def _error_output(cell: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """The cell's error output, as papermill counts one (``SystemExit`` with no code or 0 is a clean stop)."""
    outputs: list[nbformat.NotebookNode] = cell.get("outputs", []) if cell.cell_type == "code" else []
    for out in outputs:
        if out.output_type == "error" and not (out.ename == "SystemExit" and out.evalue in ("", "0")):
            return out
    return None


def failing_cell(nb: nbformat.NotebookNode) -> int | None:
    """Index of the cell the notebook stopped at.

    The first code cell with an error output (the one papermill raised for); else, for a kernel that died or
    a cell that timed out (no error output), the last code cell papermill started.
    """
    for index, cell in enumerate(nb.cells):
        if _error_output(cell) is not None:
            return index
    started = [i for i, c in enumerate(nb.cells)
               if c.cell_type == "code" and (c.metadata.get("papermill") or {}).get("start_time")]
    return started[-1] if started else None


def failure_of(nb: nbformat.NotebookNode | None, ename: str, evalue: str, redact: Redactor) -> Failure:
    """The failure record of an executed notebook; ``ename``/``evalue`` are what the runner caught.

    Args:
        nb: the executed notebook, or ``None`` when papermill wrote none.
        ename: the exception's class name.
        evalue: its message.
        redact: removes every secret value of the run (see :class:`~k3smig_lib.runbook.leaks.Redactor`).
    """
    index = failing_cell(nb) if nb is not None else None
    cell = nb.cells[index] if nb is not None and index is not None else None
    out = _error_output(cell) if cell is not None else None
    lines = list(out.traceback) if out is not None else []
    source, source_lines = _source(cell)
    source, hidden_source = redact(source)
    name, hidden_name = redact(scrub(ename))
    evalue_text, hidden_value = redact(scrub(plain(evalue)))
    traceback_text, hidden_traceback = redact(scrub(plain("\n".join(lines))))
    traceback_text, cut = bounded(traceback_text)
    value, _ = bounded(evalue_text, EVALUE_CHARS // 2, EVALUE_CHARS // 2)
    count = cell.get("execution_count") if cell is not None else None
    return Failure(cell=index, cell_id=str(cell.get("id", "")) if cell is not None else "",
                   execution_count=count if isinstance(count, int) else None,
                   source=source, source_lines=source_lines, ename=name, evalue=value,
                   traceback=traceback_text, cut=cut,
                   redacted=sorted({*hidden_source, *hidden_name, *hidden_value, *hidden_traceback}))


def redact_error_outputs(nb: nbformat.NotebookNode, redact: Redactor) -> list[str]:
    """Remove every secret value from the notebook's error outputs, in place; return the labels removed.

    The executed notebook is a run file and the phase report renders its outputs: a credential quoted by an
    exception would be in both. The runner rewrites the notebook only when this returns a label. A value
    printed any other way (a stream, a table) is left for the leak gate, which quarantines the run.
    """
    removed: set[str] = set()
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.output_type != "error":
                continue
            out.ename, hidden_name = redact(str(out.ename))
            out.evalue, hidden_value = redact(str(out.evalue))
            lines = [redact(str(line)) for line in out.traceback]
            out.traceback = [text for text, _ in lines]
            removed |= {*hidden_name, *hidden_value, *(label for _, hidden in lines for label in hidden)}
    return sorted(removed)
