"""Drive OpenTofu or Terraform through python-terraform: init, plan, apply a saved plan, outputs.

Design choices:

- ``plan`` always saves the plan and ``apply`` applies only that saved plan, so what the report
  showed is what runs; nothing here re-plans on apply.
- ``-detailed-exitcode`` separates "no diff" (0) from "diff" (2) from "error" (1); 2 is never folded
  into failure.
- The summary comes from ``show -json`` of the saved plan, not from parsing human output.
- Every command is issued with ``Terraform.cmd`` and explicit flags: python-terraform 0.10's helpers
  add ``-var-file`` to ``apply`` (refused with a saved plan) and ``-force`` to ``destroy`` (removed in
  Terraform 0.15).
- Credentials reach the provider only through the inherited environment (``SCW_*``); every message
  this module raises is scrubbed of their values.
- ``CHECKPOINT_DISABLE=1`` is always set: Terraform/OpenTofu otherwise call home to check for updates.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, Terraform

from k3smig_lib.core.config import NO_PHONE_HOME
from k3smig_lib.errors import FatalError, ParameterError, ToolMissingError
from k3smig_lib.infra._scrub import scrub, secret_values
from k3smig_lib.infra.render import PLAN_FILE, TFVARS_FILE
from k3smig_lib.log import logger

# python-terraform logs every non-zero exit (including plan's "2 = diff") as a warning with the raw
# stderr; our own errors carry the scrubbed message instead.
logging.getLogger("python_terraform").setLevel(logging.ERROR)

_BUILD_FIX = "run tools/build-infra.sh, then `source .cache/infra/env.sh` (or install OpenTofu >= 1.6)"
_CONTEXT_LINE = re.compile(r"^\s*│\s+[├│]")  # "│     │ var.x is …" and its "├───" ruler
_SNIPPET_LINE = re.compile(r"^(on .+ line \d+|\d+:)")
_ACTIONS = {
    ("create",): "create",
    ("update",): "update",
    ("delete",): "delete",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
    ("read",): "read",
}


@dataclass
class PlanSummary:
    """What a saved plan would do.

    Attributes:
        exit_code: 0 (no changes) or 2 (changes) from ``plan -detailed-exitcode``.
        changed: True when applying would change anything (resources or outputs).
        rows: one dict per resource that changes: ``address``, ``type``, ``action``
            (create, update, delete, replace, read).
        adds: resources created (a replacement counts as one add and one destroy, as Terraform says).
        changes: resources updated in place.
        destroys: resources destroyed.
    """

    exit_code: int
    changed: bool
    rows: list[dict[str, str]] = field(default_factory=list)
    adds: int = 0
    changes: int = 0
    destroys: int = 0


def find_binary() -> str:
    """Return the path of ``tofu`` if it is on PATH, else of ``terraform``.

    Returns:
        Absolute path of the binary.

    Raises:
        ToolMissingError: neither is on PATH.
    """
    for name in ("tofu", "terraform"):
        path = shutil.which(name)
        if path:
            return path
    raise ToolMissingError("neither tofu nor terraform is on PATH", fix=_BUILD_FIX)


def _client(workdir: Path, binary: str | None) -> Terraform:
    if not (workdir / "main.tf").is_file() and not any(workdir.glob("*.tf")):
        raise ParameterError(
            f"{workdir} is not a Terraform root module (no *.tf file)",
            fix="pass infrastructure/terraform/envs/<env> as the working directory",
        )
    bin_path = binary or find_binary()
    if shutil.which(bin_path) is None:
        raise ToolMissingError(f"{bin_path} is not an executable", fix=_BUILD_FIX)
    os.environ.update(NO_PHONE_HOME)  # python-terraform passes os.environ: no checkpoint (update check) call
    return Terraform(working_dir=str(workdir), terraform_bin_path=bin_path)


def _error_text(err: str, out: str) -> str:
    """Condense the tool's diagnostics to "summary: detail" per error, scrubbed of credential values.

    The source snippet and the "var.x is …" context lines are dropped: they repeat the value that
    failed, which may be a credential pasted into the wrong parameter.
    """
    errors: list[list[str]] = []
    for raw in (err or out).splitlines():
        if _CONTEXT_LINE.match(raw):
            continue
        line = raw.strip(" │╷╵").strip()
        if not line or _SNIPPET_LINE.match(line) or line.startswith("This was checked by"):
            continue
        if line.startswith("Error:"):
            errors.append([line.removeprefix("Error:").strip()])
        elif errors:
            errors[-1].append(line)
    text = "; ".join(": ".join([e[0], " ".join(e[1:])]) if len(e) > 1 else e[0] for e in errors)
    return scrub(text or (err or out).strip(), secret_values())


def _run(tf: Terraform, command: str, *args: str, ok: tuple[int, ...] = (0,), **flags: Any) -> tuple[int, str]:
    """Run one command; return (exit code, stdout) or raise FatalError with the scrubbed message."""
    logger.info("terraform: %s %s in %s", command, " ".join(args), tf.working_dir)
    with warnings.catch_warnings():  # python-terraform 0.10 calls the deprecated Logger.warn
        warnings.simplefilter("ignore", DeprecationWarning)
        rc, out, err = tf.cmd(command, *args, no_color=IsFlagged, **flags)
    if rc not in ok:
        raise FatalError(
            f"{Path(tf.terraform_bin_path).name} {command} failed in {Path(tf.working_dir).name}: "
            + _error_text(err, out),
            fix="read the message above; for a variable error, fix the parameter it names",
        )
    return rc, out


def _json(out: str) -> Any:
    """Parse the JSON document in ``out``, ignoring CLI warnings printed around it."""
    start = out.find("{")
    if start < 0:
        return {}
    return json.JSONDecoder().raw_decode(out[start:])[0]


def _write_tfvars(workdir: Path, tfvars: Mapping[str, Any]) -> None:
    path = workdir / TFVARS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(dict(tfvars), f, indent=2, sort_keys=True)


def init(workdir: Path, *, binary: str | None = None) -> None:
    """Run ``init`` (providers from the configured mirror or registry, local backend by default).

    Args:
        workdir: the root module.
        binary: explicit tofu/terraform path; :func:`find_binary` when omitted.

    Raises:
        FatalError: init failed (e.g. the provider is neither in the mirror nor reachable).
        ToolMissingError: no binary.
    """
    _run(_client(workdir, binary), "init", input=False)


def summarize_plan(plan_json: Mapping[str, Any], exit_code: int) -> PlanSummary:
    """Build the summary table from ``show -json`` of a saved plan.

    Args:
        plan_json: the parsed JSON plan.
        exit_code: the plan's detailed exit code.

    Returns:
        The summary, rows sorted by address.
    """
    rows: list[dict[str, str]] = []
    for rc in plan_json.get("resource_changes", []):
        action = _ACTIONS.get(tuple(rc.get("change", {}).get("actions", [])))
        if action is None:  # no-op
            continue
        rows.append({"address": rc["address"], "type": rc["type"], "action": action})
    rows.sort(key=lambda r: r["address"])
    acts = [r["action"] for r in rows]
    return PlanSummary(
        exit_code=exit_code,
        changed=exit_code == 2,
        rows=rows,
        adds=acts.count("create") + acts.count("replace"),
        changes=acts.count("update"),
        destroys=acts.count("delete") + acts.count("replace"),
    )


def plan(workdir: Path, tfvars: Mapping[str, Any], *, binary: str | None = None) -> PlanSummary:
    """Plan with ``-detailed-exitcode``, save the plan, and summarise it.

    Args:
        workdir: the root module (already initialised).
        tfvars: variable values, written to ``.k3smig.tfvars.json`` (mode 0600) and passed as
            ``-var-file``; never credentials.
        binary: explicit tofu/terraform path.

    Returns:
        The plan summary; the saved plan is ``<workdir>/.k3smig.tfplan``.

    Raises:
        FatalError: exit code 1, with the tool's message (a failed validation names its variable).
    """
    tf = _client(workdir, binary)
    _write_tfvars(workdir, tfvars)
    rc, _ = _run(tf, "plan", ok=(0, 2), input=False, detailed_exitcode=IsFlagged, var_file=TFVARS_FILE, out=PLAN_FILE)
    _, shown = _run(tf, "show", PLAN_FILE, json=IsFlagged)
    return summarize_plan(_json(shown), rc)


def outputs(workdir: Path, *, binary: str | None = None) -> dict[str, Any]:
    """Return the root module's output values (sensitive ones replaced by ``"(sensitive)"``).

    Args:
        workdir: the root module.
        binary: explicit tofu/terraform path.

    Returns:
        ``{name: value}``.

    Raises:
        FatalError: the command failed.
    """
    _, out = _run(_client(workdir, binary), "output", json=IsFlagged)
    raw: dict[str, Any] = _json(out)
    return {k: "(sensitive)" if v.get("sensitive") else v.get("value") for k, v in raw.items()}


def apply(workdir: Path, *, binary: str | None = None) -> dict[str, Any]:
    """Apply the plan saved by :func:`plan` (and only that plan), then return the outputs.

    Args:
        workdir: the root module.
        binary: explicit tofu/terraform path.

    Returns:
        The outputs after the apply.

    Raises:
        FatalError: no saved plan, a stale plan, or a failed apply.
    """
    plan_file = workdir / PLAN_FILE
    if not plan_file.is_file():
        raise FatalError(
            f"no saved plan in {workdir}", fix="run plan first; apply only applies the plan the report showed"
        )
    tf = _client(workdir, binary)
    _run(tf, "apply", PLAN_FILE, input=False)
    plan_file.unlink()  # applied plans are stale; a second apply must re-plan
    return outputs(workdir, binary=binary)


def destroy(workdir: Path, tfvars: Mapping[str, Any], *, binary: str | None = None) -> None:
    """Destroy everything the root module manages.

    Args:
        workdir: the root module.
        tfvars: the same variable values as the plan (variables without defaults are required).
        binary: explicit tofu/terraform path.

    Raises:
        FatalError: the destroy failed.
    """
    tf = _client(workdir, binary)
    _write_tfvars(workdir, tfvars)
    _run(tf, "destroy", input=False, auto_approve=IsFlagged, var_file=TFVARS_FILE)
    (workdir / PLAN_FILE).unlink(missing_ok=True)
