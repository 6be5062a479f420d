"""Where the kernels of a run start: a private kernelspec and runtime folder, removed with the run.

Each run gets ``$TMPDIR/k3smig-kernels-<pid>-<random>/`` (mode 0700): a ``python3`` kernelspec that
starts :mod:`k3smig_lib.runbook.kernel` (the kernel dies with the run, with everything it started)
and the runtime folder for the connection files (they hold each kernel's message key).

Kernels talk to the runner over IPC (Unix sockets), never TCP: each kernel's five sockets are files
``runtime/<id>-<n>`` in that folder, and the pipe for its forked subprocesses' output is
``runtime/<id>-pipe`` (:mod:`k3smig_lib.runbook.kernel`), so only this user can reach them and no port
is opened on any interface. A Unix socket path holds at most :data:`IPC_PATH_MAX` characters; when ``$TMPDIR`` is too
deep for that, the folder goes under :data:`SHORT_ROOT` instead.

A kernel's connection file and sockets are removed when it shuts down, the folder when the run ends;
a run killed before that leaves the folder, and the next run removes every such folder whose PID is gone.
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

import zmq
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from traitlets import default

from k3smig_lib.core.fsafe import atomic_write, pid_alive
from k3smig_lib.errors import K3sMigError
from k3smig_lib.runbook.kernel import PIPE_SUFFIX

PREFIX = "k3smig-kernels-"
#: Longest path of a Unix socket (``sockaddr_un.sun_path`` less its final NUL): 107 on Linux.
IPC_PATH_MAX: int = getattr(zmq, "IPC_PATH_MAX_LEN", 107)
#: Where the kernel folder goes when ``$TMPDIR`` is too deep for socket paths.
SHORT_ROOT = Path("/tmp")
#: Characters of a kernel's socket ID (``runtime/<id>-<n>``, ``runtime/<id>-pipe``).
SOCKET_ID_CHARS = 8
_LONGEST_SOCKET = f"runtime/{'x' * SOCKET_ID_CHARS}{PIPE_SUFFIX}"


class RunKernelManager(AsyncKernelManager):
    """The kernel manager papermill uses for a run: IPC sockets and connection files in the run's runtime folder.

    jupyter_client's single-kernel manager otherwise listens on TCP ports of 127.0.0.1 (reachable by every
    local user; ipykernel warns that it is unencrypted) and writes its connection file as
    ``$TMPDIR/tmpXXXX.json``, where a killed run leaves it for good.
    """

    @default("transport")
    def _run_transport(self) -> str:
        return "ipc"

    @default("connection_file")
    def _run_connection_file(self) -> str:
        return os.path.join(jupyter_runtime_dir(), f"kernel-{uuid.uuid4()}.json")

    def _ip_default(self) -> str:
        """IPC: the sockets' path prefix, short (``runtime/<id>``) so the path fits a Unix socket address."""
        if self.transport == "ipc":
            return os.path.join(jupyter_runtime_dir(), uuid.uuid4().hex[:SOCKET_ID_CHARS])
        return str(super()._ip_default())

    def cleanup_ipc_files(self) -> None:
        """Remove the kernel's socket files: the five of jupyter_client, and the subprocess-output pipe."""
        super().cleanup_ipc_files()
        if self.transport == "ipc":
            Path(f"{self.ip}{PIPE_SUFFIX}").unlink(missing_ok=True)


def _roots() -> list[Path]:
    return list(dict.fromkeys([Path(tempfile.gettempdir()), SHORT_ROOT]))


def remove_stale(tmp_root: Path | None = None) -> list[Path]:
    """Remove the kernel folders (connection files, sockets) of runs whose process is gone; return them."""
    removed = []
    for root in [tmp_root] if tmp_root else _roots():
        for folder in root.glob(f"{PREFIX}*"):
            pid = folder.name.removeprefix(PREFIX).split("-", 1)[0]
            if (folder.is_dir() and not folder.is_symlink() and folder.stat().st_uid == os.getuid()
                    and pid.isdigit() and not pid_alive(int(pid))):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


def _make_folder() -> Path:
    """The run's kernel folder (0700) under the first root where every socket path fits."""
    name = f"{PREFIX}{os.getpid()}-"
    for root in _roots():
        longest = root / f"{name}{'x' * 8}" / _LONGEST_SOCKET  # mkdtemp adds 8 random characters
        if len(str(longest)) <= IPC_PATH_MAX:
            return Path(tempfile.mkdtemp(prefix=name, dir=root))
    raise K3sMigError(f"the temporary folder {tempfile.gettempdir()} is too deep for the kernels' sockets "
                      f"(a Unix socket path holds at most {IPC_PATH_MAX} characters) and {SHORT_ROOT} is too",
                      fix="set TMPDIR to a shorter folder, e.g. `export TMPDIR=/tmp`")


@contextmanager
def private_kernels() -> Iterator[dict[str, str]]:
    """Create the run's kernel folder; yield the environment variables that make jupyter_client use it."""
    folder = _make_folder()
    spec = {"argv": [sys.executable, "-m", "k3smig_lib.runbook.kernel", "-f", "{connection_file}"],
            "display_name": "Python 3 (k3smig run)", "language": "python", "metadata": {"debugger": False}}
    try:
        atomic_write(folder, "kernels/python3/kernel.json", json.dumps(spec, indent=1) + "\n")
        (folder / "runtime").mkdir(mode=0o700)
        yield {"JUPYTER_PATH": str(folder), "JUPYTER_RUNTIME_DIR": str(folder / "runtime")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
