"""The run's ``index.html``: the page a reviewer opens first — verdict, phases, timeline, signature.

Like the phase reports it is derived from ``run.json`` alone (the runner rewrites it after every phase
and once more when the run is signed), holds no script and loads nothing, and shows no machine path:
the runner records display forms of paths (``parameters_shown``) when the run starts.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from k3smig_lib.core.fsafe import atomic_write
from k3smig_lib.phases.catalog import report_status
from k3smig_lib.runbook.ledger import PhaseRecord
from k3smig_lib.runbook.report import badge, esc, failure_html, page, run_facts_table

#: Header keys shown elsewhere on the page (or too long for the facts table).
_SHOWN_ELSEWHERE = {"parameters", "parameters_shown", "phases", "files", "ledger_hash", "run_id", "environment",
                    "created", "code_version", "parameters_sha256", "source", "target", "signing", "verdict"}


def _seconds(stamp: str) -> float:
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").timestamp()
    except (TypeError, ValueError):
        return 0.0


def timeline(records: list[dict[str, Any]]) -> str:
    """Each phase as a bar from its start to its end, on one time axis (plain HTML, no script)."""
    if not records:
        return "<p>No phase has run yet.</p>"
    starts = [_seconds(r.get("started", "")) for r in records]
    t0 = min(starts)
    end = max(s + float(r.get("seconds") or 0) for s, r in zip(starts, records, strict=True))
    span = max(end - t0, 1.0)
    rows = []
    for start, r in zip(starts, records, strict=True):
        left, width = 100 * (start - t0) / span, max(100 * float(r.get("seconds") or 0) / span, 0.5)
        status = r.get("report_status") or report_status(r)
        rows.append(f"<tr><td>{esc(r['phase'])}</td><td style=\"width:40rem\"><div class=\"bar s-{esc(status)}\" "
                    f"style=\"margin-left:{left:.2f}%;width:{width:.2f}%\" title=\"{esc(r.get('seconds'))} s\"></div>"
                    f"</td><td class=\"n\">{esc(r.get('seconds', ''))} s</td></tr>")
    return (f'<table class="timeline"><thead><tr><th>phase</th><th>0 s … {span:.0f} s after the first phase started'
            f"</th><th>duration</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _phase_rows(records: list[dict[str, Any]]) -> str:
    rows = []
    for r in records:
        status = r.get("report_status") or report_status(r)
        why = f" — {esc(r['not_run'])}" if r.get("not_run") else ""
        figures = "; ".join(f"{k}: {v}" for k, v in (r.get("summary") or {}).items())
        counts = " · ".join(f"{len(r[k])} {k}" for k in ("errors", "warnings", "degraded", "notes") if r.get(k))
        counts = counts or "none"
        rows.append(f"<tr><td><a href=\"{esc(r['phase'])}.html\">{esc(r['phase'])}</a> · "
                    f"<a href=\"{esc(r['phase'])}.ipynb\">notebook</a></td><td>{badge(status)}{why}</td>"
                    f"<td>{esc(r.get('started', ''))}</td><td class=\"n\">{esc(r.get('seconds', ''))}</td>"
                    f"<td>{esc(figures)}</td><td>{esc(counts)}</td></tr>")
    return ("<table><thead><tr><th>phase</th><th>status</th><th>started (UTC)</th><th>seconds</th>"
            f"<th>key figures</th><th>findings</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _failures(records: list[dict[str, Any]]) -> str:
    """A "Failed at cell N" block for each phase whose latest attempt stopped at a raising cell."""
    blocks = []
    for r in records:
        failure = PhaseRecord.from_json(r).failure
        if failure is not None:
            phase = esc(r["phase"])
            blocks.append(failure_html(failure, f"{r['phase']}.html",
                                       heading=f'<a href="{phase}.html">{phase}</a> · '))
    return f"<h2>Failure</h2>{''.join(blocks)}\n" if blocks else ""


def _signing(header: dict[str, Any]) -> str:
    signing = header.get("signing") or {}
    if not signing:
        return "<p>Not signed yet: the run is signed after its last phase.</p>"
    return (f"<p>The run record (an in-toto Statement over every file of this folder, in a DSSE envelope) is "
            f"<a href=\"{esc(signing.get('envelope', ''))}\">{esc(signing.get('envelope', ''))}</a>, signed with the "
            f"Ed25519 key <code>{esc(signing.get('keyid', ''))}</code> (public key: "
            f"<a href=\"{esc(signing.get('public_key', ''))}\">{esc(signing.get('public_key', ''))}</a>).</p>"
            f"<p>Check it: <code>k3smig verify runs/{esc(header.get('run_id', ''))} --key "
            f"runs/{esc(header.get('run_id', ''))}/{esc(signing.get('public_key', ''))}</code> — and compare that "
            "fingerprint with the one the operator published, since a key inside the folder proves nothing alone.</p>")


def render_index(header: dict[str, Any], records: list[dict[str, Any]], verdict: str) -> str:
    """The index page, from the ledger's header and phase records only."""
    latest = {r["phase"]: r for r in records}  # a resumed phase shows its last attempt in the table
    extra = [("status", esc(header.get("status", ""))), ("finished (UTC)", esc(header.get("finished", "")))]
    facts = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in sorted(header.items())
                    if k not in _SHOWN_ELSEWHERE)
    shown = header.get("parameters_shown") or {}
    params = "".join(f"<tr><td><code>{esc(k)}</code></td><td>{esc(v)}</td></tr>" for k, v in sorted(shown.items()))
    body = (f"<header><h1>k3smig run <code>{esc(header.get('run_id', ''))}</code></h1>"
            f"<p>Verdict: {badge(verdict) if verdict else 'not reached'}</p>"
            f"{run_facts_table(header, extra)}</header>\n"
            f"<h2>Phases</h2>{_phase_rows(list(latest.values()))}\n"
            f"{_failures(list(latest.values()))}"
            f"<h2>Timeline</h2>{timeline(records)}\n"
            f"<h2>Signature and integrity</h2>{_signing(header)}\n"
            f"<h2>Run facts</h2><table class=\"facts\">{facts}</table>\n"
            f"<h2>Parameters</h2><table>{params}</table>\n"
            "<p>Secret values never appear in this run: every file was scanned for every secret value seen (raw, "
            "base64, URL-, JSON- and HTML-encoded) after each phase. Fingerprints are keyed HMACs whose key is not "
            "stored.</p>")
    return page(f"k3smig run {header.get('run_id', '')} · {verdict or header.get('status', '')}", body)


def write_index(run_dir: Path, header: dict[str, Any], records: list[dict[str, Any]], verdict: str) -> Path:
    """Write ``index.html`` as the run stands (confined, atomic)."""
    return atomic_write(run_dir, "index.html", render_index(header, records, verdict))
