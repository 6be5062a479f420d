"""The read side of the live path against the sandbox: discovery, lists, identity, RBAC, faults (issue 4).

Figures (list calls, relists, seconds) are printed with a ``FIGURES`` prefix; run with ``-s`` to see them.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from k3smig_lib.backends.live_source import LiveSource, skip_reason, write_snapshot
from k3smig_lib.backends.snapshot import SnapshotSource
from k3smig_lib.core.objects import Obj, ref, sha256_of
from k3smig_lib.errors import SourceError
from k3smig_lib.k8s.client import ClusterRef, Kube, api_client
from k3smig_lib.k8s.discovery import ApiResource
from k3smig_lib.k8s.listing import PageEvent
from k3smig_lib.k8s.preflight import (
    PermissionCheck,
    can_i,
    kube_system_uid,
    looks_like_k3s,
    missing_permissions,
    node_capacity,
    server_version,
)
from k3smig_lib.k8s.retry import RetryPolicy
from k3smig_lib.phases.preflight import data_path_checks
from k3smig_lib.sandbox import SandboxStatus, SeedReport
from k3smig_lib.sandbox.procs import ProcessRecord, start_process, stop_process

sys.path.insert(0, str(Path(__file__).parent))  # tests/integration is not a package
from faultproxy import Fault, FaultProxy  # noqa: E402

pytestmark = pytest.mark.integration

#: Short waits so fault tests fail in seconds, not minutes.
FAST = RetryPolicy(attempts=4, base_delay=0.1, max_delay=1.0, deadline=20.0)
Counts = Counter[tuple[str, str]]


def recording(ref: ClusterRef, waits: list[float], **kw: Any) -> LiveSource:
    """A live source whose transport records the waits the retry loop chooses instead of sleeping.

    Fault tests then assert the exact waits (``Retry-After`` honoured, one backoff per retry) and
    take no wall time for them.
    """
    return LiveSource(ref, kube=Kube.of(ref, policy=FAST, sleep=waits.append), **kw)


def figures(label: str, **values: Any) -> None:
    print(f"FIGURES {label}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def cluster(sb: SandboxStatus, side: str, kubeconfig: Path | None = None) -> ClusterRef:
    return ClusterRef(str(kubeconfig or sb.kubeconfig), sb.contexts[side], side)


def group_of(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def counts_of(objects: Sequence[Obj]) -> Counts:
    return Counter((group_of(o["apiVersion"]), o["kind"]) for o in objects)


def kubectl_counts(kubectl: Path, sb: SandboxStatus, side: str, resources: Sequence[ApiResource]) -> Counts:
    """Objects per (group, kind) as ``kubectl get <every resource> -A -o json`` sees them."""
    argv = [str(kubectl), "--kubeconfig", str(sb.kubeconfig), "--context", sb.contexts[side], "get",
            ",".join(r.full_name for r in resources), "-A", "-o", "json"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
    return counts_of(json.loads(out)["items"])


def settled_kubectl_counts(kubectl: Path, sb: SandboxStatus, side: str, listing: Callable[[], list[Obj]],
                           resources: Sequence[ApiResource]) -> tuple[Counts, Counts]:
    """(kubectl's counts, ours) taken while kubectl sees the same counts before and after our list."""
    for _ in range(5):
        before = kubectl_counts(kubectl, sb, side, resources)
        ours = counts_of(listing())
        if kubectl_counts(kubectl, sb, side, resources) == before:
            return before, ours
        time.sleep(2)
    raise AssertionError(f"{side} kept changing while listing")


@pytest.fixture(scope="module")
def kubectl(sandbox_bin_dir: Path) -> Path:
    return sandbox_bin_dir / "kubectl"


@pytest.fixture()
def source(sandbox: SandboxStatus, seeded: SeedReport) -> LiveSource:
    return LiveSource(cluster(sandbox, "source"))


@pytest.fixture()
def source_proxy(sandbox: SandboxStatus, seeded: SeedReport, tmp_path: Path) -> Iterator[tuple[FaultProxy, Path]]:
    """A fault proxy in front of the source API server, and a kubeconfig that goes through it."""
    with FaultProxy.for_context(sandbox.kubeconfig, sandbox.contexts["source"], lifetime=300) as proxy:
        kc = proxy.write_kubeconfig(sandbox.kubeconfig, sandbox.contexts["source"], tmp_path / "proxy.kubeconfig")
        yield proxy, kc


@pytest.mark.parametrize("side", ["source", "target"])
def test_every_exported_kind_has_the_count_kubectl_get_shows(
    sandbox: SandboxStatus, seeded: SeedReport, kubectl: Path, side: str
) -> None:
    live = LiveSource(cluster(sandbox, side))
    start = time.monotonic()
    objects = live.list_objects()
    seconds = time.monotonic() - start
    assert live.discovery is not None and live.stats is not None
    resources = live.exported_resources()
    expected, ours = settled_kubectl_counts(kubectl, sandbox, side, lambda: LiveSource(cluster(sandbox, side))
                                            .list_objects(), resources)
    assert ours == expected
    assert {(r.group, r.kind) for r in resources if r.listable} >= {("", "Secret"), ("apps", "Deployment")}
    assert all(o["apiVersion"] and o["kind"] for o in objects)
    assert not [o for o in objects if o["kind"] in ("Event", "ComponentStatus", "IPAddress")]
    if side == "source":  # the example's CRs come through discovery like any built-in kind
        assert ours[("cert-manager.io", "Certificate")] > 0
    figures(f"{side} export", objects=len(objects), kinds=len(resources), discovery_calls=live.discovery.calls,
            discovery_s=round(live.discovery.seconds, 3), list_calls=live.stats.calls,
            list_s=round(live.stats.seconds, 3), total_s=round(seconds, 3))


def test_events_and_allocation_records_are_skipped_with_a_reason(source: LiveSource) -> None:
    assert source.discovery is None
    exported = {(r.group, r.name) for r in source.exported_resources()}
    assert source.discovery is not None
    skipped = {(r.group, r.name): skip_reason(r) for r in source.discovery.resources if skip_reason(r)}
    assert ("", "events") not in exported and ("events.k8s.io", "events") not in exported
    assert "history" in skipped[("", "events")]
    assert skipped[("", "bindings")] == "not listable"
    assert ("networking.k8s.io", "ipaddresses") in skipped
    assert ("apiextensions.k8s.io", "customresourcedefinitions") in exported


def test_source_and_target_differ_in_identity_and_only_the_target_looks_like_k3s(
    sandbox: SandboxStatus, seeded: SeedReport
) -> None:
    src_api, tgt_api = (Kube.of(cluster(sandbox, s)) for s in ("source", "target"))
    src_uid, tgt_uid = kube_system_uid(src_api), kube_system_uid(tgt_api)
    assert src_uid and tgt_uid and src_uid != tgt_uid
    info = LiveSource(cluster(sandbox, "source")).info()
    assert (info.kind, info.identity, info.cluster_name) == ("cluster", src_uid, sandbox.contexts["source"])
    assert info.kubernetes_version == server_version(src_api).git_version == sandbox.kubernetes_version
    assert info.distribution == "kapsule"  # the seeded nodes carry scaleway:// provider IDs
    assert LiveSource(cluster(sandbox, "target")).info().distribution == "k3s"
    target, source = looks_like_k3s(tgt_api), looks_like_k3s(src_api)
    assert target and target.node_label and target.kubelet and target.local_path
    assert not source and not source.local_path
    capacity = node_capacity(tgt_api)
    assert [n.name for n in capacity.nodes] == ["k3s-vm"]
    assert capacity.cpu == 4.0 and capacity.memory == 16 * 2**30 and capacity.nodes[0].ready


def test_the_export_written_as_a_snapshot_reads_back_as_the_same_objects(
    source: LiveSource, tmp_path: Path
) -> None:
    objects = source.list_objects()
    info = source.info()
    folder = tmp_path / "export"
    written = write_snapshot(objects, folder, info, exported_at="")
    assert Path("manifests/_cluster/Namespace.yaml") in written and Path("cluster.yaml") in written
    secret_file = next(p for p in written if p.name == "Secret.yaml")
    assert stat.S_IMODE(os.stat(folder / secret_file).st_mode) == 0o600
    assert yaml.safe_load((folder / secret_file).read_text())["kind"] == "List"
    snap = SnapshotSource(folder)
    assert sorted(sha256_of(o) for o in snap.list_objects()) == sorted(sha256_of(o) for o in objects)
    assert snap.info().identity == info.identity and snap.info().kubernetes_version == info.kubernetes_version
    bound = {f"{ref(o).namespace}/{ref(o).name}" for o in objects
             if o["kind"] == "PersistentVolumeClaim" and o["status"]["phase"] == "Bound"}
    assert [v.id for v in source.list_volumes()] == sorted(bound) and len(bound) == 5


def _narrow_service_account(sb: SandboxStatus, namespace: str, tmp_path: Path) -> Path:
    """A ServiceAccount allowed only ``get``/``list`` on pods in ``namespace``; returns its kubeconfig."""
    api = api_client(cluster(sb, "source"))
    core: Any = client.CoreV1Api(api)
    rbac: Any = client.RbacAuthorizationV1Api(api)
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "narrow"}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "pod-reader"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "narrow-pod-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "narrow", "namespace": namespace}]})
    token = core.create_namespaced_service_account_token(
        "narrow", namespace, {"spec": {"expirationSeconds": 600}}).status.token
    cfg = yaml.safe_load(sb.kubeconfig.read_text())
    ctx = sb.contexts["source"]
    cfg["users"] = [{"name": "narrow", "user": {"token": token}}]
    cfg["contexts"] = [{"name": ctx, "context": {"cluster": ctx, "user": "narrow"}}]
    path = tmp_path / "narrow.kubeconfig"
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(cfg))
    return path


