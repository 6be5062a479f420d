"""Wall time and peak RSS of one command in a process of its own, for the benchmarks.

Linux keeps a process's peak RSS across fork and exec, so a command started straight from pytest would
report pytest's own memory as its floor: a small launcher forks, execs the command with its stdout sent
to a file, and reports ``wait4``'s figures for that child alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LAUNCH = ("import os, sys, time\n"
          "start = time.perf_counter()\n"
          "pid = os.fork()\n"
          "if pid == 0:\n"
          "    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)\n"
          "    os.dup2(fd, 1)\n"
          "    os.execv(sys.argv[2], sys.argv[2:])\n"
          "_, status, usage = os.wait4(pid, 0)\n"
          "print(time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status))\n")


def measure(cmd: list[str], stdout: Path | None = None) -> dict[str, float]:
    """Wall seconds and peak RSS (MB) of ``cmd``; its stdout goes to ``stdout`` (discarded when None)."""
    proc = subprocess.run([sys.executable, "-c", LAUNCH, str(stdout or os.devnull), *cmd], capture_output=True,
                          text=True, check=False)
    seconds, rss_kb, code = proc.stdout.split()[-3:]
    assert proc.returncode == 0 and code == "0", f"{cmd} failed:\n{proc.stderr[-2000:]}"
    return {"seconds": round(float(seconds), 2), "peak_rss_mb": round(int(rss_kb) / 1024, 1)}
