"""Live volume data between the sandbox clusters: helper pods, tar over pods/exec, faults.

Each test gets a fresh claim on both clusters in its own namespace; the source claim is filled on
the host (the sandbox's volumes are folders) with what a naive copy loses, then moved with the
production code — helper pods, the volume scripts over ``pods/exec``, the relay, the proof.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.backends.base import Capacity, VolumeRef
from k3smig_lib.backends.live_source import LiveSource
from k3smig_lib.backends.live_target import LiveTarget
from k3smig_lib.core.manifest import manifest_from_dir
from k3smig_lib.core.ownership import plan_ownership
from k3smig_lib.errors import K3sMigError
from k3smig_lib.k8s.client import ClusterRef, Kube
from k3smig_lib.k8s.volhelper import Helper, HelperSpec, remaining
from k3smig_lib.phases._datapath import DIRTY, PROVEN, copy_pass, prove
from k3smig_lib.phases.data import capacity_problem
from k3smig_lib.sandbox import SandboxStatus

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from faultproxy import Fault, FaultProxy  # noqa: E402

pytestmark = pytest.mark.integration
RUN = "it-live-data"


def ref(sandbox: SandboxStatus, side: str) -> ClusterRef:
    return ClusterRef(str(sandbox.kubeconfig), sandbox.contexts[side], side)


def claim(name: str, size: str, storage_class: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def consumer(name: str, claim_name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": "busybox",
                                     "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                     "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim_name}}]}}


@dataclass
class Case:
    """One claim on both clusters and the source folder behind it."""

    ns: str
    volume: VolumeRef
    source: LiveSource
    target: LiveTarget
    folder: Path
    kube_source: Kube
    kube_target: Kube


def _wait(what: str, fn: Any, timeout: float = 60.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = fn()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen in {timeout}s")


def _folder(kube: Kube, ns: str, name: str) -> Path | None:
    pvc = kube.request("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}", counter="gets").body
    volume = (pvc.get("spec") or {}).get("volumeName")
    if (pvc.get("status") or {}).get("phase") != "Bound" or not volume:
        return None
    pv = kube.json("GET", f"/api/v1/persistentvolumes/{volume}", counter="gets")
    return Path(pv["spec"]["local"]["path"])


def _source_class(kube: Kube) -> str:
    classes = kube.json("GET", "/apis/storage.k8s.io/v1/storageclasses", counter="lists").get("items") or []
    return str(classes[0]["metadata"]["name"])


@pytest.fixture()
def case(sandbox: SandboxStatus, seeded: Any) -> Iterator[Case]:
    ns = f"dp-{uuid.uuid4().hex[:8]}"
    ks, kt = Kube.of(ref(sandbox, "source")), Kube.of(ref(sandbox, "target"))
    for kube in (ks, kt):
        kube.request("POST", "/api/v1/namespaces", counter="writes",
                     body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    ks.request("POST", f"/api/v1/namespaces/{ns}/persistentvolumeclaims", counter="writes",
               body=claim("data", "1Gi", _source_class(ks)))
    ks.request("POST", f"/api/v1/namespaces/{ns}/pods", counter="writes", body=consumer("app", "data"))
    kt.request("POST", f"/api/v1/namespaces/{ns}/persistentvolumeclaims", counter="writes",
               body=claim("data", "1Gi", None))
    folder = _wait("the source claim binds", lambda: _folder(ks, ns, "data"))
    source = LiveSource(ref(sandbox, "source"), run_id=RUN)
    target = LiveTarget(ref(sandbox, "target"), run_id=RUN)
    try:
        yield Case(ns, VolumeRef(ns, "data", size="1Gi"), source, target, folder, ks, kt)
    finally:
        for kube in (ks, kt):
            kube.request("DELETE", f"/api/v1/namespaces/{ns}", counter="writes", accept=(404,))


def fill(folder: Path) -> None:
    """Names and file kinds a naive copy loses or mangles."""
    (folder / "db").mkdir()
    (folder / "db" / "vault.sqlite3").write_bytes(b"SQLite format 3\x00" + os.urandom(20000))
    (folder / "a b").write_text("hello")
    os.link(folder / "a b", folder / "hard")
    (folder / "empty").mkdir()
    os.symlink("/etc/passwd", folder / "abs-link")  # copied as a link, never followed
    with open(folder / "sparse", "wb") as fh:
        fh.truncate(32 << 20)
        fh.write(b"end")
    (folder / os.fsdecode(b"non-utf8-\xff")).write_text("x")
    (folder / "new\nline").write_text("y")
    deep = folder / ("d" * 150) / ("e" * 150)
    deep.mkdir(parents=True)
    (deep / ("f" * 150)).write_text("long path")
    (folder / "setuid").write_text("s")
    os.chmod(folder / "setuid", 0o4755)
    os.chown(folder / "db", 472, 472)
    os.chown(folder, 472, 472)


def copy_and_prove(case: Case, **kw: Any) -> tuple[Any, Any]:
    with ExitStack() as stack:
        src = stack.enter_context(case.source.volume(case.volume))
        dst = stack.enter_context(case.target.volume(case.volume))
        m = src.manifest()
        plan = plan_ownership(case.volume.id, m, None)
        rec = copy_pass(src, dst, plan, name="copy", source=m, **kw)
        return rec, prove(src, dst, plan, m)


def test_a_live_volume_moves_pod_to_pod_and_is_proven_with_everything_a_naive_copy_loses(case):
    fill(case.folder)
    rec, proof = copy_and_prove(case)
    assert rec.delta.full and rec.bytes_sent > 0
    assert proof.proven, proof.problem()
    target_folder = _folder(case.kube_target, case.ns, "data")
    assert target_folder is not None
    assert manifest_from_dir(target_folder).root_hash == manifest_from_dir(case.folder).root_hash
    assert os.stat(target_folder / "sparse").st_blocks * 512 < 1 << 20
    assert os.readlink(target_folder / "abs-link") == "/etc/passwd"
    assert remaining(case.kube_source) == [] and remaining(case.kube_target) == []


def test_a_second_copy_sends_nothing_and_the_state_says_proven(case):
    fill(case.folder)
    copy_and_prove(case)
    rec, proof = copy_and_prove(case)
    assert rec.delta.nothing and rec.bytes_sent == 0 and proof.proven
    with case.target.volume(case.volume) as dst:
        assert dst.state().startswith(PROVEN)


def test_a_file_changed_between_passes_is_sent_again_and_proven(case):
    fill(case.folder)
    copy_and_prove(case)
    (case.folder / "db" / "vault.sqlite3").write_bytes(b"SQLite format 3\x00" + os.urandom(100))
    rec, proof = copy_and_prove(case)
    assert rec.delta.send == ["db/vault.sqlite3"] and proof.proven


def test_a_file_changed_during_the_final_pass_is_never_a_pass(case):
    fill(case.folder)
    with ExitStack() as stack:
        src = stack.enter_context(case.source.volume(case.volume))
        dst = stack.enter_context(case.target.volume(case.volume))
        m = src.manifest()
        plan = plan_ownership(case.volume.id, m, None)
        copy_pass(src, dst, plan, name="final pass", source=m)
        (case.folder / "a b").write_text("written by an application that was not quiesced")
        proof = prove(src, dst, plan, m)
    assert not proof.proven and "a b" in proof.changed_on_source and "hard" in proof.changed_on_source


def test_an_exec_stream_cut_in_the_middle_fails_marks_the_target_dirty_and_a_rerun_recopies(case, sandbox):
    fill(case.folder)
    (case.folder / "big").write_bytes(os.urandom(4 << 20))
    fault = Fault(action="cut_stream", after=1 << 20, path="/exec", query="tar%20-c", times=1)
    with FaultProxy.for_context(sandbox.kubeconfig, sandbox.contexts["source"], faults=[fault]) as proxy:
        kubeconfig = proxy.write_kubeconfig(sandbox.kubeconfig, sandbox.contexts["source"],
                                            Path(str(case.folder) + ".kubeconfig"))
        cut_source = LiveSource(ClusterRef(str(kubeconfig), sandbox.contexts["source"], "source"), run_id=RUN)
        with ExitStack() as stack:
            src = stack.enter_context(cut_source.volume(case.volume))
            dst = stack.enter_context(case.target.volume(case.volume))
            m = src.manifest()
            plan = plan_ownership(case.volume.id, m, None)
            with pytest.raises(K3sMigError, match="truncated|cut|sentinel|stream broke") as caught:
                copy_pass(src, dst, plan, name="copy", source=m)
            assert "Traceback" not in str(caught.value)
            assert dst.state() == DIRTY
            assert not prove(src, dst, plan, m).proven
        assert fault.fired == 1
    rec, proof = copy_and_prove(case)
    assert rec.bytes_sent > 0 and proof.proven
    assert remaining(case.kube_source) == [] and remaining(case.kube_target) == []


def test_a_helper_pod_deleted_during_a_transfer_is_a_clean_error_and_no_helper_is_left(case):
    fill(case.folder)
    (case.folder / "big").write_bytes(os.urandom(16 << 20))
    with pytest.raises(K3sMigError, match="helper|pod") as caught:
        with ExitStack() as stack:
            src = stack.enter_context(case.source.volume(case.volume))
            dst = stack.enter_context(case.target.volume(case.volume))
            m = src.manifest()
            plan = plan_ownership(case.volume.id, m, None)
            killer = threading.Timer(0.2, lambda: src.helper.delete())  # type: ignore[attr-defined]
            killer.start()
            try:
                # a kubelet kills the container and cuts the stream; kwok lets a running command finish, so
                # the proof's second look at the source (a new exec) is what meets the deleted pod here
                copy_pass(src, dst, plan, name="copy", source=m)
                killer.join()
                prove(src, dst, plan, m)
            finally:
                killer.cancel()
    assert "Traceback" not in str(caught.value)
    assert remaining(case.kube_source) == [] and remaining(case.kube_target) == []


def test_a_target_claim_too_small_is_refused_before_any_write(case):
    (case.folder / "big").write_bytes(os.urandom(3 << 20))
    case.kube_target.request("POST", f"/api/v1/namespaces/{case.ns}/persistentvolumeclaims", counter="writes",
                             body=claim("small", "1Mi", None))
    small = VolumeRef(case.ns, "small")
    with case.source.volume(case.volume) as src, case.target.volume(small) as dst:
        need = src.manifest().totals["bytes"]
        cap = dst.capacity()
        assert cap == Capacity(requested=1 << 20, free=cap.free) and cap.free
        problem = capacity_problem(small.id, need, cap)
        assert "refused before any write" in problem
        assert dst.manifest() is not None and set(dst.manifest().entries) == {"."}  # type: ignore[union-attr]


def test_a_pod_security_restricted_namespace_names_the_label_to_change(case):
    case.kube_source.request("PATCH", f"/api/v1/namespaces/{case.ns}", counter="writes",
                             body={"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
                             content_type="application/merge-patch+json")
    with pytest.raises(K3sMigError, match="pod-security.kubernetes.io/enforce"):
        with case.source.volume(case.volume):
            pass
    assert remaining(case.kube_source) == []


def test_helpers_left_by_a_crashed_run_are_swept_and_the_current_runs_are_kept(case):
    crashed = Helper(case.kube_source, HelperSpec(case.ns, "data", "source", "an-earlier-crashed-run"))
    crashed.create()
    mine = Helper(case.kube_source, HelperSpec(case.ns, "data", "source", RUN))
    mine.create()
    try:
        gone = case.source.sweep_helpers(keep_run=RUN)
        assert gone == [f"{case.ns}/{crashed.name}"]
        assert remaining(case.kube_source) == [f"{case.ns}/{mine.name}"]
    finally:
        mine.delete()
    assert remaining(case.kube_source) == []