def _delete_namespace(sb: SandboxStatus, namespace: str) -> None:
    core: Any = client.CoreV1Api(api_client(cluster(sb, "source")))
    core.delete_namespace(namespace)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if namespace not in [n.metadata.name for n in core.list_namespace().items]:
            return
        time.sleep(0.5)


def test_access_review_allows_the_admin_and_denies_a_narrow_service_account(
    sandbox: SandboxStatus, seeded: SeedReport, tmp_path: Path
) -> None:
    ns = "k3smig-narrow-rbac"
    admin = Kube.of(cluster(sandbox, "source"))
    assert can_i(admin, "list", "secrets") and can_i(admin, "create", "leases", "coordination.k8s.io", "kube-system")
    kc = _narrow_service_account(sandbox, ns, tmp_path)
    try:
        narrow = Kube.of(cluster(sandbox, "source", kc))
        assert can_i(narrow, "list", "pods", namespace=ns)
        assert not can_i(narrow, "list", "secrets", namespace=ns)
        checks = [PermissionCheck("list", "pods", namespace=ns), PermissionCheck("list", "secrets", namespace=ns),
                  PermissionCheck("list", "pods"), PermissionCheck("patch", "deployments", "apps", ns)]
        missing = missing_permissions(narrow, checks)
        assert missing == checks[1:]
        assert missing[2].fix == 'a Role in ns k3smig-narrow-rbac rule {apiGroups: ["apps"], ' \
                                 'resources: ["deployments"], verbs: ["patch"]}'
        assert missing_permissions(admin, checks) == []
        with pytest.raises(SourceError, match=r"source cluster: list \S+: not allowed \(HTTP 403 Forbidden\)") as err:
            LiveSource(cluster(sandbox, "source", kc)).list_objects()
        assert "a ClusterRole rule {apiGroups:" in err.value.fix and "kubectl auth can-i list" in err.value.fix
        data = {c.label: c for c in missing_permissions(narrow, data_path_checks([ns], "source"))}
        assert data["create pods/exec in ns k3smig-narrow-rbac"].fix == \
            'a Role in ns k3smig-narrow-rbac rule {apiGroups: [""], resources: ["pods/exec"], verbs: ["create"]}'
        assert "patch statefulsets.apps in ns k3smig-narrow-rbac" in data  # quiescing needs it
        assert "get pods in ns k3smig-narrow-rbac" not in data
    finally:
        _delete_namespace(sandbox, ns)


