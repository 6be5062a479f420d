"""Kernels started one phase ahead: the next phase's kernel boots while the current phase runs.

Every phase runs in a fresh kernel of its own, as before (no state, no secret value and no import
crosses from one phase to the next). What a run shares is the *cost* that is the same every time:
starting the interpreter, ipykernel, pandas, matplotlib and the phase's own module. That cost is
paid by the next phase's kernel while the current phase executes (on the second core, or while the
current kernel waits on a tool), so a phase finds its kernel ready, its modules imported. papermill
allows this: it executes with a kernel manager it is given (``km``) and leaves that kernel running,
and this module shuts it down when the phase ends.

The kernel imports the modules named in :data:`PRELOAD_ENV` before it serves (see
:mod:`k3smig_lib.runbook.kernel`); the notebooks import them again, for free, in the same cells as
before, so every executed notebook is identical in content.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import papermill
from jupyter_core.utils import run_sync

from k3smig_lib.runbook.kernel import PRELOAD_ENV
from k3smig_lib.runbook.kernels import RunKernelManager

#: Seconds a kernel may take to answer its first ``kernel_info`` (papermill's own default is 60).
READY_TIMEOUT = 120
#: What every phase imports (``k3smig_lib.show``: pandas, matplotlib, IPython.display).
COMMON = ("k3smig_lib", "k3smig_lib.show")
#: The phase module each notebook reaches through ``k3smig.<name>``.
PHASE_MODULES = {
    "00": "k3smig_lib.phases.preflight", "10": "k3smig_lib.phases.infrastructure",
    "20": "k3smig_lib.phases.infrastructure", "30": "k3smig_lib.phases.inventory",
    "40": "k3smig_lib.phases.export", "50": "k3smig_lib.phases.secrets", "60": "k3smig_lib.phases.deploy",
    "70": "k3smig_lib.phases.data", "80": "k3smig_lib.phases.network", "90": "k3smig_lib.phases.validate",
}


def preload_for(phase: str) -> str:
    """Modules the kernel of ``phase`` imports before it serves, comma-separated."""
    module = PHASE_MODULES.get(phase[:2])
    return ",".join([*COMMON, module] if module else COMMON)


class PhaseKernels:
    """The run's kernels: the one executing now, and the next one booting.

    Use as a context manager inside the run's kernel environment (the kernels inherit it when they
    start); leaving it shuts down a kernel started for a phase that never ran (a failed run stops early).
    """

    def __init__(self) -> None:
        self._ahead: tuple[str, RunKernelManager] | None = None

    def __enter__(self) -> PhaseKernels:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._ahead is not None:
            _shutdown(self._ahead[1])
            self._ahead = None

    def start_ahead(self, phase: str) -> None:
        """Start the kernel ``phase`` will use; it boots and preloads while other work goes on."""
        if self._ahead is not None and self._ahead[0] == phase:
            return
        self.__exit__(None, None, None)
        self._ahead = (phase, _start(phase))

    def _take(self, phase: str) -> RunKernelManager:
        if self._ahead is not None and self._ahead[0] == phase:
            km = self._ahead[1]
            self._ahead = None
            return km
        self.__exit__(None, None, None)
        return _start(phase)

    def execute(self, phase: str, notebook: Path, out: Path, parameters: dict[str, Any],
                next_phase: str | None) -> dict[str, float]:
        """Execute one phase notebook in its kernel; start the next phase's kernel once this one is ready.

        Returns:
            Seconds spent waiting for the kernel (``kernel_start``) and executing (``execute``).

        Raises:
            papermill.PapermillExecutionError: a cell raised (the notebook is written with the error).
            nbclient.exceptions.DeadKernelError: the kernel died.
            nbclient.exceptions.CellTimeoutError: a cell hung.
        """
        t0 = time.monotonic()
        km = self._take(phase)
        try:
            _wait_ready(km)
            t1 = time.monotonic()
            if next_phase:
                self.start_ahead(next_phase)
            papermill.execute_notebook(str(notebook), str(out), parameters=parameters, kernel_name="python3",
                                       progress_bar=False, kernel_manager_class=RunKernelManager, km=km)
        finally:
            _shutdown(km)
        return {"kernel_start": round(t1 - t0, 2), "execute": round(time.monotonic() - t1, 2)}


def _start(phase: str) -> RunKernelManager:
    km = RunKernelManager(kernel_name="python3")
    run_sync(km.start_kernel)(env={**os.environ, PRELOAD_ENV: preload_for(phase)})
    return km


def _wait_ready(km: RunKernelManager) -> None:
    client = km.client()
    client.start_channels()
    try:
        run_sync(client.wait_for_ready)(timeout=READY_TIMEOUT)
    finally:
        client.stop_channels()


def _shutdown(km: RunKernelManager) -> None:
    """Stop a kernel and remove its connection file (what nbclient does for a kernel it owns)."""
    try:
        if run_sync(km.is_alive)():
            run_sync(km.shutdown_kernel)(now=False)
    finally:
        run_sync(km.cleanup_resources)()
