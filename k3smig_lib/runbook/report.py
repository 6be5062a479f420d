"""Phase reports: one self-contained, offline HTML page per executed notebook, derived only from run files.

An auditor may open one archived report months later, alone: each page therefore starts with the run
it belongs to (run id, environment, mode, UTC times, k3smig version and commit, parameters digest,
source and target identity, links to the index and the neighbouring phases), then the phase's summary
(status in one vocabulary, key figures, each error and warning linking to the table that found it),
then the notebook's cells with their inputs hidden.

The page is a pure function of three files of the run — the executed notebook, the phase's
``phase_result.json`` and the run facts of ``run.json`` — so ``k3smig report`` renders it again and the
bytes match the ledger. Nothing is loaded from elsewhere: nbconvert's ``basic`` template (no require.js,
MathJax or mermaid), widgets reduced to their text, one small shared style sheet inlined.
"""

from __future__ import annotations

import copy
import functools
import html
import json
import re
from pathlib import Path
from typing import Any

import nbformat
from nbconvert import HTMLExporter

from k3smig_lib.core.fsafe import atomic_write
from k3smig_lib.phases.catalog import FINDINGS, RESULT_FILE, PhaseStatus, report_status
from k3smig_lib.runbook.failure import ERROR_CELL_TAG, Failure