def _ids(objects: Sequence[Obj]) -> set[str]:
    return {ref(o).id for o in objects}


def test_a_429_with_retry_after_is_waited_out_then_the_list_succeeds(
    sandbox: SandboxStatus, source_proxy: tuple[FaultProxy, Path], source: LiveSource
) -> None:
    proxy, kc = source_proxy
    proxy.set_faults(Fault("status", 429, retry_after=2, path="/api/v1/secrets"))
    waits: list[float] = []
    live = recording(cluster(sandbox, "source", kc), waits)
    objects = live.list_objects()
    hits = proxy.requests("/api/v1/secrets")
    assert [h.status for h in hits] == [429, 200]
    assert waits == [2.0]  # Retry-After: 2 was honoured, not the 0.1s backoff
    assert _ids(objects) == _ids(source.list_objects())
    assert live.stats is not None and live.stats.calls == len(live.stats.results) + 1
    assert live.kube.counts.retries == 1
    figures("429 retry", secrets_calls=len(hits), waited_s=waits[0], list_calls=live.stats.calls)


def test_a_503_is_retried_then_the_list_succeeds(
    sandbox: SandboxStatus, source_proxy: tuple[FaultProxy, Path], source: LiveSource
) -> None:
    proxy, kc = source_proxy
    proxy.set_faults(Fault("status", 503, times=2, path="/apis/apps/v1/deployments"))
    waits: list[float] = []
    objects = recording(cluster(sandbox, "source", kc), waits).list_objects()
    assert [h.status for h in proxy.requests("/apis/apps/v1/deployments")] == [503, 503, 200]
    assert len(waits) == 2 and 0 <= waits[0] < 0.1 and 0 <= waits[1] < 0.2  # full jitter under FAST's ceilings
    assert _ids(objects) == _ids(source.list_objects())


