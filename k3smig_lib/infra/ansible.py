"""Drive ansible-playbook through ansible-runner and turn its events into report tables.

Design choices:

- The report tables come from runner *events* (one per task result), not from the text output: the
  per-host recap is the ``playbook_on_stats`` event, the per-task table is every ``runner_on_*``
  event, and failures keep the task and the module's message.
- Check mode is the dry run (``--check``): nothing on the VM changes unless ``apply`` says so.
- ansible-runner writes the *whole* environment of the run into ``artifacts/<id>/command`` and the raw
  output into ``stdout`` and ``job_events``. The roles read the Scaleway credentials from that
  environment, so after every run this module rewrites those artifacts with credential values masked,
  and scrubs every string it returns. Roles still use ``no_log`` on tasks that handle credentials.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from k3smig_lib.errors import ParameterError, ToolMissingError
from k3smig_lib.infra._scrub import scrub, scrub_obj, secret_values
from k3smig_lib.log import logger

_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}
_MSG_LEN = 300
_STATS_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "dark": "unreachable",
    "failures": "failed",
    "skipped": "skipped",
}


@dataclass
class RunnerResult:
    """Outcome of one playbook run, ready for report tables.

    Attributes:
        status: ansible-runner status (``successful``, ``failed``, ``timeout``, ``canceled``).
        rc: ansible-playbook exit code.
        recap: one row per host: ``host``, ``ok``, ``changed``, ``unreachable``, ``failed``, ``skipped``.
        tasks: one row per task result: ``host``, ``role``, ``task``, ``status``
            (ok, changed, failed, skipped, unreachable, ignored), ``changed``, ``msg``.
        failures: the failed and unreachable rows (errors ignored by the playbook excluded).
    """

    status: str
    rc: int
    recap: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> int:
        """Total number of changed task results over all hosts (0 proves idempotence)."""
        return sum(int(r["changed"]) for r in self.recap)


def _playbook_binary() -> str:
    """Prefer the ansible-playbook of this interpreter's environment, then PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    if beside.is_file():
        return str(beside)
    found = shutil.which("ansible-playbook")
    if found is None:
        raise ToolMissingError(
            "ansible-playbook is not installed",
            fix="pip install ansible-core ansible (the ansible package bundles kubernetes.core)",
        )
    return found


def _message(res: Mapping[str, Any]) -> str:
    """The one line an operator needs from a task result."""
    if res.get("censored"):
        return str(res["censored"])
    for key in ("msg", "stderr", "reason"):
        value = res.get(key)
        if value:
            text = value if isinstance(value, str) else json.dumps(value)
            return text if len(text) <= _MSG_LEN else text[: _MSG_LEN - 1] + "…"
    return ""