#: The one style sheet of every page (kept small: it is inlined in each report).
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:78rem;padding:0 1rem;color:#1d1d1d}
h1{font-size:1.5rem;margin:.2rem 0 .6rem}h2{font-size:1.15rem;margin:1.4rem 0 .4rem}
a{color:#0b57a4}nav{font-size:.9rem}code,pre{font:12px/1.4 ui-monospace,monospace}
pre{background:#f6f7f8;padding:.6rem;overflow-x:auto;border:1px solid #e2e4e7}
table{border-collapse:collapse;margin:.4rem 0;font-size:.86rem}
td,th{border:1px solid #d7dadf;padding:.25rem .5rem;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f1f3f5;position:sticky;top:0}td.n{text-align:right;font-variant-numeric:tabular-nums}
.s-PASS{color:#0f6b2a;font-weight:600}.s-FAIL{color:#b00020;font-weight:700}
.s-DEGRADED{color:#8a5300;font-weight:600}.s-NOT-RUN{color:#5b6168;font-weight:600}
.facts th{width:12rem;position:static}.badge{padding:.1rem .5rem;border:1px solid;border-radius:.3rem}
.summary{border:1px solid #d7dadf;padding:.4rem 1rem;margin:1rem 0;background:#fbfbfc}
.cell{margin:.3rem 0;overflow-x:auto}.k3t-note{color:#5b6168;font-size:.8rem;margin:0 0 .8rem}
details summary{cursor:pointer;color:#0b57a4}.anchor-link{display:none}img,svg{max-width:100%}
.bar{background:#7aa6d8;height:.9rem}.bar.s-FAIL{background:#d9534f}.bar.s-DEGRADED{background:#e0a040}
.bar.s-NOT-RUN{background:#b8bcc2}footer{margin-top:2rem;color:#5b6168;font-size:.8rem}
"""


def esc(value: Any) -> str:
    """Text as HTML."""
    return html.escape(str(value))


def badge(word: str) -> str:
    """A status word, coloured."""
    return f'<span class="badge s-{esc(word).replace(" ", "-")}">{esc(word)}</span>'


def page(title: str, body: str) -> str:
    """A whole HTML page: no script, no remote resource, the shared style inlined."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def phase_title(phase: str, notebook: nbformat.NotebookNode | None = None) -> str:
    """``40 · Export and clean the manifests``: the notebook's own heading, else the phase name."""
    cells = [c for c in notebook.cells if not _papermill_banner(c)] if notebook is not None else []
    if cells and cells[0].cell_type == "markdown":
        first = cells[0].source.splitlines()[0] if cells[0].source else ""
        if first.startswith("# "):
            return first[2:].strip()
    return phase.replace("_", " ", 1).replace("_", " ")


def _papermill_banner(cell: nbformat.NotebookNode) -> bool:
    """Whether ``cell`` is papermill's red markdown around a failed cell (the "Failed at cell" block replaces it)."""
    return ERROR_CELL_TAG in cell.metadata.get("tags", [])


def mode(params: dict[str, Any]) -> str:
    """What the run was allowed to do, in words."""
    text = "apply (writes to the target)" if params.get("apply") else "dry run (nothing written to the target)"
    return text + ("; provision: true (creates the VM)" if params.get("provision") else "")


def identity(side: dict[str, Any] | None) -> str:
    """One line for a source or target: kind, name, location, version, kube-system UID."""
    if not side:
        return "not recorded"
    parts = [side.get("kind", ""), side.get("cluster_name", ""), side.get("location", ""),
             side.get("kubernetes_version", ""), side.get("distribution", "")]
    text = " · ".join(str(p) for p in parts if p)
    return text + (f" · identity {side['identity']}" if side.get("identity") else "")


def run_facts_table(facts: dict[str, Any], extra: list[tuple[str, str]] | None = None) -> str:
    """The run's identity card, shown on top of every page."""
    params = facts.get("parameters") or {}
    rows = [("run", f"<code>{esc(facts.get('run_id', ''))}</code>"), ("environment", esc(facts.get("environment", ""))),
            ("mode", esc(mode(params))), ("run started (UTC)", esc(facts.get("created", ""))),
            *(extra or []),
            ("k3smig", esc(facts.get("code_version", ""))),
            ("parameters sha256", f"<code>{esc(facts.get('parameters_sha256', ''))}</code>"),
            ("source", esc(identity(facts.get("source")))), ("target", esc(identity(facts.get("target"))))]
    return '<table class="facts">' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _anchors(nb: nbformat.NotebookNode) -> dict[str, str]:
    """Report cell method (``tools``) → the HTML id nbconvert gives its cell."""
    out: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            for name in re.findall(r"\bphase\.(\w+)\(", cell.source):
                out.setdefault(name, f"cell-id={cell.get('id', '')}")
    return out


def _findings(result: dict[str, Any], anchors: dict[str, str]) -> str:
    labels = {"errors": "Errors", "warnings": "Warnings", "degraded": "Degraded checks", "notes": "Notes"}
    parts = []
    for kind in FINDINGS:
        items = result.get(kind) or []
        if not items:
            continue
        where = (result.get("where") or {}).get(kind) or []
        lis = []
        for i, text in enumerate(items):
            target = anchors.get(where[i] if i < len(where) else "", "")
            link = f' <a href="#{esc(target)}">(table)</a>' if target else ""
            lis.append(f"<li>{esc(text)}{link}</li>")
        parts.append(f"<h3>{labels[kind]} ({len(items)})</h3><ul>{''.join(lis)}</ul>")
    return "".join(parts) or "<p>No error, warning or note.</p>"


def failure_html(failure: Failure, page_href: str = "", heading: str = "") -> str:
    """The "Failed at cell N" block: the exception, a link to the cell, the cell's source and the traceback.

    Reports hide cell inputs, so the failing cell's source is shown here. ``page_href`` is the phase report
    when the block sits on another page (the run index); ``heading`` goes before the words "Failed at".
    """
    if failure.cell is None:
        where = "Failed before any cell ran"
    else:
        where = f"Failed at cell {failure.cell}" + (
            f" (In [{failure.execution_count}])" if failure.execution_count is not None else "")
    link = (f' · <a href="{esc(page_href)}#{esc(failure.anchor)}">the cell in the report</a>'
            if failure.anchor else "")
    parts = [f"<h3>{heading}{esc(where)}</h3><p><code>{esc(failure.ename)}</code>: {esc(failure.evalue)}{link}</p>"]
    if failure.redacted:
        parts.append(f"<p>Secret values removed from this error: {esc(', '.join(failure.redacted))}. Something "
                     "handed them to an exception message: find what quotes them and make it name them instead.</p>")
    if failure.source:
        shown_lines = min(failure.source_lines, failure.source.count("\n") + 1)
        of = f"first lines of {failure.source_lines}" if failure.source_lines > shown_lines else "source"
        parts.append(f"<p>Cell {of}:</p><pre>{esc(failure.source)}</pre>")
    if failure.traceback:
        cut = f" ({failure.cut} characters cut from the middle)" if failure.cut else ""
        parts.append(f"<details open><summary>Traceback{cut}</summary><pre>{esc(failure.traceback)}</pre></details>")
    return "".join(parts)


def summary_html(result: dict[str, Any], anchors: dict[str, str]) -> str:
    """Status, key figures, where a cell raised, and findings: what the reader needs before any table."""
    status = result.get("report_status") or report_status(result)
    why = f" — {esc(result['not_run'])}" if result.get("not_run") else ""
    figures = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in (result.get("summary") or {}).items())
    table = f'<table class="facts">{figures}</table>' if figures else ""
    failure = (f'<div id="failure">{failure_html(Failure.from_json(result["failure"]))}</div>'
               if result.get("failure") else "")
    return (f'<section class="summary" id="summary"><h2>Summary: {badge(status)}{why}</h2>{table}{failure}'
            f"{_findings(result, anchors)}</section>")


def _for_report(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook as the report shows it: no parameter cells, no heading (the page has it), no widgets.

    papermill's banners around a failed cell go too: the summary's "Failed at cell" block links to the cell.
    """
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    hidden = {"parameters", "injected-parameters", ERROR_CELL_TAG}
    cells = [c for c in nb.cells if not hidden & set(c.metadata.get("tags", []))]
    if cells and cells[0].cell_type == "markdown" and cells[0].source.startswith("# "):
        cells[0].source = cells[0].source.split("\n", 1)[1].lstrip() if "\n" in cells[0].source else ""
    for cell in cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data") or {}
            if "application/vnd.jupyter.widget-view+json" in data:  # a live widget has no static form
                out["data"] = {"text/plain": data.get("text/plain", "(interactive widget: open the notebook)")}
    nb.cells = cells
    return nb


@functools.cache
def _exporter() -> HTMLExporter:
    """One exporter per process: its template loads once, not once per phase (the same HTML either way)."""
    exporter = HTMLExporter(template_name="basic")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    return exporter


def notebook_body(nb: nbformat.NotebookNode) -> str:
    """The notebook's cells as HTML (nbconvert's basic template: body only, no script, inputs hidden)."""
    body, _ = _exporter().from_notebook_node(_for_report(nb))
    return str(body)


def _neighbours(phase: str, facts: dict[str, Any]) -> str:
    order = list(facts.get("phases_selected") or [])
    links = ['<a href="index.html">run index</a>']
    if phase in order:
        i = order.index(phase)
        if i > 0:
            links.append(f'previous: <a href="{esc(order[i - 1])}.html">{esc(order[i - 1])}</a>')
        if i + 1 < len(order):
            links.append(f'next: <a href="{esc(order[i + 1])}.html">{esc(order[i + 1])}</a>')
    return "<nav>" + " · ".join(links) + "</nav>"


def render_phase(run_dir: Path, phase: str, facts: dict[str, Any]) -> str:
    """The report of one phase, from the run's files only (see the module docstring).

    Args:
        run_dir: the run folder.
        phase: phase name (``40_export_manifests``).
        facts: the run facts of the ledger's header (``run.json`` without files and records).
    """
    nb = nbformat.read(str(run_dir / f"{phase}.ipynb"), as_version=4)
    result_file = run_dir / "artifacts" / phase / RESULT_FILE
    result: dict[str, Any] = json.loads(result_file.read_text()) if result_file.is_file() else {
        "status": PhaseStatus.FAILED,
        "errors": ["the phase wrote no result: its notebook stopped before the outcome cell"]}
    title = phase_title(phase, nb)
    status = result.get("report_status") or report_status(result)
    times = [("phase started (UTC)", esc(result.get("started", ""))),
             ("phase finished (UTC)", esc(result.get("finished", "")))]
    body = (f"<header>{_neighbours(phase, facts)}<h1>{esc(title)}</h1>{run_facts_table(facts, times)}</header>\n"
            f"{summary_html(result, _anchors(nb))}\n<main>\n{notebook_body(nb)}\n</main>\n"
            f'<footer>Rendered from <a href="{esc(phase)}.ipynb">the executed notebook</a> and '
            f'<a href="artifacts/{esc(phase)}/{RESULT_FILE}">the phase result</a>; every file of the run is listed '
            "with its sha256 in run.json and signed (see the run index). Re-render: "
            f"<code>k3smig report runs/{esc(facts.get('run_id', ''))}</code>.</footer>")
    return page(f"{title} · {status} · k3smig run {facts.get('run_id', '')}", body)


def write_phase_report(run_dir: Path, phase: str, facts: dict[str, Any]) -> Path:
    """Render and write ``<phase>.html`` into the run folder (confined, atomic)."""
    return atomic_write(run_dir, f"{phase}.html", render_phase(run_dir, phase, facts))