def test_reset_connections_are_retried_then_the_list_succeeds(
    sandbox: SandboxStatus, source_proxy: tuple[FaultProxy, Path], source: LiveSource
) -> None:
    proxy, kc = source_proxy
    proxy.set_faults(Fault("reset", path="/api/v1/configmaps"), Fault("reset_mid_body", path="/api/v1/secrets"))
    waits: list[float] = []
    objects = recording(cluster(sandbox, "source", kc), waits).list_objects()
    assert len(waits) == 2
    assert [h.fault for h in proxy.requests("/api/v1/configmaps")] == ["reset", ""]
    assert [h.fault for h in proxy.requests("/api/v1/secrets")] == ["reset_mid_body", ""]
    assert _ids(objects) == _ids(source.list_objects())
    assert counts_of(objects)[("", "Secret")] == counts_of(source.list_objects())[("", "Secret")]


def test_a_persistent_503_fails_with_the_last_status(
    sandbox: SandboxStatus, source_proxy: tuple[FaultProxy, Path]
) -> None:
    proxy, kc = source_proxy
    proxy.set_faults(Fault("status", 503, times=-1, path="/api/v1/secrets"))
    waits: list[float] = []
    with pytest.raises(SourceError, match=r"list secrets failed after 4 attempt\(s\) \(attempts exhausted\).*"
                                          r"last status: HTTP 503") as err:
        recording(cluster(sandbox, "source", kc), waits).list_objects()
    assert "check the API server's health" in err.value.fix
    assert [h.status for h in proxy.requests("/api/v1/secrets")] == [503] * 4
    assert len(waits) == 3
    figures("persistent 503", attempts=4, backoff_s=round(sum(waits), 3))


def test_an_expired_continue_token_restarts_the_list_and_counts_match_kubectl(
    sandbox: SandboxStatus, source_proxy: tuple[FaultProxy, Path], kubectl: Path
) -> None:
    proxy, kc = source_proxy
    proxy.set_faults(Fault("status", 410, query="continue=", path="/api/v1/configmaps"))
    waits: list[float] = []
    live = recording(cluster(sandbox, "source", kc), waits, page_size=4)
    objects = live.list_objects()
    assert waits == []  # a relist is not a retry: no wait
    assert live.stats is not None
    relisted = [r for r in live.stats.results if r.relists]
    assert [(r.resource.name, r.relists) for r in relisted] == [("configmaps", 1)]
    assert relisted[0].pages >= 2 and relisted[0].calls == relisted[0].pages + 2  # the 410 page + page 1 again
    expected, _ = settled_kubectl_counts(kubectl, sandbox, "source", lambda: objects, live.exported_resources())
    assert counts_of(objects) == expected
    figures("410 relist", page_size=4, list_calls=live.stats.calls, relists=live.stats.relists,
            configmap_pages=relisted[0].pages, list_s=round(live.stats.seconds, 3))


