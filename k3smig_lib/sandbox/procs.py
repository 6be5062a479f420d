"""Start, watch and stop the sandbox's processes, by PID, with their state on disk.

``up`` returns while the control planes keep running (the CLI exits), so every process is started
in its own session with its output in a log file, and its PID plus kernel start time go to the
state file. ``down`` signals exactly those PIDs, and only if the start time still matches, so a PID
reused by an unrelated process is never touched.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from k3smig_lib.errors import ToolMissingError


@dataclass(frozen=True)
class ProcessRecord:
    """One process ``up`` started: what ``down`` needs to stop it and ``status`` to report it."""

    name: str
    pid: int
    start_ticks: int
    port: int
    log: str
    argv: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the state file."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        """Inverse of :meth:`to_json`."""
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            start_ticks=int(data["start_ticks"]),
            port=int(data["port"]),
            log=str(data["log"]),
            argv=tuple(data["argv"]),
        )


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (which may contain spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int:
    """Kernel start time of ``pid`` in clock ticks (0 when the process is gone)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else 0


def is_running(rec: ProcessRecord) -> bool:
    """True while the very process ``rec`` describes is alive (not a zombie, not a reused PID)."""
    fields = _stat_fields(rec.pid)
    return bool(fields) and fields is not None and fields[0] not in ("Z", "X") and int(fields[19]) == rec.start_ticks


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (0 when unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel picks it, so parallel runs do not clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_process(
    name: str, argv: Sequence[str], log_path: Path, port: int = 0, cwd: Path | None = None
) -> ProcessRecord:
    """Start ``argv`` detached (own session), with stdout and stderr appended to ``log_path``.

    Raises:
        ToolMissingError: the executable does not exist.
    """
    if not Path(argv[0]).is_file():
        raise ToolMissingError(
            f"sandbox binary {argv[0]} is missing",
            fix="run `tools/build-sandbox.sh` (or `make sandbox-build`) first",
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    return ProcessRecord(
        name=name,
        pid=proc.pid,
        start_ticks=start_ticks(proc.pid),
        port=port,
        log=str(log_path),
        argv=tuple(argv),
    )


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our child (inside pytest), so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_process(rec: ProcessRecord, timeout: float = 10.0) -> None:
    """Stop the process of ``rec``: SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if not is_running(rec):
        _reap(rec.pid)
        return
    os.kill(rec.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(rec.pid)
        if not is_running(rec):
            return
        time.sleep(0.05)
    if is_running(rec):
        os.kill(rec.pid, signal.SIGKILL)
        while is_running(rec):
            _reap(rec.pid)
            time.sleep(0.05)


def _hex_address(text: str) -> str:
    """``/proc/net/tcp`` address (little-endian hex) as text; IPv6 addresses are shown in hex."""
    if len(text) == 8:
        return ".".join(str(int(text[i : i + 2], 16)) for i in (6, 4, 2, 0))
    return text


def listening_sockets(pids: Sequence[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state owned by one of ``pids``, from ``/proc``."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found: set[tuple[str, int]] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                addr, port = cols[1].rsplit(":", 1)
                found.add((_hex_address(addr), int(port, 16)))
    return found


def listening_ports(pids: Sequence[int]) -> set[int]:
    """TCP ports in LISTEN state owned by any of ``pids``."""
    return {port for _, port in listening_sockets(pids)}


def port_is_listening(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_ok(url: str, token: str = "", ca_file: str | None = None) -> bool:
    """True when ``url`` answers 200; TLS is verified against ``ca_file`` when given, else not at all.

    Components with self-signed serving certificates (controller-manager, scheduler) are probed
    without verification: the probe only asks "are you up?" on 127.0.0.1.
    """
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl._create_unverified_context()
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until(check: Callable[[], bool], timeout: float, what: str, on_timeout: Callable[[], str]) -> float:
    """Poll ``check`` until it holds; return the seconds waited.

    Raises:
        TimeoutError: ``check`` did not hold within ``timeout``; the message ends with ``on_timeout()``
            (typically the tail of the relevant log).
    """
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s; {on_timeout()}")
        time.sleep(0.2)
    return time.monotonic() - start


def log_tail(path: str | Path, lines: int = 15) -> str:
    """Last lines of a log file, for error messages (component logs hold no secret values)."""
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return f"last lines of {path}:\n" + "\n".join(text[-lines:])
