"""Volumes in local folders driven by the *same* volume scripts helper pods run, for fast data-path tests.

The sandbox runs pod commands on this machine in the folder behind a claim (kwok's exec with
``VOLUME_DIR``); :class:`LocalExec` does exactly that without a cluster, so the delta, extraction,
hard-link, sparse-file and hostile-name cases run in seconds against real GNU tar, find and coreutils.
The exec transport itself (websocket, sentinel, cut streams) is tested against the real sandbox in
tests/integration.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from k3smig_lib.backends.base import Capacity, VolumeAccess, VolumeRef
from k3smig_lib.backends.live_volumes import Exec, ScriptVolume
from k3smig_lib.k8s.exec import ExecError, ExecResult, result_of


class LocalExec:
    """One volume script run with ``sh -c`` in ``folder`` (``VOLUME_DIR`` set), streams as bytes."""

    def __init__(self, folder: Path, script: str) -> None:
        self.what = f"local {folder.name}"
        self.proc = subprocess.Popen(["sh", "-c", script], cwd=folder, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, "VOLUME_DIR": str(folder), "LC_ALL": "C"},
                                     start_new_session=True)  # close() stops tar too, not just its shell
        self._err = bytearray()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()
        self.stdout_bytes = 0
        self.stdin_bytes = 0

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: self.proc.stderr.read1(65536), b""):  # type: ignore[union-attr]
            self._err += chunk

    def write(self, data: bytes, /) -> int:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise ExecError(f"{self.what}: stdin closed after {self.stdin_bytes} bytes") from e
        self.stdin_bytes += len(data)
        return len(data)

    def read(self, size: int = -1, /) -> bytes:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read() if size < 0 else self.proc.stdout.read(size)
        self.stdout_bytes += len(out)
        return out

    def read_some(self) -> bytes:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read1(1 << 16)
        self.stdout_bytes += len(out)
        return out

    def read_all(self) -> bytes:
        return self.read(-1)

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass

    def finish(self, *, deadline: float = 600.0) -> ExecResult:
        self.close_stdin()
        assert self.proc.stdout is not None
        while self.proc.stdout.read(1 << 16):
            pass
        status = self.proc.wait(timeout=deadline)
        self._thread.join(timeout=deadline)
        return result_of(bytes(self._err), status, self.stdout_bytes, self.stdin_bytes)

    def close(self) -> None:
        """Stop the script and everything it started, as deleting a helper pod does.

        Killing only ``sh`` would leave its ``tar -x`` running as an orphan, still writing (GNU tar
        turns its delayed-symlink placeholders into links as it exits) while the test reads the folder.
        """
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        for _ in range(1000):  # the group's last processes die asynchronously; bounded wait
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.01)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None and not f.closed:
                try:
                    f.close()
                except BrokenPipeError:
                    pass


class LocalVolume(ScriptVolume):
    """A volume in a local folder, read and written by the volume scripts; data state in a file beside it."""

    def __init__(self, folder: Path, side: str, *, wrap: Callable[[Exec, str], Exec] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.wrap = wrap
        super().__init__(self._start, VolumeRef("ns", folder.name),
                         VolumeAccess(side=side, where=f"folder {folder.name}", user="0:0", why="test"))

    def _start(self, script: str) -> Exec:
        ex: Exec = LocalExec(self.folder, script)
        return self.wrap(ex, script) if self.wrap is not None else ex

    def capacity(self) -> Capacity:
        return Capacity(requested=None, free=shutil.disk_usage(self.folder).free)

    def _state_file(self) -> Path:
        return self.folder.parent / f".{self.folder.name}.state"

    def state(self) -> str:
        path = self._state_file()
        return path.read_text().strip() if path.is_file() else ""

    def mark(self, state: str) -> None:
        self._state_file().write_text(state + "\n")
