"""HTML reports: one per executed notebook (inputs hidden) and the run's ``index.html``."""

from __future__ import annotations

import functools
import html
from pathlib import Path
from typing import Any

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

from k3smig_lib.core.fsafe import atomic_write


@functools.cache
def _exporter() -> HTMLExporter:
    """One exporter per process: its template, CSS and preprocessors load once, not once per phase."""
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    remover = TagRemovePreprocessor(remove_cell_tags={"injected-parameters", "parameters"}, enabled=True)
    exporter.register_preprocessor(remover, enabled=True)
    return exporter


def notebook_to_html(notebook: Path, out: Path) -> Path:
    """Render an executed notebook as a report: inputs, prompts and parameter cells hidden."""
    nb = nbformat.read(str(notebook), as_version=4)
    body, _ = _exporter().from_notebook_node(nb)
    return atomic_write(out.parent, out.name, body)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#f3f3f3}.Completed,.PASS{color:#176f2c;font-weight:600}.Failed,.FAIL{color:#b00020;font-weight:600}
.PartiallyFailed{color:#a15c00;font-weight:600}code{background:#f6f6f6;padding:0 .2rem}
"""


def _cell(value: Any) -> str:
    return html.escape(str(value))


def write_index(run_dir: Path, header: dict[str, Any], records: list[dict[str, Any]], verdict: str) -> Path:
    """Write the overview a reviewer opens first: run facts, verdict, one row per phase with its report."""
    rows = []
    for r in records:
        summary = "; ".join(f"{k}: {v}" for k, v in (r.get("summary") or {}).items())
        problems = "; ".join((r.get("errors") or []) + (r.get("warnings") or []))
        rows.append(
            f"<tr><td>{_cell(r['phase'])}</td><td class='{_cell(r['status'])}'>{_cell(r['status'])}</td>"
            f"<td>{_cell(r.get('seconds', ''))}</td>"
            f"<td><a href='{_cell(r['phase'])}.html'>report</a> · <a href='{_cell(r['phase'])}.ipynb'>notebook</a></td>"
            f"<td>{_cell(summary)}</td><td>{_cell(problems)}</td></tr>"
        )
    facts = "".join(f"<tr><th>{_cell(k)}</th><td>{_cell(v)}</td></tr>" for k, v in header.items()
                    if k not in ("parameters",))
    params = "".join(f"<tr><td><code>{_cell(k)}</code></td><td>{_cell(v)}</td></tr>"
                     for k, v in sorted((header.get("parameters") or {}).items()))
    text = f"""<!doctype html><html><head><meta charset="utf-8"><title>k3smig run {_cell(header['run_id'])}</title>
<style>{_STYLE}</style></head><body>
<h1>k3smig run <code>{_cell(header['run_id'])}</code></h1>
<p>Verdict: <span class="{_cell(verdict)}">{_cell(verdict or 'not reached')}</span> ·
status <span class="{_cell(header.get('status', ''))}">{_cell(header.get('status', ''))}</span> ·
integrity: <code>k3smig verify {_cell(run_dir)}</code></p>
<h2>Phases</h2><table><tr><th>phase</th><th>status</th><th>seconds</th><th>open</th><th>summary</th>
<th>errors / warnings</th></tr>{''.join(rows)}</table>
<h2>Run</h2><table>{facts}</table>
<h2>Parameters</h2><table>{params}</table>
<p>Secret values never appear in this run: every file was scanned for every secret value seen (raw, base64,
URL-, JSON- and HTML-encoded) after each phase. Fingerprints are keyed HMACs whose key is not stored.</p>
</body></html>
"""
    return atomic_write(run_dir, "index.html", text)