def task_row(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """Turn one runner event into a task-table row, or None for events that are not task results.

    Args:
        event: an ansible-runner event (``event`` and ``event_data`` keys).

    Returns:
        ``host``, ``role``, ``task``, ``status``, ``changed``, ``msg``, ``ignored``.
    """
    status = _RESULT_EVENTS.get(str(event.get("event")))
    if status is None:
        return None
    data = event.get("event_data", {})
    res = data.get("res", {}) or {}
    changed = bool(res.get("changed", False))
    ignored = status == "failed" and bool(data.get("ignore_errors"))
    if status == "ok" and changed:
        status = "changed"
    if ignored:
        status = "ignored"
    return {
        "host": data.get("host", ""),
        "role": data.get("role", ""),
        "task": data.get("task", ""),
        "status": status,
        "changed": changed,
        "msg": _message(res) if status in ("failed", "ignored", "unreachable", "skipped") else "",
    }


def recap_rows(stats: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Turn the ``playbook_on_stats`` counters into one row per host.

    Args:
        stats: ansible-runner's ``Runner.stats`` (``ok``, ``changed``, ``dark``, ``failures``,
            ``skipped`` → ``{host: count}``).

    Returns:
        Rows sorted by host.
    """
    stats = stats or {}
    hosts: set[str] = set()
    for key in _STATS_KEYS:
        hosts.update((stats.get(key) or {}).keys())
    rows = []
    for host in sorted(hosts):
        row: dict[str, Any] = {"host": host}
        for key, column in _STATS_KEYS.items():
            row[column] = int((stats.get(key) or {}).get(host, 0))
        rows.append(row)
    return rows


def _scrub_artifacts(private_data_dir: Path, values: list[str]) -> None:
    """Mask credential values in every artifact ansible-runner wrote (command env, stdout, events)."""
    if not values:
        return
    for path in (private_data_dir / "artifacts").rglob("*"):
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        cleaned = scrub(text, values)
        if cleaned != text:
            path.write_text(cleaned, encoding="utf-8")


def _collect(events: Iterable[Mapping[str, Any]], values: list[str]) -> list[dict[str, Any]]:
    rows = [row for row in (task_row(e) for e in events) if row is not None]
    return [scrub_obj(r, values) for r in rows]


def run_playbook(
    playbook: Path,
    inventory: str | Path,
    *,
    check: bool,
    extravars: Mapping[str, Any] | None = None,
    private_data_dir: Path | None = None,
) -> RunnerResult:
    """Run a playbook and return its recap, task table and failures.

    Args:
        playbook: path of the playbook (its folder's ``ansible.cfg`` and ``roles/`` apply).
        inventory: path of an inventory file, or inventory text (YAML or INI).
        check: True runs in check mode (``--check``): the dry run.
        extravars: extra variables (never credentials: roles read those from the environment).
        private_data_dir: where ansible-runner keeps its artifacts (scrubbed after the run);
            a temporary folder, removed afterwards, when omitted.

    Returns:
        The run's outcome; a failed play is a result (``status == "failed"``), not an exception.

    Raises:
        ParameterError: the playbook does not exist.
        ToolMissingError: ansible-playbook is not installed.
    """
    playbook = playbook.absolute()
    if not playbook.is_file():
        raise ParameterError(f"playbook {playbook} does not exist", fix="pass the path of ansible/site.yml")
    binary = _playbook_binary()
    if isinstance(inventory, Path) or (
        isinstance(inventory, str) and "\n" not in inventory and Path(inventory).is_file()
    ):
        inventory = str(Path(inventory).absolute())
    values = secret_values()
    owned = private_data_dir is None
    pdd = Path(tempfile.mkdtemp(prefix="k3smig-ansible-")) if owned else Path(private_data_dir or ".")
    pdd.mkdir(parents=True, exist_ok=True)
    # ansible-runner runs "ansible-playbook" from PATH (its ``binary`` option switches to a raw mode
    # without events), so the directory of the one we found goes first.
    path = os.pathsep.join([str(Path(binary).parent), os.environ.get("PATH", "")])
    envvars = {"ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "PATH": path}
    if (playbook.parent / "ansible.cfg").is_file():
        envvars["ANSIBLE_CONFIG"] = str(playbook.parent / "ansible.cfg")
    logger.info("ansible: %s%s", playbook.name, " (check mode)" if check else "")
    try:
        runner = ansible_runner.run(
            private_data_dir=str(pdd),
            project_dir=str(playbook.parent),
            playbook=str(playbook),
            inventory=inventory,
            extravars=dict(extravars or {}),
            envvars=envvars,
            cmdline="--check" if check else None,
            quiet=True,
            suppress_env_files=True,
        )
        tasks = _collect(runner.events, values)
        result = RunnerResult(
            status=str(runner.status),
            rc=int(runner.rc),
            recap=recap_rows(runner.stats),
            tasks=tasks,
            failures=[t for t in tasks if t["status"] in ("failed", "unreachable")],
        )
    finally:
        _scrub_artifacts(pdd, values)
        if owned:
            shutil.rmtree(pdd, ignore_errors=True)
    return result