def _apiserver_record(sb: SandboxStatus) -> tuple[dict[str, Any], int, ProcessRecord]:
    state = json.loads((sb.state_dir / "sandbox.json").read_text())
    index = next(i for i, p in enumerate(state["processes"]) if p["name"] == "source/kube-apiserver")
    return state, index, ProcessRecord.from_json(state["processes"][index])


def _restart_source_apiserver(sb: SandboxStatus, state: dict[str, Any], index: int, rec: ProcessRecord) -> float:
    """Start the stopped API server again with its recorded command line, and record the new PID
    in the sandbox state so ``down`` stops it. Returns the seconds until it answered."""
    start = time.monotonic()
    new = start_process(rec.name, rec.argv, Path(rec.log), port=rec.port,
                        cwd=Path(state["clusters"]["source"]["root"]))
    state["processes"][index] = new.to_json()
    (sb.state_dir / "sandbox.json").write_text(json.dumps(state, indent=2))
    kube = Kube.of(cluster(sb, "source"), policy=RetryPolicy(attempts=1))
    while True:
        try:
            server_version(kube)
            return time.monotonic() - start
        except SourceError:
            assert time.monotonic() - start < 90, "the source API server did not come back"
            time.sleep(0.3)


def _export(sb: SandboxStatus, folder: Path, waits: list[float] | None = None, **kw: Any) -> LiveSource:
    ref = cluster(sb, "source")
    live = recording(ref, waits, **kw) if waits is not None else LiveSource(ref, **kw)
    write_snapshot(live.list_objects(), folder, live.info(), exported_at="")
    return live


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file of a snapshot, minus what an API server restart itself rewrites: Leases
    (heartbeats, and a new apiserver identity Lease) and the `kubernetes` Service's endpoints."""
    volatile = ("Lease.yaml", "default/Endpoints.yaml", "default/EndpointSlice.yaml")
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not str(p).endswith(volatile)}


def _settled_export(sb: SandboxStatus, folder: Path, timeout: float = 90.0) -> None:
    """Export until two exports in a row are equal: the controllers have finished with the seed."""
    deadline = time.monotonic() + timeout
    _export(sb, folder)
    while True:
        previous = _tree(folder)
        time.sleep(2)
        _export(sb, folder)
        if _tree(folder) == previous:
            return
        assert time.monotonic() < deadline, "the source did not settle"


def test_stopping_the_source_api_server_mid_list_fails_cleanly_and_a_rerun_is_identical(
    sandbox: SandboxStatus, seeded: SeedReport, tmp_path: Path
) -> None:
    _settled_export(sandbox, tmp_path / "before")
    state, index, rec = _apiserver_record(sandbox)
    stopped: list[float] = []
    waits: list[float] = []

    def stop_after_first_configmaps_page(event: PageEvent) -> None:
        if len(stopped) == 0 and event.page == 1 and event.resource.startswith("configmaps"):
            begin = time.monotonic()
            stop_process(rec)
            stopped.append(time.monotonic() - begin)

    start = time.monotonic()
    try:
        with pytest.raises(SourceError, match=r"connection refused; last status: no HTTP status") as err:
            _export(sandbox, tmp_path / "during", waits, workers=1, page_size=3,
                    on_page=stop_after_first_configmaps_page)
        failed_after = time.monotonic() - start
    finally:
        restart_s = _restart_source_apiserver(sandbox, state, index, rec)
    assert stopped and "re-run" in err.value.fix
    assert len(waits) >= FAST.attempts - 1  # the failing page waited (on the recorder) before each retry
    assert not (tmp_path / "during" / "manifests").exists()  # a failed export writes nothing
    live = _export(sandbox, tmp_path / "after")
    assert _tree(tmp_path / "after") == _tree(tmp_path / "before")
    assert live.stats is not None and live.discovery is not None
    figures("apiserver stop", stop_s=round(stopped[0], 1), failed_after_s=round(failed_after, 1),
            restart_s=round(restart_s, 1), rerun_discovery_s=round(live.discovery.seconds, 2),
            rerun_list_calls=live.stats.calls, rerun_list_s=round(live.stats.seconds, 3))
