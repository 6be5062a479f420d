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

The runner gives its kernels the IPC transport (:mod:`k3smig_lib.runbook.kernels`): their sockets are
files in the run's private folder. ipykernel still opens one TCP port of its own, on 127.0.0.1: the pipe
that carries the output of forked subprocesses to the IOPub thread. This launcher puts that pipe on a
Unix socket beside the others (``<prefix>-pipe``), so an IPC kernel listens on no TCP port at all.

Usage (written into the run's private kernelspec): ``python -m k3smig_lib.runbook.kernel -f {connection_file}``.
"""

from __future__ import annotations

import importlib
import os
import signal
import threading
import time
from typing import Any

#: Seconds between two looks at the parent process.
POLL_SECONDS = 0.5
#: Comma-separated modules to import before the kernel serves; removed from the kernel's environment.
PRELOAD_ENV = "K3SMIG_KERNEL_PRELOAD"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
#: Suffix of the subprocess-output pipe's socket after the kernel's IPC prefix (``runtime/<id>-pipe``).
PIPE_SUFFIX = "-pipe"


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


def _pipe_over_ipc() -> None:
    """Make ipykernel's subprocess-output pipe a Unix socket when the kernel's transport is IPC."""
    import zmq
    from ipykernel import kernelapp
    from ipykernel.iostream import IOPubThread
    from zmq.eventloop.zmqstream import ZMQStream

    class IpcPipeIOPubThread(IOPubThread):
        """ipykernel's IOPub thread, its pipe from forked subprocesses bound to ``ipc://<prefix>-pipe``."""

        _pipe_address = ""

        def _setup_pipe_in(self) -> None:
            app = kernelapp.IPKernelApp.instance()
            if app.transport != "ipc":
                super()._setup_pipe_in()  # type: ignore[no-untyped-call]
                return
            self._pipe_uuid = os.urandom(16)  # what ipykernel checks on every piped message, as before
            pipe_in = self.socket.context.socket(zmq.PULL)
            pipe_in.linger = 0
            self._pipe_address = f"ipc://{app.ip}{PIPE_SUFFIX}"
            pipe_in.bind(self._pipe_address)
            self._pipe_in = ZMQStream(pipe_in, self.io_loop)
            self._pipe_in.on_recv(self._handle_pipe_msg)

        def _setup_pipe_out(self) -> Any:
            if not self._pipe_address:
                return super()._setup_pipe_out()  # type: ignore[no-untyped-call]
            ctx = zmq.Context()  # a forked child: a context of its own, as ipykernel does
            pipe_out = ctx.socket(zmq.PUSH)
            pipe_out.linger = 3000
            pipe_out.connect(self._pipe_address)
            return ctx, pipe_out

    kernelapp.IOPubThread = IpcPipeIOPubThread  # type: ignore[attr-defined]  # the class init_iopub instantiates


def main() -> None:
    """Start the parent watchdog, preload the phase's modules, then the IPython kernel."""
    threading.Thread(target=_watch, args=(os.getppid(),), name="k3smig-parent-watch", daemon=True).start()
    _preload()
    _pipe_over_ipc()
    from ipykernel.kernelapp import launch_new_instance

    launch_new_instance()


if __name__ == "__main__":
    main()
