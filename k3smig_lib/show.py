"""Display helpers for notebook cells: tables, figures, code blocks, progress.

They return displayable objects instead of printing, so a cell's last expression is its report
content and nbconvert renders it the same way in JupyterLab and in the HTML report.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from IPython.display import Image, Markdown
from matplotlib.figure import Figure

from k3smig_lib.core.config import BATCH_ENV
from k3smig_lib.core.paths import scrub

T = TypeVar("T")

def batch_mode() -> bool:
    """True under the runner (papermill batch), False in an interactive JupyterLab session."""
    return os.environ.get(BATCH_ENV, "") == "1"


def figure(fig: Figure) -> Image:
    """Render a matplotlib figure to a PNG image (no pyplot state, no double display)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight", metadata={"Software": None})
    title = next((ax.get_title() for ax in fig.axes if ax.get_title()), "chart")
    return Image(data=buf.getvalue(), format="png", alt=title)  # read aloud, and shown if the image cannot be


def code(text: str, language: str = "") -> Markdown:
    """Show ``text`` as a fenced code block (rendered inventories, commands, diffs)."""
    text = scrub(text)
    fence = "````" if "```" in text else "```"
    return Markdown(f"{fence}{language}\n{text.rstrip()}\n{fence}")


def progress(items: Iterable[T], *, desc: str, total: int | None = None) -> Iterator[T]:
    """Progress bar in JupyterLab, nothing under papermill (a report keeps no progress lines).

    Args:
        items: what to iterate over.
        desc: label of the progress.
        total: number of items when ``items`` has no length.
    """
    if batch_mode():  # no progress lines in a report: the runner prints its own progress on the console
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, total=total)


def kv(data: dict[str, Any]) -> Markdown:
    """A small two-column summary as a Markdown table."""
    lines = ["| item | value |", "|---|---|"]
    lines += [f"| {k} | {scrub(str(v))} |" for k, v in data.items()]
    return Markdown("\n".join(lines))
