"""Kernel launcher of ``k3smig run``: an IPython kernel that does not outlive the run that started it.

jupyter_client starts every kernel in a session (and process group) of its own, so killing the
runner, even with SIGKILL, leaves the kernel and whatever it started (tofu, ansible, promtool)
running. This launcher watches its parent: when the runner is gone it kills its whole process group
(itself and the tools it started), then the next run removes the connection files
(:func:`k3smig_lib.runbook.kernels.remove_stale`).

Before it serves, the kernel imports the modules named in ``$K3SMIG_KERNEL_PRELOAD`` (the runner
starts each phase's kernel one phase ahead, :mod:`k3smig_lib.runbook.warm`), so the notebook's own
imports cost nothing when its cells run. Matplotlib's backend is set first to the inline one, as
ipykernel would, so a preloaded module cannot pick another.

Usage (written into the run's private kernelspec): ``python -m k3smig_lib.runbook.kernel -f {connection_file}``.
"""

from __future__ import annotations

import importlib
import os
import signal
import threading
import time

#: Seconds between two looks at the parent process.
POLL_SECONDS = 0.5
#: Comma-separated modules to import before the kernel serves; removed from the kernel's environment.
PRELOAD_ENV = "K3SMIG_KERNEL_PRELOAD"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def _watch(parent: int) -> None:
    while True:
        time.sleep(POLL_SECONDS)
        if os.getppid() != parent:
            os.killpg(os.getpgrp(), signal.SIGKILL)


def _preload() -> None:
    names = [n for n in os.environ.pop(PRELOAD_ENV, "").split(",") if n]
    if names and not os.environ.get("MPLBACKEND"):
        os.environ["MPLBACKEND"] = INLINE_BACKEND
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the notebook's own import shows the error, in its cell
            return


def main() -> None:
    """Start the parent watchdog, preload the phase's modules, then the IPython kernel."""
    threading.Thread(target=_watch, args=(os.getppid(),), name="k3smig-parent-watch", daemon=True).start()
    _preload()
    from ipykernel.kernelapp import launch_new_instance

    launch_new_instance()


if __name__ == "__main__":
    main()
