"""The local sandbox behaves like the clusters k3smig migrates between (issue 3)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from k3smig_lib.backends.snapshot import read_export
from k3smig_lib.errors import FatalError
from k3smig_lib.k8s.rawapi import api_client
from k3smig_lib.sandbox import SandboxStatus, SeedReport, down, status, up
from k3smig_lib.sandbox.procs import listening_ports, listening_sockets, port_is_listening

pytestmark = pytest.mark.integration

TAR_OUT = ["sh", "-c", 'cd "$VOLUME_DIR" && tar -cf - .']
TAR_IN = ["sh", "-c", 'cd "$VOLUME_DIR" && tar -xf -']
PodExec = Callable[..., tuple[bytes, bytes, int]]
#: Namespaces the provider manages (coredns, CNI, CSI, metrics-server): not the user's, not seeded.
SYSTEM = ("kube-system", "kube-public", "kube-node-lease")


def _api(sb: SandboxStatus, side: str) -> client.ApiClient:
    return api_client(sb.kubeconfig, sb.contexts[side])


def _core(sb: SandboxStatus, side: str) -> Any:
    return client.CoreV1Api(_api(sb, side))


def tar_digests(source: Path | io.BytesIO) -> dict[str, str]:
    """sha256 of every regular file in a tar archive or stream, by member path without ``./``."""
    digests: dict[str, str] = {}
    opened = tarfile.open(name=source, mode="r:*") if isinstance(source, Path) else tarfile.open(fileobj=source)
    with opened as tar:
        for member in tar:
            data = tar.extractfile(member) if member.isfile() or member.islnk() else None
            if data is not None:
                digests[member.name.removeprefix("./")] = hashlib.sha256(data.read()).hexdigest()
    return digests


def folder_digests(root: Path) -> dict[str, str]:
    """sha256 of every regular file under ``root``, by path relative to it."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check()`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s")


def _example_workloads(example: Path, kind: str) -> set[tuple[str, str]]:
    return {
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in read_export(example / "manifests")
        if o["kind"] == kind and not o["metadata"].get("ownerReferences") and o["metadata"]["namespace"] not in SYSTEM
    }


def _claim_and_pod(core: Any, namespace: str) -> str:
    """Create a claim and a pod mounting it, as k3smig's helper pods do; both share the returned name."""
    name = f"probe-{uuid.uuid4().hex[:6]}"
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    container = {
        "name": "helper",
        "image": "busybox:1.36",
        "command": ["sleep", "3600"],
        "env": [{"name": "VOLUME_DIR", "value": "/data"}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [container],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": name}}],
        },
    }
    core.create_namespaced_persistent_volume_claim(namespace, claim)
    core.create_namespaced_pod(namespace, pod)
    return name


def _pod_ready(core: Any, namespace: str, name: str) -> bool:
    pod = core.read_namespaced_pod(name, namespace)
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def _ensure_namespace(core: Any, name: str) -> None:
    try:
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    except client.exceptions.ApiException as e:
        if e.status != 409:
            raise


def _volume_folder(core: Any, namespace: str, claim: str) -> Path:
    pvc = core.read_namespaced_persistent_volume_claim(claim, namespace)
    return Path(core.read_persistent_volume(pvc.spec.volume_name).spec.local.path)


def test_both_clusters_report_the_built_kubernetes_version(sandbox: SandboxStatus) -> None:
    for side in ("source", "target"):
        info: Any = client.VersionApi(_api(sandbox, side)).get_code()
        assert info.git_version == sandbox.kubernetes_version
        assert info.git_version.startswith("v1.") and "master" not in info.git_version


def test_source_example_deployments_and_statefulsets_become_ready(
    sandbox: SandboxStatus, seeded: SeedReport, example_dir: Path, sandbox_bin_dir: Path
) -> None:
    apps: Any = client.AppsV1Api(_api(sandbox, "source"))
    wanted = {
        "Deployment": _example_workloads(example_dir, "Deployment"),
        "StatefulSet": _example_workloads(example_dir, "StatefulSet"),
    }
    assert wanted["Deployment"], "the example has no Deployment to check"

    def all_ready() -> bool:
        seen = {
            "Deployment": apps.list_deployment_for_all_namespaces().items,
            "StatefulSet": apps.list_stateful_set_for_all_namespaces().items,
        }
        for kind, objs in seen.items():
            ready = {
                (o.metadata.namespace, o.metadata.name)
                for o in objs
                if (o.status.ready_replicas or 0) == (1 if o.spec.replicas is None else o.spec.replicas)
            }
            if not wanted[kind] <= ready:
                return False
        return True

    wait_for(all_ready, 120, "every example Deployment and StatefulSet Ready")
    # and as the issue states it: `kubectl --context k3smig-source get deploy -A` shows them Ready
    kubectl = [str(sandbox_bin_dir / "kubectl"), f"--kubeconfig={sandbox.kubeconfig}", "--context=k3smig-source"]
    listed = json.loads(subprocess.run([*kubectl, "get", "deploy", "-A", "-o", "json"], check=True,
                                       capture_output=True, text=True).stdout)["items"]  # fmt: skip
    ready = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in listed
             if d["status"].get("readyReplicas", 0) == d["spec"]["replicas"]}  # fmt: skip
    assert wanted["Deployment"] <= ready


