"""Kernel launcher of ``k3smig run``: an IPython kernel that does not outlive the run that started it.

jupyter_client starts every kernel in a session (and process group) of its own, so killing the
runner, even with SIGKILL, leaves the kernel and whatever it started (tofu, ansible, promtool)
running. This launcher watches its parent: when the runner is gone it kills its whole process group
(itself and the tools it started), then the next run removes the connection files
(:func:`k3smig_lib.runbook.kernels.remove_stale`).

Usage (written into the run's private kernelspec): ``python -m k3smig_lib.runbook.kernel -f {connection_file}``.
"""

from __future__ import annotations

import os
import signal
import threading
import time

#: Seconds between two looks at the parent process.
POLL_SECONDS = 0.5


def _watch(parent: int) -> None:
    while True:
        time.sleep(POLL_SECONDS)
        if os.getppid() != parent:
            os.killpg(os.getpgrp(), signal.SIGKILL)


def main() -> None:
    """Start the parent watchdog, then the IPython kernel with the given arguments."""
    threading.Thread(target=_watch, args=(os.getppid(),), name="k3smig-parent-watch", daemon=True).start()
    from ipykernel.kernelapp import launch_new_instance

    launch_new_instance()


if __name__ == "__main__":
    main()
