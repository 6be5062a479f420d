"""Benchmark (make bench): k3smig's live volume transfer next to a kubectl exec pipe and a local tar pipe.

One run, same sandbox clusters, same data: a volume of many small files and a few large ones. k3smig
runs in its own process (transfer_run.py) so its peak RSS is its own; the kubectl pipe moves the same
bytes between two helper pods; the local pipe is the floor (no API server, no websocket). Figures are
printed; nothing here asserts on time (a flaky benchmark is a bug), only that every copy is complete.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.core.manifest import manifest_from_dir
from k3smig_lib.k8s.client import ClusterRef, Kube
from k3smig_lib.k8s.volhelper import Helper, HelperSpec

pytestmark = pytest.mark.benchmark  # not integration: `-m integration` must not start a 2 GiB run
HERE = Path(__file__).parent
MIB = 1 << 20


def fill(folder: Path, total: int, seed: int = 7, *, small_share: float = 0.3) -> None:
    """Mixed data: ``small_share`` in small files (1-16 KiB, 40 per folder), the rest in four large files."""
    rnd = random.Random(seed)
    block = os.urandom(4 * MIB)
    small, i = int(total * small_share), 0
    while small > 0:
        d = folder / f"small/{i // 40:04d}"
        d.mkdir(parents=True, exist_ok=True)
        size = rnd.randint(1024, 16384)
        off = rnd.randint(0, len(block) - size)
        (d / f"f{i:06d}").write_bytes(block[off:off + size])
        small -= size
        i += 1
    large = total - int(total * small_share)
    for n in range(4):
        with open(folder / f"large-{n}.bin", "wb") as fh:
            left = large // 4
            while left > 0:
                chunk = block[: min(left, len(block))]
                fh.write(bytes([n]) + chunk[1:])
                left -= len(chunk)


def wipe(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def bound_folder(kube: Kube, ns: str, name: str) -> Path:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        pvc = kube.json("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}", counter="gets")
        if (pvc.get("status") or {}).get("phase") == "Bound":
            pv = kube.json("GET", f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}", counter="gets")
            return Path(pv["spec"]["local"]["path"])
        time.sleep(0.3)
    raise AssertionError(f"{ns}/{name} not bound")


def k3smig_run(sandbox: Any, ns: str) -> dict[str, Any]:
    proc = subprocess.Popen([sys.executable, str(HERE / "transfer_run.py"), str(sandbox.kubeconfig),
                             sandbox.contexts["source"], sandbox.contexts["target"], ns, "data"],
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    return result


def kubectl_pipe(sandbox: Any, kubectl: Path, ns: str, src_pod: str, dst_pod: str) -> float:
    base = [str(kubectl), "--kubeconfig", str(sandbox.kubeconfig)]
    start = time.perf_counter()
    reader = subprocess.Popen([*base, "--context", sandbox.contexts["source"], "exec", "-n", ns, src_pod, "--",
                               "sh", "-c", 'cd "$VOLUME_DIR" && tar -c -f - --numeric-owner --sparse .'],
                              stdout=subprocess.PIPE)
    writer = subprocess.run([*base, "--context", sandbox.contexts["target"], "exec", "-i", "-n", ns, dst_pod, "--",
                             "sh", "-c", 'cd "$VOLUME_DIR" && tar -x -f - --numeric-owner -p'],
                            stdin=reader.stdout, check=False)
    reader.wait()
    assert reader.returncode == 0 and writer.returncode == 0
    return time.perf_counter() - start


def local_pipe(src: Path, dst: Path) -> float:
    start = time.perf_counter()
    subprocess.run(f"tar -c -f - --numeric-owner --sparse -C '{src}' . | tar -x -f - --numeric-owner -p -C '{dst}'",
                   shell=True, check=True)
    return time.perf_counter() - start


@pytest.mark.parametrize(("size_mib", "small_share"), [(100, 0.3), (1024, 0.3), (2048, 0.3), (100, 0.0), (2048, 0.0)])
def test_transfer_throughput_and_memory(sandbox, seeded, sandbox_bin_dir, size_mib, small_share):
    ks = Kube.of(ClusterRef(str(sandbox.kubeconfig), sandbox.contexts["source"], "source"))
    kt = Kube.of(ClusterRef(str(sandbox.kubeconfig), sandbox.contexts["target"], "target"))
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    classes = ks.json("GET", "/apis/storage.k8s.io/v1/storageclasses", counter="lists")["items"]
    for kube, cls in ((ks, classes[0]["metadata"]["name"]), (kt, None)):
        kube.request("POST", "/api/v1/namespaces", counter="writes",
                     body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}
        if cls:
            spec["storageClassName"] = cls
        kube.request("POST", f"/api/v1/namespaces/{ns}/persistentvolumeclaims", counter="writes",
                     body={"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                           "spec": spec})
    ks.request("POST", f"/api/v1/namespaces/{ns}/pods", counter="writes", body={
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}],
                 "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}})
    src = bound_folder(ks, ns, "data")
    fill(src, size_mib * MIB, small_share=small_share)
    files = sum(1 for _ in src.rglob("*"))
    figures: dict[str, Any] = {"size_mib": size_mib, "files": files}
    try:
        k3 = k3smig_run(sandbox, ns)
        assert k3["proven"]
        dst = bound_folder(kt, ns, "data")
        figures |= {"k3smig_s": round(k3["seconds"], 2), "k3smig_rss_mib": round(k3["peak_rss_mib"], 1)}
        wipe(dst)
        helpers = [Helper(kube, HelperSpec(ns, "data", side, "bench-kubectl")) for kube, side in
                   ((ks, "source"), (kt, "target"))]
        for h in helpers:
            h.create()
            h.wait_running()
        try:
            figures["kubectl_s"] = round(kubectl_pipe(sandbox, sandbox_bin_dir / "kubectl", ns,
                                                      helpers[0].name, helpers[1].name), 2)
        finally:
            for h in helpers:
                h.delete()
        assert manifest_from_dir(dst).root_hash == manifest_from_dir(src).root_hash
        with tempfile.TemporaryDirectory(prefix="k3smig-bench-") as tmp:
            figures["local_tar_s"] = round(local_pipe(src, Path(tmp)), 2)
        mb = size_mib * MIB / 1e6
        figures |= {f"{k[:-2]}_MBps": round(mb / v, 1) for k, v in list(figures.items()) if k.endswith("_s")}
        figures["k3smig_vs_kubectl"] = round(figures["kubectl_s"] / figures["k3smig_s"], 2)
    finally:
        wipe(src)
        for kube in (ks, kt):
            kube.request("DELETE", f"/api/v1/namespaces/{ns}", counter="writes", accept=(404,))
    print("\nBENCH transfer " + json.dumps(figures))
