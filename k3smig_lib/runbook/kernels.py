"""Where the kernels of a run start: a private kernelspec and runtime folder, removed with the run.

Each run gets ``$TMPDIR/k3smig-kernels-<pid>-<random>/`` (mode 0700): a ``python3`` kernelspec that
starts :mod:`k3smig_lib.runbook.kernel` (the kernel dies with the run, with everything it started)
and the runtime folder for the connection files (they hold each kernel's message key). The folder is
removed when the run ends; a run killed before that leaves it, and the next run removes every such
folder whose PID is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from traitlets import default

from k3smig_lib.core.fsafe import atomic_write, pid_alive

PREFIX = "k3smig-kernels-"


class RunKernelManager(AsyncKernelManager):
    """The kernel manager papermill uses for a run: connection files in the run's private runtime folder.

    jupyter_client's single-kernel manager otherwise writes them as ``$TMPDIR/tmpXXXX.json``, where a
    killed run leaves them for good.
    """

    @default("connection_file")
    def _run_connection_file(self) -> str:
        return os.path.join(jupyter_runtime_dir(), f"kernel-{uuid.uuid4()}.json")


def remove_stale(tmp_root: Path | None = None) -> list[Path]:
    """Remove the kernel folders of runs whose process is gone; return them."""
    root = Path(tmp_root or tempfile.gettempdir())
    removed = []
    for folder in root.glob(f"{PREFIX}*"):
        pid = folder.name.removeprefix(PREFIX).split("-", 1)[0]
        if folder.is_dir() and not folder.is_symlink() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextmanager
def private_kernels() -> Iterator[dict[str, str]]:
    """Create the run's kernel folder; yield the environment variables that make jupyter_client use it."""
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    spec = {"argv": [sys.executable, "-m", "k3smig_lib.runbook.kernel", "-f", "{connection_file}"],
            "display_name": "Python 3 (k3smig run)", "language": "python", "metadata": {"debugger": False}}
    try:
        atomic_write(folder, "kernels/python3/kernel.json", json.dumps(spec, indent=1) + "\n")
        (folder / "runtime").mkdir(mode=0o700)
        yield {"JUPYTER_PATH": str(folder), "JUPYTER_RUNTIME_DIR": str(folder / "runtime")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
