"""Session fixture: the local sandbox (real source and K3s-like target control planes), up once.

Missing binaries are built first (tools/build-sandbox.sh; minutes when cold, seconds when warm). A
build or start-up failure fails the tests: nothing here skips.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.stream import stream

from k3smig_lib.sandbox import SandboxStatus, SeedReport, down, ensure_binaries, seed_source, up

REPO = Path(__file__).resolve().parents[2]
#: The snapshot seeded into the source; K3SMIG_SANDBOX_SNAPSHOT points elsewhere (another export).
EXAMPLE = Path(os.environ.get("K3SMIG_SANDBOX_SNAPSHOT", REPO / "examples" / "prod-cluster"))
BUILD_LOG = REPO / ".cache" / "sandbox" / "logs" / "build.log"


@pytest.fixture(scope="session")
def sandbox_bin_dir() -> Path:
    """The sandbox binaries, built now if missing or stale."""
    return ensure_binaries(log_file=BUILD_LOG)


@pytest.fixture(scope="session")
def sandbox(sandbox_bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxStatus]:
    """Both clusters up (kubeconfig and contexts in the status); torn down after the session."""
    state_dir = tmp_path_factory.mktemp("sandbox") / "state"
    st = up(state_dir, sandbox_bin_dir)
    try:
        yield st
    finally:
        down(state_dir)


@pytest.fixture(scope="session")
def example_dir() -> Path:
    """The snapshot folder the source is seeded from."""
    return EXAMPLE


@pytest.fixture(scope="session")
def seeded(sandbox: SandboxStatus) -> SeedReport:
    """The source seeded with the bundled example cluster (objects and volume bytes)."""
    return seed_source(sandbox.kubeconfig, sandbox.contexts["source"], EXAMPLE)


def exit_code(status_frame: bytes) -> int:
    """Exit code from the exec status channel.

    A kubelet reports ``NonZeroExitCode`` with the code as an ``ExitCode`` cause; kwok's exec
    simulation reports an internal error whose text ends in ``exit status N``. Both are read here;
    anything else (no status at all) is -1.
    """
    if not status_frame:
        return -1
    status = json.loads(status_frame)
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            return int(cause["message"])
    found = re.search(r"exit status (\d+)", str(status.get("message", "")))
    return int(found.group(1)) if found else -1


@pytest.fixture(scope="session")
def pod_exec() -> Callable[..., tuple[bytes, bytes, int]]:
    """``pod_exec(core, namespace, pod, command, stdin=None)`` -> (stdout, stderr, exit code)."""
    return exec_bytes


def exec_bytes(
    core: Any,
    namespace: str,
    pod: str,
    command: list[str],
    stdin: bytes | None = None,
    timeout: float = 120.0,
) -> tuple[bytes, bytes, int]:
    """Run ``command`` in ``pod`` through ``pods/exec``; return (stdout, stderr, exit code).

    Uses the websocket stream in binary mode, writes ``stdin`` in 64 KiB frames and closes it
    (v5 protocol), so ``tar -x`` sees end of input exactly as with ``kubectl exec -i``.
    """
    ws = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        namespace,
        command=command,
        stdin=stdin is not None,
        stdout=True,
        stderr=True,
        tty=False,
        binary=True,
        _preload_content=False,
    )
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    try:
        if stdin is not None:
            for i in range(0, len(stdin), 1 << 16):
                ws.write_stdin(stdin[i : i + (1 << 16)])
            ws.close_channel(0)
        while ws.is_open() and time.monotonic() < deadline:
            ws.update(timeout=1)
            out += ws.read_channel(1)
            err += ws.read_channel(2)
        out += ws.read_channel(1)
        err += ws.read_channel(2)
        assert not ws.is_open(), f"exec of {command[0]} did not finish in {timeout}s"
        return bytes(out), bytes(err), exit_code(ws.read_channel(3))
    finally:
        ws.close()
