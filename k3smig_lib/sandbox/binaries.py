"""Where the sandbox binaries live, and building them when they are missing.

The binaries are built by ``tools/build-sandbox.sh`` into ``.cache/sandbox/bin/<k8s-version>/``
(outside git). The script is incremental: when every binary exists and matches its stamp it returns
in about a second, so calling :func:`ensure_binaries` before each test session costs nothing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from k3smig_lib.errors import ToolMissingError

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tools" / "build-sandbox.sh"


def default_bin_dir() -> Path:
    """The folder the build script writes to (``.cache/sandbox/bin/<k8s-version>``).

    Raises:
        ToolMissingError: the build script is not there (not a source checkout).
    """
    if not BUILD_SCRIPT.is_file():
        raise ToolMissingError(f"{BUILD_SCRIPT} not found", fix="run the sandbox from a k3smig source checkout")
    out = subprocess.run(["bash", str(BUILD_SCRIPT), "bin-dir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def ensure_binaries(log_file: Path | None = None) -> Path:
    """Build the sandbox binaries if any is missing or stale, and return their folder.

    A cold build takes a long time (see the build log); a warm one a few seconds.

    Args:
        log_file: where the build output goes (inherits stderr when None).

    Raises:
        ToolMissingError: the build failed; the message names the log to read.
    """
    bin_dir = default_bin_dir()
    check = subprocess.run(["bash", str(BUILD_SCRIPT), "check"], capture_output=True)
    if check.returncode == 0:
        return bin_dir
    if log_file is None:
        result = subprocess.run(["bash", str(BUILD_SCRIPT)])
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as log:
            result = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        where = f"; read {log_file}" if log_file else ""
        raise ToolMissingError(
            f"building the sandbox binaries failed (exit {result.returncode}){where}",
            fix="fix the Go build (see tools/build-sandbox.sh) and run it again",
        )
    return bin_dir
