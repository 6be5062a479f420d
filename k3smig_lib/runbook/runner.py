"""``k3smig run``: execute the phase notebooks in order with papermill and keep the audit trail.

The runner is the only place that holds secret values in memory across phases: it gives every kernel
the per-run HMAC key through the environment (never on disk), and after each phase it scans every
file of the run for every secret value seen. Parameters are checked against each notebook's declared
parameters before anything runs (R3), and each notebook receives only the keys it declares.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import nbformat
import papermill
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from k3smig_lib.backends.directory_volumes import leftovers_of_killed_runs
from k3smig_lib.core.config import (
    BATCH_ENV,
    NO_PHONE_HOME,
    PACKAGE_ROOT,
    Settings,
    check_parameters,
    read_parameters_file,
)
from k3smig_lib.core.dirlock import DirectoryLock
from k3smig_lib.core.fsafe import atomic_write, remove_leftovers
from k3smig_lib.core.leakgate import scan
from k3smig_lib.core.objects import sha256_of
from k3smig_lib.core.paths import scrub, shown
from k3smig_lib.core.secrets import RUN_KEY_ENV
from k3smig_lib.errors import K3sMigError, ParameterError, PhaseError
from k3smig_lib.log import logger
from k3smig_lib.phases.catalog import PHASES, RESULT_FILE, PhaseStatus, now_iso, phase_dir, report_status
from k3smig_lib.phases.context import open_source, open_target, target_ref
from k3smig_lib.runbook.failure import Failure, failure_of, redact_error_outputs
from k3smig_lib.runbook.index import write_index
from k3smig_lib.runbook.kernels import private_kernels, remove_stale
from k3smig_lib.runbook.leaks import Redactor, env_values, gate, key_values, source_values
from k3smig_lib.runbook.ledger import PhaseRecord, chain_record, read_ledger, write_ledger
from k3smig_lib.runbook.record import anchor, sign_run, signing_facts, write_public_key
from k3smig_lib.runbook.report import write_phase_report
from k3smig_lib.runbook.version import code_version
from k3smig_lib.runbook.warm import PhaseKernels

if TYPE_CHECKING:  # the Kubernetes client is imported only by a run whose target is a cluster
    from k3smig_lib.k8s.lock import RunLock

NOTEBOOKS = PACKAGE_ROOT / "notebooks"


@dataclass
class RunOutcome:
    """Where the run is and how it ended."""

    run_dir: Path
    status: PhaseStatus
    verdict: str
    failed_phase: str = ""
    digest: str = ""
    anchor: str = ""

    @property
    def exit_code(self) -> int:
        """0 Completed, 3 PartiallyFailed, 1 Failed (non-zero for both, as the safety model asks)."""
        return {PhaseStatus.COMPLETED: 0, PhaseStatus.PARTIALLY_FAILED: 3}.get(self.status, 1)


def select_phases(spec: str | None) -> list[str]:
    """Phases named by ``--phases`` (``30-60``, ``40``, ``00,30-40``); all when empty.

    Raises:
        ParameterError: a range names no phase.

    Examples:
        >>> select_phases("30-50")
        ['30_inventory_source', '40_export_manifests', '50_migrate_secrets']
    """
    if not spec:
        return list(PHASES)
    chosen: list[str] = []
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        hi = hi or lo
        if not (lo.isdigit() and hi.isdigit()):
            raise ParameterError(f"--phases {spec!r} is not a list of phase numbers", fix="write e.g. 30-60 or 00,40")
        picked = [p for p in PHASES if int(lo) <= int(p[:2]) <= int(hi)]
        if not picked:
            raise ParameterError(f"--phases {part!r} selects no phase", fix="phases are 00, 10, … 90")
        chosen += [p for p in picked if p not in chosen]
    return sorted(chosen)


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """Parameters a notebook declares in its ``parameters`` cell (papermill's own parser)."""
    return dict(papermill.inspect_notebook(str(notebook)))


def split_parameters(params: Mapping[str, Any], notebooks: Mapping[str, Path]) -> dict[str, dict[str, Any]]:
    """Give each notebook the keys it declares; refuse keys no notebook declares (with the fix).

    Raises:
        ParameterError: a key is declared by no notebook.
    """
    declared = {name: declared_parameters(path) for name, path in notebooks.items()}
    every = set().union(*(set(d) for d in declared.values()))
    for key in params:
        if key not in every:
            raise ParameterError(f"parameter {key!r} is declared by no phase notebook",
                                 fix="remove it, or declare it in the parameters cell of the notebook that needs it")
    return {name: {k: v for k, v in params.items() if k in d} for name, d in declared.items()}


@contextmanager
def kernel_environment(run_key: str) -> Iterator[None]:
    """Environment every kernel inherits, restored afterwards.

    The run's HMAC key, batch mode, no phone-home, and a private kernelspec and runtime folder
    (:mod:`k3smig_lib.runbook.kernels`): kernels die with the run, and their connection files go with it.
    """
    remove_stale()
    with private_kernels() as kernel_env:
        wanted = {RUN_KEY_ENV: run_key, BATCH_ENV: "1", **NO_PHONE_HOME, **kernel_env}
        saved = {k: os.environ.get(k) for k in wanted}
        os.environ.update(wanted)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def leak_values(cfg: Settings, run_key: str) -> dict[bytes, str]:
    """Every secret value this run could leak, labelled with where it comes from.

    Source Secrets, credentials from the environment, and the keys of the run itself.
    """
    return {**source_values(open_source(cfg).list_objects()), **env_values(), **key_values(cfg, run_key)}


RunLockLike: TypeAlias = "RunLock | DirectoryLock"


class Runner:
    """One run: its folder, its parameters, its ledger records.

    The run folder is created only when the first phase is about to run: a run refused before that
    (bad ``--phases``, a held lock, an unreadable source) leaves nothing behind.
    """

    def __init__(self, params: dict[str, Any], run_dir: Path, records: list[dict[str, Any]] | None = None,
                 *, resumed: bool = False) -> None:
        env = str(params.get("environment", "demo"))
        self.resumed = resumed
        params = {**params, "target_dir": str(Path(params.get("target_dir") or Path("targets") / env).resolve())}
        self.params = params
        self.records = records or []
        self.notebooks = {p: NOTEBOOKS / f"{p}.ipynb" for p in PHASES}
        self.per_notebook = split_parameters(params, self.notebooks)
        self.run_key = secrets.token_hex(32)
        self._set_run_dir(run_dir)
        self.header: dict[str, Any] = {
            "run_id": run_dir.name, "environment": self.cfg.environment, "created": now_iso(),
            "code_version": code_version(), "parameters": params, "parameters_sha256": sha256_of(params),
            "parameters_shown": {k: scrub(v) if isinstance(v, str) else v for k, v in params.items()},
            "status": "running",
        }

    def _set_run_dir(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.cfg = Settings(**{**self.params, "run_dir": str(run_dir)})

    def _create_run_dir(self) -> None:
        """Create the run folder now (a new name if another run took this one meanwhile)."""
        if self.resumed:
            remove_leftovers(self.run_dir)  # temp files of writes the killed attempt did not finish
            return
        base, n = self.run_dir, 1
        while True:
            try:
                self.run_dir.mkdir(parents=True)
                break
            except FileExistsError:
                n += 1
                self._set_run_dir(base.with_name(f"{base.name}-{n}"))
        self.header["run_id"] = self.run_dir.name

    def _execute(self, phase: str, kernels: PhaseKernels, next_phase: str | None = None,
                 values: Mapping[bytes, str] | None = None) -> dict[str, Any]:
        """Run one phase notebook and return its ledger record (:class:`PhaseRecord` as JSON).

        When a cell raises, the record keeps where (``failure``: the cell, its source, the traceback) beside
        the one-line ``errors`` entry; every secret value in ``values`` is removed from that text and from
        the notebook's error output before any report is written (the leak gate still scans every file).
        """
        out = self.run_dir / f"{phase}.ipynb"
        params = {**self.per_notebook[phase], "run_dir": str(self.run_dir)}
        result_path = phase_dir(self.cfg, phase) / RESULT_FILE
        result_path.unlink(missing_ok=True)  # a result of an earlier attempt must never pass for this one
        started, t0 = now_iso(), time.monotonic()
        error, timing, raised = "", {}, ("", "")
        try:
            timing = kernels.execute(phase, self.notebooks[phase], out, params, next_phase)
        except papermill.PapermillExecutionError as e:
            raised = (str(e.ename), str(e.evalue))
        except (DeadKernelError, CellTimeoutError) as e:  # the kernel died (OOM, killed) or hung
            raised = (type(e).__name__, str(e))
        failure = self._failure(out, *raised, Redactor(values or {})) if raised[0] else None
        if failure is not None:
            error = scrub(f"{failure.ename}: {failure.evalue}"[:500])
        result = json.loads(result_path.read_text()) if result_path.is_file() else {}
        if failure is not None:
            result = {**result, "phase": phase, "failure": failure.to_json()}
            if result.get("status") != PhaseStatus.FAILED:  # a cell raised before the phase could record it
                result.update(status=PhaseStatus.FAILED, errors=[*result.get("errors", []), error])
            result["report_status"] = report_status(result)
            atomic_write(self.run_dir, f"artifacts/{phase}/{RESULT_FILE}",
                         json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
        t_html = time.monotonic()
        if out.is_file():
            write_phase_report(self.run_dir, phase, self.header)
        timing["html"] = round(time.monotonic() - t_html, 2)
        record = PhaseRecord(
            phase=phase, status=PhaseStatus.FAILED if error else result.get("status", PhaseStatus.FAILED),
            started=started,
            seconds=round(time.monotonic() - t0, 2), timing=timing, summary=result.get("summary", {}),
            errors=result.get("errors") or ([error] if error else []), warnings=result.get("warnings", []),
            notes=result.get("notes", []), degraded=result.get("degraded", []), not_run=result.get("not_run", ""),
            failure=failure)
        return record.to_json()

    def _failure(self, out: Path, ename: str, evalue: str, redact: Redactor) -> Failure:
        """The failure record; the executed notebook is rewritten only if its error output quoted a secret."""
        try:
            nb = nbformat.read(str(out), as_version=4) if out.is_file() else None
        except (OSError, ValueError) as e:  # a kernel killed while papermill wrote: record what was caught
            logger.warning("executed notebook %s unreadable (%s): failure recorded without its cell", out.name, e)
            nb = None
        removed = redact_error_outputs(nb, redact) if nb is not None else []
        if nb is not None and removed:
            atomic_write(self.run_dir, out.name, nbformat.writes(nb))  # as papermill writes it
        failure = failure_of(nb, ename, evalue, redact)  # from the cleaned notebook: say what was removed there
        return replace(failure, redacted=sorted({*failure.redacted, *removed}))

    def _gate(self, values: dict[bytes, str]) -> None:
        report = scan(self.run_dir, values)
        if not report.ok:
            objects = open_source(self.cfg).list_objects() if self.cfg.source_kind == "snapshot" else []
            self.run_dir = gate(self.run_dir, report, values, objects)

    def run(self, phases: list[str]) -> RunOutcome:
        """Execute ``phases`` in order under the target's run lock; stop at the first failure.

        Raises:
            LockHeldError: another run holds the live target's lock (nothing was changed, no folder made).
            TargetLockedError: another run holds the directory target's lock (idem).
        """
        self.header.setdefault("phases_selected", phases)
        lock = self._lock()
        try:
            return self._run(phases, lock)
        finally:
            lock.release()

    def _lock(self) -> RunLockLike:
        """One run at a time per target (a Lease live, a lock file for a directory), before any phase runs."""
        if self.cfg.target_kind == "cluster":
            from k3smig_lib.backends.live_target import LiveTarget

            lock = LiveTarget(target_ref(self.cfg)).lock(self.run_dir.name)
            self.header["run_lock"] = scrub(lock.acquire().report)
            return lock
        dir_lock = DirectoryLock(self.cfg.target_path(), self.run_dir.name)
        self.header["run_lock"] = scrub(dir_lock.acquire().report)
        removed = leftovers_of_killed_runs(self.cfg.target_path())
        if removed:
            self.header["leftovers_removed"] = [shown(p) for p in removed]
            logger.warning("removed %d leftovers of a killed run under %s", len(removed), self.cfg.target_path())
        return dir_lock

    def _run(self, phases: list[str], lock: RunLockLike) -> RunOutcome:
        failed = ""
        with kernel_environment(self.run_key), PhaseKernels() as kernels:
            kernels.start_ahead(phases[0])  # the first kernel boots while the source is read for the leak gate
            try:
                values = leak_values(self.cfg, self.run_key)
            except K3sMigError as e:
                # Without the source's Secret values the leak gate cannot guard later phases: only preflight
                # runs, and its report says what is wrong with the source (permissions, reachability).
                if "00_preflight" not in phases:
                    raise
                logger.warning("source unreadable (%s): running preflight only", e)
                values, phases = {**env_values(), **key_values(self.cfg, self.run_key)}, ["00_preflight"]
            self.header.setdefault("source", self._identity("source"))
            self.header.setdefault("target", self._identity("target"))
            self._create_run_dir()
            self._save()  # from here on, --resume finds a ledger even after SIGKILL
            for phase, next_phase in zip(phases, [*phases[1:], None], strict=True):
                lock.renew()  # the live Lease expires unless renewed; the directory lock needs nothing
                logger.info("running %s", phase)
                print(f"[k3smig] {phase} …", flush=True)
                record = self._execute(phase, kernels, next_phase, values)
                self.records.append(chain_record(self.records[-1]["hash"] if self.records else "", record))
                values |= key_values(self.cfg, self.run_key)  # phase 50 may have created the environment's key
                self._gate(values)
                self._save()
                print(f"[k3smig] {phase}: {record['status']} ({record['seconds']} s)", flush=True)
                if record["status"] == PhaseStatus.FAILED:
                    failed = phase
                    break
        return self._close(failed)

    def _identity(self, side: str) -> dict[str, str]:
        """Source or target as every report's header names it (paths shown project- or home-relative)."""
        if side == "target" and self.cfg.target_kind == "directory":  # opening it could create the age key
            return {"kind": "directory", "location": shown(self.cfg.target_path()), "distribution": "k3s (GitOps tree)"}
        try:
            info = vars(open_source(self.cfg).info() if side == "source" else open_target(self.cfg).info())
        except K3sMigError as e:
            return {"kind": side, "location": f"not readable: {scrub(str(e))[:200]}"}
        return {k: scrub(str(v)) for k, v in info.items() if v}

    def _verdict(self) -> str:
        verdict_file = phase_dir(self.cfg, "90_validate_migration") / "verdict.json"
        return str(json.loads(verdict_file.read_text())["verdict"]) if verdict_file.is_file() else ""

    def _save(self) -> None:
        """Write run.json and index.html as they stand (after every phase, so a crash loses at most one)."""
        write_index(self.run_dir, self.header, self.records, self._verdict())
        write_ledger(self.run_dir, self.header, self.records)

    def _close(self, failed: str) -> RunOutcome:
        latest = {r["phase"]: r["status"] for r in self.records}
        status = (PhaseStatus.FAILED if failed else PhaseStatus.PARTIALLY_FAILED
                  if PhaseStatus.PARTIALLY_FAILED in latest.values() else PhaseStatus.COMPLETED)
        verdict = self._verdict()
        self.header.update({"status": status, "finished": now_iso(), "verdict": verdict, "failed_phase": failed})
        self.header["signing"] = signing_facts(write_public_key(self.run_dir))
        self._save()
        digest = sign_run(self.run_dir)  # after the last write into the run folder
        return RunOutcome(self.run_dir, status, verdict, failed, digest=digest, anchor=self._anchor(digest))

    def _anchor(self, digest: str) -> str:
        """Record the run digest on the target it wrote to (never in a dry run); say where, or why not."""
        if not self.cfg.apply:
            return "not recorded: dry run (nothing was written to the target)"
        try:
            return anchor(self.cfg, self.run_dir.name, digest)
        except K3sMigError as e:
            logger.warning("run digest not recorded on the target: %s", e)
            return f"not recorded: {e}"


def new_run_dir(runs_root: Path, environment: str) -> Path:
    """``runs/<UTC timestamp>-<environment>``: the folder a new run will create (not created here).

    A suffix is added if a run of the same second exists already; the runner adds another if one
    appears before it creates the folder.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = runs_root / f"{stamp}-{environment}"
    n = 1
    while path.exists():
        n += 1
        path = runs_root / f"{stamp}-{environment}-{n}"
    return path.resolve()


def run(params_file: Path, *, phases: str | None = None, runs_root: Path = Path("runs"),
        overrides: Mapping[str, Any] | None = None) -> RunOutcome:
    """Run the selected phases with one parameters file in a new run folder.

    Args:
        params_file: ``parameters/<env>.yaml``.
        phases: ``--phases`` selection (all when ``None``).
        runs_root: folder that holds run folders.
        overrides: parameters that replace the file's (checked the same way).

    Raises:
        ParameterError: bad parameters (before anything runs).
        SecretLeakError: a secret value reached a run file (the run is quarantined).
    """
    params = read_parameters_file(params_file)
    if overrides:
        check_parameters(overrides, source="overrides")
        params.update(overrides)
    selected = select_phases(phases)
    env = str(params.get("environment", "demo"))
    runner = Runner(params, new_run_dir(runs_root, env))
    return runner.run(selected)


def resume(run_dir: Path, phases: str | None = None) -> RunOutcome:
    """Continue a run from its first phase that did not complete, with the same parameters.

    Args:
        run_dir: the run folder.
        phases: later phases to add to the run (``80-90``: the cutover days after the data moved, in the
            same run, so validation sees every phase); ``None`` keeps the run's own selection.

    Raises:
        PhaseError: the run already completed (every selected phase).
    """
    ledger = read_ledger(run_dir)
    records = list(ledger.get("phases", []))
    done = [r["phase"] for r in records if r["status"] in (PhaseStatus.COMPLETED, PhaseStatus.PARTIALLY_FAILED)]
    selected = list(ledger.get("phases_selected", PHASES))
    if phases:
        selected = [p for p in PHASES if p in selected or p in select_phases(phases)]
    todo = [p for p in selected if p not in done]
    if not todo:
        raise PhaseError(f"run {run_dir.name} already completed every phase", fix="start a new run instead")
    runner = Runner(dict(ledger["parameters"]), run_dir.resolve(), records, resumed=True)
    runner.header["created"] = ledger.get("created", runner.header["created"])
    # the reports of the phases already run name the first attempt's code and clusters: keep them, so every
    # page re-renders from run.json; a resume under other code is recorded beside
    if ledger.get("code_version", runner.header["code_version"]) != runner.header["code_version"]:
        runner.header["resumed_code_version"] = runner.header["code_version"]
    runner.header.update({k: ledger[k] for k in ("code_version", "source", "target") if k in ledger})
    runner.header["resumed"] = now_iso()
    runner.header["phases_selected"] = selected
    return runner.run(todo)
