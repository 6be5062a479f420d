"""The charts of the reports: where a reader would rather look than read.

Each takes the rows of a table the phase has already saved (so a chart and its table cannot disagree)
and returns a matplotlib figure, drawn without pyplot state; :func:`k3smig_lib.show.figure` turns it
into the PNG the report embeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

#: Bars in one chart: the largest; the table next to the chart lists every row.
TOP_BARS = 20


def capacity_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Requests against the VM, one bar per resource, as a share of what is available after the platform."""
    fig = Figure(figsize=(7, 1.9))
    ax = fig.subplots()
    labels = [str(r["resource"]) for r in rows]
    shares = [100 * float(r["needed"]) / float(r["available"]) if float(r["available"]) > 0 else 100.0 for r in rows]
    colours = ["#d9534f" if s > 100 else "#e0a040" if s > 80 else "#5b8fc9" for s in shares]
    ax.barh(labels, shares, color=colours)
    for y, (share, row) in enumerate(zip(shares, rows, strict=True)):
        ax.text(min(share, 100) + 1, y, f"{row['needed']} of {row['available']}", va="center", fontsize=8)
    ax.axvline(100, color="#333", linewidth=0.8)
    ax.set_xlim(0, max(125, *[s + 25 for s in shares]))
    ax.invert_yaxis()
    ax.set_xlabel("% of what the VM leaves after K3s and the platform add-ons")
    ax.set_title("Requests of the migrated workloads against the planned VM", fontsize=10)
    return fig


def bar_figure(labels: Sequence[str], values: Sequence[float], *, title: str, xlabel: str) -> Figure:
    """A horizontal bar per label (volume sizes, fields removed per rule), largest first, at most ``TOP_BARS``."""
    pairs = sorted(zip(labels, values, strict=True), key=lambda p: -p[1])[:TOP_BARS]
    fig = Figure(figsize=(7, 0.35 * max(len(pairs), 3) + 0.8))
    ax = fig.subplots()
    ax.barh([p[0] for p in pairs], [p[1] for p in pairs], color="#5b8fc9")
    for y, (_, value) in enumerate(pairs):
        ax.text(value, y, f" {value:g}", va="center", fontsize=8)
    if len(labels) > TOP_BARS:
        title += f" (largest {TOP_BARS} of {len(labels)})"
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    return fig
