"""Session fixture: the local sandbox (real source and K3s-like target control planes), up once.

Missing binaries are built first (tools/build-sandbox.sh; minutes when cold, seconds when warm). A
build or start-up failure fails the tests: nothing here skips.

Cluster code is tested against these real API servers, never a fake one: ``through_proxy`` puts the
fault proxy in front of one of them for transient faults, ``fake_time`` lets a test assert the waits
the transport chose without waiting, ``narrow_target`` is a real ServiceAccount for real 403 answers.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.stream import stream

from k3smig_lib.k8s.client import ClusterRef, Kube
from k3smig_lib.sandbox import SandboxStatus, SeedReport, ensure_binaries, running, seed_source

sys.path.insert(0, str(Path(__file__).parent))  # tests/integration is not a package
from faultproxy import FaultProxy  # noqa: E402
from realapi import FakeTime, Narrow, Proxied  # noqa: E402

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
    with running(tmp_path_factory.mktemp("sandbox") / "state", sandbox_bin_dir) as st:
        yield st


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


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def through_proxy(sandbox: SandboxStatus, tmp_path: Path) -> Iterator[Callable[[str], Proxied]]:
    """``through_proxy(side)``: a fault proxy in front of that cluster's real API server, stopped afterwards."""
    started: list[FaultProxy] = []

    def start(side: str = "target") -> Proxied:
        context = sandbox.contexts[side]
        proxy = FaultProxy.for_context(sandbox.kubeconfig, context, lifetime=300).start()
        started.append(proxy)
        kubeconfig = proxy.write_kubeconfig(sandbox.kubeconfig, context, tmp_path / f"proxy-{len(started)}.kubeconfig")
        return Proxied(proxy, ClusterRef(str(kubeconfig), context, side))

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def target_ref(sandbox: SandboxStatus) -> ClusterRef:
    """The target cluster, straight (no proxy)."""
    return ClusterRef(str(sandbox.kubeconfig), sandbox.contexts["target"], "target")


def _delete_namespace(kube: Kube, name: str) -> None:
    kube.request("DELETE", f"/api/v1/namespaces/{name}", counter="writes", accept=(404,))


@pytest.fixture
def target_ns(target_ref: ClusterRef) -> Iterator[str]:
    """A fresh namespace on the target, deleted afterwards."""
    kube = Kube.of(target_ref)
    name = f"k3smig-real-{uuid.uuid4().hex[:6]}"
    kube.request("POST", "/api/v1/namespaces", counter="writes", body={"metadata": {"name": name}})
    yield name
    _delete_namespace(kube, name)


@pytest.fixture
def narrow_target(sandbox: SandboxStatus, target_ref: ClusterRef, tmp_path: Path) -> Iterator[Narrow]:
    """A narrow identity on the target (a real ServiceAccount token, a real Role): for real 403 answers."""
    admin = Kube.of(target_ref)
    ns = f"k3smig-narrow-{uuid.uuid4().hex[:6]}"
    admin.request("POST", "/api/v1/namespaces", counter="writes", body={"metadata": {"name": ns}})
    try:
        admin.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", counter="writes",
                      body={"metadata": {"name": "narrow"}})
        rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
        admin.request("POST", f"{rbac}/roles", counter="writes", body={
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]})
        admin.request("POST", f"{rbac}/rolebindings", counter="writes", body={
            "metadata": {"name": "narrow-pod-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "narrow", "namespace": ns}]})
        token = admin.json("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/narrow/token", counter="writes",
                           body={"spec": {"expirationSeconds": 600}})["status"]["token"]
        cfg = yaml.safe_load(sandbox.kubeconfig.read_text())
        context = next(c for c in cfg["contexts"] if c["name"] == target_ref.context)
        cfg["users"] = [{"name": "narrow", "user": {"token": token}}]
        cfg["contexts"] = [{"name": target_ref.context, "context": {"cluster": context["context"]["cluster"],
                                                                    "user": "narrow"}}]
        path = tmp_path / "narrow.kubeconfig"
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(cfg))
        yield Narrow(ClusterRef(str(path), target_ref.context, "target"), ns)
    finally:
        _delete_namespace(admin, ns)
