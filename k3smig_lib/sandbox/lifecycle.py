"""``up``, ``down`` and ``status`` of the local sandbox: two real control planes on 127.0.0.1.

State lives in one folder: ``sandbox.json`` (PIDs, ports, paths — no key material), the merged
``kubeconfig`` (contexts ``k3smig-source`` and ``k3smig-target``), and one sub-folder per cluster
with its PKI, etcd data, volume folders and component logs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k3smig_lib.errors import FatalError, ToolMissingError
from k3smig_lib.k8s.rawapi import ApiClient, api_client, core_v1
from k3smig_lib.log import logger
from k3smig_lib.sandbox import bootstrap
from k3smig_lib.sandbox.cluster import (
    COMPONENTS,
    SOURCE,
    TARGET,
    ClusterRuntime,
    component_argv,
    health_url,
    kwok_crds,
    prepare,
    write_kubeconfig,
)
from k3smig_lib.sandbox.procs import (
    ProcessRecord,
    http_ok,
    is_running,
    log_tail,
    rss_bytes,
    start_process,
    stop_process,
    wait_until,
)

STATE_FILE = "sandbox.json"
REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


@dataclass(frozen=True)
class ProcessStatus:
    """One sandbox process as ``status`` reports it."""

    name: str
    pid: int
    port: int
    alive: bool
    rss_bytes: int
    log: str


@dataclass
class SandboxStatus:
    """What ``up`` and ``status`` return: where to connect and what runs."""

    state_dir: Path
    kubeconfig: Path
    contexts: dict[str, str] = field(default_factory=dict)
    processes: list[ProcessStatus] = field(default_factory=list)
    kubernetes_version: str = ""
    up_seconds: float = 0.0

    @property
    def running(self) -> bool:
        """True when the sandbox exists and every one of its processes is alive."""
        return bool(self.processes) and all(p.alive for p in self.processes)

    @property
    def total_rss_bytes(self) -> int:
        """Memory of every sandbox process together."""
        return sum(p.rss_bytes for p in self.processes)


def _state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def _load_state(state_dir: Path) -> dict[str, Any] | None:
    path = _state_path(state_dir)
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _save_state(state_dir: Path, state: dict[str, Any]) -> None:
    tmp = _state_path(state_dir).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(_state_path(state_dir))


def _records(state: dict[str, Any]) -> list[ProcessRecord]:
    return [ProcessRecord.from_json(p) for p in state.get("processes", [])]


def kube_version(bin_dir: Path) -> str:
    """Version the built kube-apiserver reports (``v1.36.3``), proving the ldflags stamped it."""
    out = subprocess.run(
        [str(bin_dir / "kube-apiserver"), "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return out.split()[-1]


def _check_binaries(bin_dir: Path) -> None:
    missing = [b for b in REQUIRED_BINARIES if not (bin_dir / b).is_file()]
    if missing or not (bin_dir / "kwok-data" / "pod-ready.yaml").is_file():
        raise ToolMissingError(
            f"sandbox binaries missing in {bin_dir}: {', '.join(missing) or 'kwok stages'}",
            fix="run `tools/build-sandbox.sh` (make sandbox-build) first",
        )


def _prepare_state_dir(state_dir: Path) -> None:
    state = _load_state(state_dir)
    if state is not None:
        if any(is_running(r) for r in _records(state)):
            raise FatalError(
                f"a sandbox is already running from {state_dir}",
                fix="run `k3smig sandbox down` first, or use another state folder",
            )
        shutil.rmtree(state_dir)
    elif state_dir.exists() and any(state_dir.iterdir()):
        raise FatalError(
            f"{state_dir} exists and is not a sandbox state folder",
            fix="choose an empty or new folder for the sandbox state",
        )
    state_dir.mkdir(parents=True, exist_ok=True)


def _start(
    state_dir: Path, state: dict[str, Any], rt: ClusterRuntime, name: str, argv: list[str], port: int = 0
) -> ProcessRecord:
    rec = start_process(f"{rt.spec.name}/{name}", argv, rt.log(name), port=port, cwd=rt.root)
    state["processes"].append(rec.to_json())
    _save_state(state_dir, state)
    return rec


def _wait_healthy(rt: ClusterRuntime, component: str, rec: ProcessRecord, timeout: float) -> None:
    assert rt.pki is not None
    url = health_url(rt, component)
    token = rt.pki.admin_token if component == "kube-apiserver" else ""
    ca = str(rt.pki.ca_cert) if component in ("kube-apiserver", "kwok") else None

    def check() -> bool:
        if not is_running(rec):
            raise FatalError(
                f"{rec.name} exited during start-up; {log_tail(rec.log)}",
                fix="read the log above; `k3smig sandbox down` cleans up",
            )
        return http_ok(url, token, ca)

    waited = wait_until(check, timeout, rec.name, lambda: log_tail(rec.log))
    logger.info("%s healthy after %.1fs", rec.name, waited)


def _start_stage(
    state_dir: Path,
    state: dict[str, Any],
    clusters: list[ClusterRuntime],
    components: tuple[str, ...],
    bin_dir: Path,
    timeout: float,
) -> None:
    """Start ``components`` on every cluster at once, then wait for each to be healthy."""
    started = [
        (rt, c, _start(state_dir, state, rt, c, component_argv(rt, c, bin_dir), rt.ports[c]))
        for rt in clusters
        for c in components
    ]
    for rt, c, rec in started:
        _wait_healthy(rt, c, rec, timeout)


def _api(rt: ClusterRuntime) -> ApiClient:
    return api_client(rt.kubeconfig)


def _wait_cluster_ready(rt: ClusterRuntime, timeout: float) -> None:
    """Fake nodes Ready and the ``default`` ServiceAccount present (pod admission needs it)."""
    core: Any = core_v1(_api(rt))

    def ready() -> bool:
        nodes = core.list_node().items
        ok = [n for n in nodes if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))]
        sas = core.list_namespaced_service_account("default").items
        return len(ok) == len(rt.spec.nodes) and any(sa.metadata.name == "default" for sa in sas)

    wait_until(ready, timeout, f"{rt.spec.name} nodes and default service account", lambda: log_tail(rt.log("kwok")))


def _start_clusters(
    state_dir: Path, state: dict[str, Any], clusters: list[ClusterRuntime], bin_dir: Path, timeout: float
) -> None:
    """Recipe order: etcd, API server, initial objects, controllers and kwok, provisioner, readiness."""
    _start_stage(state_dir, state, clusters, ("etcd",), bin_dir, timeout)
    _start_stage(state_dir, state, clusters, ("kube-apiserver",), bin_dir, timeout)
    crds = kwok_crds(bin_dir)
    for rt in clusters:
        objs = bootstrap.initial_objects(rt, crds, state["kubernetes_version"])
        bootstrap.create_all(_api(rt), objs, rt.root / "discovery.json")
    _start_stage(state_dir, state, clusters, COMPONENTS[2:], bin_dir, timeout)
    for rt in clusters:
        module = "k3smig_lib.sandbox.provisioner"
        argv = [sys.executable, "-m", module, f"--kubeconfig={rt.kubeconfig}", f"--volumes={rt.volumes_dir}"]
        _start(state_dir, state, rt, "provisioner", argv)
    for rt in clusters:
        _wait_cluster_ready(rt, timeout)


def up(state_dir: Path, bin_dir: Path, timeout: float = 120.0) -> SandboxStatus:
    """Start the ``source`` and ``target`` clusters and return their status.

    Args:
        state_dir: folder for the sandbox's state (created; must be new, empty or a stopped sandbox's).
        bin_dir: folder with the binaries ``tools/build-sandbox.sh`` built.
        timeout: seconds each component may take to become healthy.

    Returns:
        The status, with the kubeconfig path and the seconds ``up`` took.

    Raises:
        ToolMissingError: a binary is missing (build them first).
        FatalError: a sandbox already runs from ``state_dir``, or a component failed to start (its
            log tail is in the message); everything started so far is stopped again.

    Examples:
        >>> st = up(Path(".cache/sandbox/state"), Path(".cache/sandbox/bin/v1.36.3"))  # doctest: +SKIP
        >>> st.contexts["target"]  # doctest: +SKIP
        'k3smig-target'
    """
    begin = time.monotonic()
    state_dir = state_dir.resolve()
    bin_dir = bin_dir.resolve()
    _check_binaries(bin_dir)
    _prepare_state_dir(state_dir)
    version = kube_version(bin_dir)
    clusters = [prepare(state_dir, spec, bin_dir) for spec in (SOURCE, TARGET)]
    kubeconfig = state_dir / "kubeconfig"
    write_kubeconfig(kubeconfig, clusters)
    state: dict[str, Any] = {
        "kubeconfig": str(kubeconfig),
        "bin_dir": str(bin_dir),
        "kubernetes_version": version,
        "clusters": {rt.spec.name: rt.to_json() for rt in clusters},
        "processes": [],
    }
    _save_state(state_dir, state)
    try:
        _start_clusters(state_dir, state, clusters, bin_dir, timeout)
    except BaseException:
        for rec in reversed(_records(state)):
            stop_process(rec)
        raise
    state["up_seconds"] = round(time.monotonic() - begin, 1)
    _save_state(state_dir, state)
    return status(state_dir)


def status(state_dir: Path) -> SandboxStatus:
    """Report the sandbox's processes (pid, port, alive, RSS) from its state folder.

    Returns:
        An empty status (``running`` False, no processes) when no sandbox state exists there.
    """
    state_dir = state_dir.resolve()
    state = _load_state(state_dir)
    if state is None:
        return SandboxStatus(state_dir=state_dir, kubeconfig=state_dir / "kubeconfig")
    procs = []
    for rec in _records(state):
        alive = is_running(rec)
        procs.append(
            ProcessStatus(
                name=rec.name,
                pid=rec.pid,
                port=rec.port,
                alive=alive,
                rss_bytes=rss_bytes(rec.pid) if alive else 0,
                log=rec.log,
            )
        )
    return SandboxStatus(
        state_dir=state_dir,
        kubeconfig=Path(state["kubeconfig"]),
        contexts={name: c["context"] for name, c in state.get("clusters", {}).items()},
        processes=procs,
        kubernetes_version=str(state.get("kubernetes_version", "")),
        up_seconds=float(state.get("up_seconds", 0.0)),
    )


def down(state_dir: Path) -> list[str]:
    """Stop exactly the processes ``up`` started (newest first) and remove the state folder.

    Returns:
        Names of the processes that were still running and have been stopped.
    """
    state_dir = state_dir.resolve()
    state = _load_state(state_dir)
    if state is None:
        return []
    stopped = []
    for rec in reversed(_records(state)):
        if is_running(rec):
            stop_process(rec)
            stopped.append(rec.name)
    shutil.rmtree(state_dir)
    return stopped


@contextmanager
def running(state_dir: Path, bin_dir: Path) -> Iterator[SandboxStatus]:
    """Both clusters up for the ``with`` block, then stopped by :func:`down` whatever happened in it."""
    st = up(state_dir, bin_dir)
    try:
        yield st
    finally:
        down(state_dir)