def test_seeding_creates_user_objects_and_leaves_derived_ones_to_the_controllers(
    sandbox: SandboxStatus, seeded: SeedReport, example_dir: Path
) -> None:
    snapshot = read_export(example_dir / "manifests")
    apps: Any = client.AppsV1Api(_api(sandbox, "source"))
    core = _core(sandbox, "source")
    for dep in (o for o in snapshot if o["kind"] == "Deployment" and o["metadata"]["namespace"] not in SYSTEM):
        ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
        live = apps.read_namespaced_deployment(name, ns)
        assert live.metadata.uid != dep["metadata"].get("uid")
        owners = {
            (r.kind, r.uid)
            for rs in apps.list_namespaced_replica_set(ns).items
            for r in rs.metadata.owner_references or []
        }
        assert ("Deployment", live.metadata.uid) in owners, f"no ReplicaSet made for {ns}/{name}"
    services = [
        o for o in snapshot if o["kind"] == "Service" and o["metadata"]["namespace"] not in (*SYSTEM, "default")
    ]
    assert services
    for svc in services:
        live = core.read_namespaced_service(svc["metadata"]["name"], svc["metadata"]["namespace"])
        if svc["spec"].get("type") == "ExternalName":
            assert live.spec.external_name == svc["spec"]["externalName"]
        elif svc["spec"].get("clusterIP") == "None":
            assert live.spec.cluster_ip == "None"
        else:
            assert live.spec.cluster_ip.startswith("10.96."), "clusterIP must come from the sandbox's range"
    workloads = ("Deployment/", "StatefulSet/", "DaemonSet/", "CronJob/")
    wrongly_skipped = [
        k for k, why in seeded.skipped.items() if k.startswith(workloads) and k.split("/")[1] not in SYSTEM
        and why != "created by a controller"
    ]  # fmt: skip
    assert not wrongly_skipped


def test_snapshot_nodes_become_fake_nodes_so_pinned_workloads_schedule(
    sandbox: SandboxStatus, seeded: SeedReport, example_dir: Path
) -> None:
    snapshot_nodes = {o["metadata"]["name"]: o for o in read_export(example_dir / "manifests") if o["kind"] == "Node"}
    live = {n.metadata.name: n for n in _core(sandbox, "source").list_node().items}
    for name, node in snapshot_nodes.items():
        assert name in live
        assert live[name].metadata.annotations["kwok.x-k8s.io/node"] == "fake"
        assert live[name].metadata.labels.items() >= node["metadata"].get("labels", {}).items()
        addresses = {(a.type, a.address) for a in live[name].status.addresses}
        assert ("InternalIP", "127.0.0.1") in addresses


