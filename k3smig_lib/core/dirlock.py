"""One run at a time per directory target: a lock file holding the run id and PID, like the live Lease.

Two ``k3smig demo`` started in one clone used to write the same tree at once. The runner now takes
``<target>/.k3smig/run.lock`` before its first phase. The lock is an ``flock`` on that file, so the
kernel releases it when the holder dies however it dies (SIGKILL, OOM, power cut): a stale lock is
taken over without anyone deleting files, and the takeover is reported with the run id and PID that
held it. The file's content (run id, PID, host, start time) is only for the messages.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from k3smig_lib.core.fsafe import confined_path, ensure_dir
from k3smig_lib.errors import TargetError

LOCK_FILE = ".k3smig/run.lock"


class TargetLockedError(TargetError):
    """Another run holds the directory target's lock (nothing was changed)."""


@dataclass(frozen=True)
class LockGrant:
    """The lock as taken: what the run report says about it."""

    path: Path
    run_id: str
    took_over: dict[str, Any] | None = None

    @property
    def report(self) -> str:
        """One line for the run report."""
        text = f"directory lock {self.path} held by run {self.run_id} (PID {os.getpid()})"
        if self.took_over:
            old = self.took_over
            text += f"; taken over from run {old.get('run_id', '?')} (PID {old.get('pid', '?')}), which is gone"
        return text


def _holder(fd: int) -> dict[str, Any]:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


class DirectoryLock:
    """``acquire()`` before the first write to a directory target, ``release()`` after the run.

    Args:
        root: the target folder.
        run_id: the run taking the lock (written into the lock file).

    Examples:
        >>> lock = DirectoryLock(Path("targets/demo"), "20250101T000000Z-demo")  # doctest: +SKIP
        >>> print(lock.acquire().report)  # doctest: +SKIP
    """

    def __init__(self, root: Path, run_id: str) -> None:
        self.root = root
        self.run_id = run_id
        self._fd: int | None = None

    def acquire(self) -> LockGrant:
        """Take the lock, or take over one whose holder is gone.

        Raises:
            TargetLockedError: a running process holds it; the message names its run and PID.
        """
        ensure_dir(self.root, ".k3smig", mode=0o700)
        path = confined_path(self.root, LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            who = (f"run {holder.get('run_id', '?')} (PID {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                   f"since {holder.get('since', '?')})" if holder else "another run")
            raise TargetLockedError(f"the target {self.root} is in use by {who}; nothing was changed",
                                    fix="wait for that run to end, or give this run another target_dir") from None
        previous = _holder(fd)  # a clean release empties the file: content means its holder died
        took_over = previous or None
        record = {"run_id": self.run_id, "pid": os.getpid(), "host": socket.gethostname(),
                  "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record, sort_keys=True) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return LockGrant(path, self.run_id, took_over)

    def renew(self) -> None:
        """Nothing to renew: the lock lasts as long as this process (the Lease needs renewing, this does not)."""

    def release(self) -> None:
        """Release the lock (the file stays, emptied, so the next run finds no stale holder)."""
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

