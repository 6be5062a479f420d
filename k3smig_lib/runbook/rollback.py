"""``k3smig rollback runs/<id>``: undo a cutover from what the run and the clusters recorded.

Everything needed was written before the first change: ``cutover_plan.json`` in the run (hosts, the
addresses they answered before, both owner ids) and, on each object k3smig changed, the state it had
(``k3smig.io/pre-cutover-replicas``, ``k3smig.io/pre-cutover-args``, ``k3smig.io/pre-quiesce-replicas``).
Rollback, in this order: the target's GitLab Runner is held again and the source's restarted; the
target's external-dns stops and the source's takes its records back (the same guarded handover, owners
swapped) until every host answers its old address; both external-dns get their old arguments and
replicas; the source workloads phase 70 quiesced get their recorded replicas. The report lands in
``artifacts/rollback/`` of the same run, the leak gate scans it, and a record chained to the phase
records goes into the ledger.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from k3smig_lib.core.config import Settings
from k3smig_lib.core.fsafe import atomic_write
from k3smig_lib.core.leakgate import scan
from k3smig_lib.core.objects import PRE_QUIESCE
from k3smig_lib.errors import K3sMigError, PhaseError
from k3smig_lib.k8s import handover
from k3smig_lib.k8s.client import Kube
from k3smig_lib.k8s.quiesce import restore
from k3smig_lib.phases.catalog import PhaseStatus, now_iso, phase_dir
from k3smig_lib.phases.context import source_ref, target_ref
from k3smig_lib.phases.cutover import switch
from k3smig_lib.phases.deploy import HELD_UNTIL
from k3smig_lib.phases.netlive import handover_of
from k3smig_lib.runbook.leaks import env_values
from k3smig_lib.runbook.ledger import chain_record, read_ledger, write_ledger

FOLDER = "artifacts/rollback"


@dataclass(frozen=True)
class RollbackOutcome:
    """What ``k3smig rollback`` prints."""

    run_dir: Path
    status: PhaseStatus
    steps: int
    report: Path


def _restore_quiesced(kube: Kube, h: Any) -> None:
    for plural, kind in (("deployments", "Deployment"), ("statefulsets", "StatefulSet")):
        for obj in kube.json("GET", f"/apis/apps/v1/{plural}", counter="lists").get("items") or []:
            meta = obj["metadata"]
            if PRE_QUIESCE in (meta.get("annotations") or {}):
                replicas = restore(kube, kind, meta["namespace"], meta["name"])
                h.note(handover.Step("source", f"{kind}/{meta['namespace']}/{meta['name']}", "restore (quiesced)",
                                     "0", f"{replicas} replicas"))


def _report(run_dir: Path, status: PhaseStatus, steps: list[dict[str, Any]], summary: dict[str, Any]) -> Path:
    frame = pd.DataFrame(steps)
    atomic_write(run_dir, f"{FOLDER}/rollback_steps.csv", frame.to_csv(index=False))
    atomic_write(run_dir, f"{FOLDER}/rollback.json",
                 json.dumps({"status": status, "summary": summary, "steps": steps}, indent=2, sort_keys=True) + "\n")
    html = (f"<!doctype html><meta charset='utf-8'><title>rollback {run_dir.name}</title>"
            f"<h1>Rollback of {run_dir.name}: {status}</h1>"
            + "".join(f"<p><b>{k}</b>: {v}</p>" for k, v in summary.items())
            + frame.to_html(index=False, escape=True))
    return atomic_write(run_dir, f"{FOLDER}/rollback.html", html)


def rollback(run_dir: Path, *, timeout: float | None = None) -> RollbackOutcome:
    """Undo the cutover of ``run_dir`` and record the rollback in the run.

    Raises:
        PhaseError: the run has no cutover to undo.
        TargetError | SourceError: a cluster or DNS step failed (the steps done so far are reported).
    """
    run_dir = run_dir.resolve()
    ledger = read_ledger(run_dir)
    cfg = Settings(**{**ledger["parameters"], "run_dir": str(run_dir)})
    plan_file = phase_dir(cfg, "80_configure_network") / "cutover_plan.json"
    if not plan_file.is_file():
        raise PhaseError(f"run {run_dir.name} has no cutover to roll back (no {plan_file.name})",
                         phase="rollback", fix="give the run whose phase 80 switched DNS (`cutover: true`)")
    plan = json.loads(plan_file.read_text())
    h = handover_of(cfg, list(plan["hosts"]))
    source, target = Kube.of(source_ref(cfg)), Kube.of(target_ref(cfg))
    ns, name = h.external_dns
    started, t0, status, errors = now_iso(), time.monotonic(), PhaseStatus.COMPLETED, []
    try:
        for kind, rns, rname in plan["runners"]:  # the target's runner stops before the source's starts
            h.note(handover.set_replicas(target, "target", kind, rns, rname, 0, {HELD_UNTIL: "cutover"}))
            h.note(handover.start(source, "source", kind, rns, rname))
        switch(h, (target, plan["target_owner"]), (source, plan["source_owner"]),
               {host: list(plan["before"][host]) for host in plan["hosts"]}, timeout or cfg.dns_wait_seconds)
        h.note(handover.restore_args(source, "source", ns, name))
        h.note(handover.restore_args(target, "target", ns, name))
        h.note(handover.start(target, "target", "Deployment", ns, name))
        _restore_quiesced(source, h)
    except K3sMigError as e:
        status, errors = PhaseStatus.FAILED, [str(e)]
    steps = [asdict(s) for s in h.steps]
    summary = {"hosts": ", ".join(plan["hosts"]), "records point back to": json.dumps(plan["before"]),
               "steps": len(steps), "errors": "; ".join(errors) or "none"}
    report = _report(run_dir, status, steps, summary)
    leaks = scan(run_dir, env_values())
    if not leaks.ok:
        status, errors = PhaseStatus.FAILED, [*errors, f"leak gate: {leaks.summary()}"]
    record = {"phase": "rollback", "status": status, "started": started, "seconds": round(time.monotonic() - t0, 2),
              "summary": {"steps": [f"{s['cluster']}: {s['action']} {s['workload']}: {s['before']} → {s['after']}"
                                    for s in steps]}, "errors": errors, "warnings": []}
    records = list(ledger.get("phases", []))
    records.append(chain_record(records[-1]["hash"] if records else "", record))
    header = {k: v for k, v in ledger.items() if k not in ("phases", "files", "ledger_hash")}
    header["rolled_back"] = now_iso()
    write_ledger(run_dir, header, records)
    return RollbackOutcome(run_dir, status, len(steps), report)