def test_target_default_storage_class_is_k3s_local_path(sandbox: SandboxStatus) -> None:
    api = _api(sandbox, "target")
    classes: list[Any] = client.StorageV1Api(api).list_storage_class().items
    defaults = [
        sc
        for sc in classes
        if (sc.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    ]
    assert [sc.metadata.name for sc in defaults] == ["local-path"]
    sc = defaults[0]
    assert (sc.provisioner, sc.volume_binding_mode, sc.reclaim_policy) == (
        "rancher.io/local-path",
        "WaitForFirstConsumer",
        "Delete",
    )
    assert sc.metadata.annotations["defaultVolumeType"] == "local"
    ingress_classes: list[Any] = client.NetworkingV1Api(api).list_ingress_class().items
    assert "nginx" in {ic.metadata.name for ic in ingress_classes}


def test_target_nodes_and_kube_system_look_like_k3s(sandbox: SandboxStatus) -> None:
    nodes = _core(sandbox, "target").list_node().items
    assert nodes
    for n in nodes:
        labels = n.metadata.labels
        assert labels["node.kubernetes.io/instance-type"] == "k3s"
        assert labels["node-role.kubernetes.io/control-plane"] == "true"
        assert labels["k3s.io/hostname"] == n.metadata.name
        assert n.status.node_info.kubelet_version.endswith("+k3s1")
    apps: Any = client.AppsV1Api(_api(sandbox, "target"))
    assert {"coredns", "local-path-provisioner"} <= {
        d.metadata.name for d in apps.list_namespaced_deployment("kube-system").items
    }


@pytest.mark.parametrize("side", ["source", "target"])
def test_claim_binds_and_pod_mounting_it_becomes_ready(sandbox: SandboxStatus, side: str) -> None:
    core = _core(sandbox, side)
    _ensure_namespace(core, "sandbox-probe")
    name = _claim_and_pod(core, "sandbox-probe")
    wait_for(lambda: _pod_ready(core, "sandbox-probe", name), 60, f"pod {name} Ready on {side}")
    pvc = core.read_namespaced_persistent_volume_claim(name, "sandbox-probe")
    assert pvc.status.phase == "Bound"
    assert _volume_folder(core, "sandbox-probe", name).is_dir()
    if side == "target":
        assert pvc.spec.storage_class_name == "local-path"
        selected = pvc.metadata.annotations["volume.kubernetes.io/selected-node"]
        assert selected == core.read_namespaced_pod(name, "sandbox-probe").spec.node_name


def _seeded_volume_and_pod(sandbox: SandboxStatus, seeded: SeedReport, example: Path) -> tuple[str, str, Path]:
    """A seeded claim with files and a Ready source pod mounting it: (namespace, pod, archive)."""
    core = _core(sandbox, "source")
    for vol_id in sorted(seeded.volumes):
        ns, claim = vol_id.split("/")
        archive = next((example / "volumes" / ns).glob(f"{claim}.tar*"))
        if not tar_digests(archive):
            continue

        def mounting_pod(ns: str = ns, claim: str = claim) -> str:
            for p in core.list_namespaced_pod(ns).items:
                claims = {
                    v.persistent_volume_claim.claim_name for v in p.spec.volumes or [] if v.persistent_volume_claim
                }
                if claim in claims and _pod_ready(core, ns, p.metadata.name):
                    return str(p.metadata.name)
            return ""

        return ns, wait_for(mounting_pod, 90, f"a Ready pod mounting {vol_id}"), archive
    raise AssertionError("the example seeded no volume with files")


def test_tar_through_exec_moves_the_seeded_bytes_from_a_source_pod_to_a_target_volume(
    sandbox: SandboxStatus, seeded: SeedReport, pod_exec: PodExec, example_dir: Path
) -> None:
    ns, pod, archive = _seeded_volume_and_pod(sandbox, seeded, example_dir)
    out, err, rc = pod_exec(_core(sandbox, "source"), ns, pod, TAR_OUT)
    assert rc == 0, err.decode(errors="replace")
    streamed = tar_digests(io.BytesIO(out))
    assert streamed == tar_digests(archive)

    target = _core(sandbox, "target")
    _ensure_namespace(target, ns)
    helper = _claim_and_pod(target, ns)
    wait_for(lambda: _pod_ready(target, ns, helper), 60, f"target helper pod {helper} Ready")
    _, err, rc = pod_exec(target, ns, helper, TAR_IN, stdin=out)
    assert rc == 0, err.decode(errors="replace")
    assert folder_digests(_volume_folder(target, ns, helper)) == streamed


def test_exec_reports_a_failing_command_with_its_exit_code_and_stderr(
    sandbox: SandboxStatus, seeded: SeedReport, pod_exec: PodExec, example_dir: Path
) -> None:
    ns, pod, _ = _seeded_volume_and_pod(sandbox, seeded, example_dir)
    command = ["sh", "-c", 'cd "$VOLUME_DIR" && tar -cf - does-not-exist']
    out, err, rc = pod_exec(_core(sandbox, "source"), ns, pod, command)
    assert rc == 2
    assert b"does-not-exist" in err


def test_status_reports_every_component_with_pid_port_and_memory(sandbox: SandboxStatus) -> None:
    st = status(sandbox.state_dir)
    assert st.running
    names = {p.name for p in st.processes}
    components = (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "provisioner",
    )
    assert names == {f"{side}/{c}" for side in ("source", "target") for c in components}
    for p in st.processes:
        assert p.alive and p.pid > 0 and p.rss_bytes > 0
        if p.port:
            assert port_is_listening(p.port), p.name
    assert {addr for addr, _ in listening_sockets([p.pid for p in st.processes])} == {"127.0.0.1"}
    assert st.total_rss_bytes < 4 * 1024**3
    figures = {p.name: round(p.rss_bytes / 2**20) for p in st.processes}
    print(json.dumps(figures | {"total_mib": round(st.total_rss_bytes / 2**20), "up_seconds": st.up_seconds}))


def test_up_refuses_a_state_folder_where_a_sandbox_runs(sandbox: SandboxStatus, sandbox_bin_dir: Path) -> None:
    with pytest.raises(FatalError, match="already running"):
        up(sandbox.state_dir, sandbox_bin_dir)


def test_down_leaves_no_process_and_no_listening_port(sandbox_bin_dir: Path, tmp_path: Path) -> None:
    st = up(tmp_path / "state", sandbox_bin_dir)
    pids = [p.pid for p in st.processes]
    ports = {p.port for p in st.processes if p.port}
    assert st.running and listening_ports(pids) >= ports
    stopped = down(tmp_path / "state")
    assert sorted(stopped) == sorted(p.name for p in st.processes)
    assert not (tmp_path / "state").exists()
    assert not [pid for pid in pids if _alive(pid)]
    assert not [port for port in ports if port_is_listening(port)]
    assert not status(tmp_path / "state").processes


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"
