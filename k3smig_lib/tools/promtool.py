"""Prometheus configuration check: ``promtool check config``, else the structural check of core.

``prometheus_check`` runs ``promtool`` when it is on ``PATH`` (the Debian ``prometheus`` package
ships ``/usr/bin/promtool``). Without it a structural check runs instead
(:func:`k3smig_lib.core.appchecks.structural_problems`), and its ``note`` says so — a report must
never present the weaker check as the real one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from k3smig_lib.core.appchecks import structural_problems
from k3smig_lib.errors import AppCheckError

_OUTPUT_LIMIT = 4000
_MISSING_SD = re.compile(r"field (\w+_sd_configs) not found in type")


@dataclass
class PromCheck:
    """Outcome of a Prometheus configuration check.

    Attributes:
        tool: ``promtool`` (the real parser) or ``structural`` (our fallback).
        ok: the configuration passed.
        output: the tool output, or the list of problems found.
        note: what was checked and how much to trust it.
    """

    tool: Literal["promtool", "structural"]
    ok: bool
    output: str
    note: str

    def raise_if_failed(self) -> None:
        """Raise :class:`AppCheckError` with the output unless the check passed."""
        if not self.ok:
            raise AppCheckError(f"Prometheus configuration check ({self.tool}) failed: {self.output}",
                                fix="fix the configuration (ConfigMap) before starting Prometheus on K3s")


def prometheus_check(config: Path) -> PromCheck:
    """Check a Prometheus configuration file: ``promtool check config``, else a structural check.

    Args:
        config: ``prometheus.yml`` (files it references are resolved relative to it by promtool).

    Returns:
        The result; ``tool`` says which check ran.

    Raises:
        AppCheckError: the file does not exist.

    Examples:
        >>> prometheus_check(Path("prometheus.yml")).tool  # doctest: +SKIP
        'promtool'
    """
    if not config.is_file():
        raise AppCheckError(f"Prometheus configuration {config} does not exist")
    promtool = shutil.which("promtool")
    if promtool is None:
        problems = structural_problems(config.read_text(encoding="utf-8"))
        return PromCheck(
            tool="structural", ok=not problems, output="\n".join(problems) or "no problems found",
            note="promtool was not found on PATH, so only the YAML structure, keys, job names and "
                 "durations were checked; install promtool (Debian package 'prometheus')",
        )
    try:
        done = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True,
                              timeout=120, check=False)
    except subprocess.TimeoutExpired as e:
        return PromCheck(tool="promtool", ok=False, output=f"timed out: {e}", note=f"ran {promtool}")
    output = (done.stdout + done.stderr).strip()[:_OUTPUT_LIMIT]
    missing_sd = sorted(set(_MISSING_SD.findall(output)))
    if done.returncode != 0 and missing_sd:
        # Debian builds promtool without some service discoveries (Kubernetes among them): its "field
        # kubernetes_sd_configs not found" is a limit of that build, not an error in the configuration.
        problems = structural_problems(config.read_text(encoding="utf-8"))
        return PromCheck(
            tool="structural", ok=not problems, output="\n".join(problems) or "no problems found",
            note=f"{promtool} was built without {', '.join(missing_sd)}, so only the structure was checked; "
                 "build upstream promtool with tools/build-promtool.sh",
        )
    return PromCheck(tool="promtool", ok=done.returncode == 0, output=output,
                     note=f"ran {promtool} check config (exit code {done.returncode})")
