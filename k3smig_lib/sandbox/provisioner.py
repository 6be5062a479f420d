"""The sandbox's stand-in for a volume provisioner and for the kubelet's volume setup.

Runs as its own process per cluster (``python -m k3smig_lib.sandbox.provisioner``) next to kwok:

- every Pending claim of a known StorageClass gets a ``local`` PersistentVolume backed by a fresh
  folder, pinned to a node (for ``WaitForFirstConsumer``: the node the scheduler wrote into
  ``volume.kubernetes.io/selected-node``); released volumes of reclaim policy Delete are removed;
- every pod placed on a node gets a kwok ``Exec`` whose working directory and ``VOLUME_DIR`` are the
  folder behind its first claim (``VOLUME_DIR_<VOLUME>`` for each), so ``tar`` through ``pods/exec``
  moves real bytes; then the pod is annotated ``volumes-ready`` and kwok's pod-ready stage starts it.

It polls (every 0.5 s) instead of watching: a sandbox holds a few dozen objects, and polling has no
reconnect logic to get wrong.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from k3smig_lib.k8s.errors import ApiError
from k3smig_lib.k8s.rawapi import ApiClient, api_client, core_v1, custom_objects, storage_v1
from k3smig_lib.log import logger
from k3smig_lib.sandbox.cluster import VOLUMES_READY

FOLDER_ANNOTATION = "sandbox.k3smig.io/folder"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


def local_volume(pvc: Any, sc: Any, class_name: str, node: str, folder: Path) -> dict[str, Any]:
    """A ``local`` PersistentVolume for ``pvc``, pre-bound to it and pinned to ``node``."""
    hostname = {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
    claim_ref = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": pvc.metadata.namespace,
        "name": pvc.metadata.name,
        "uid": pvc.metadata.uid,
    }
    annotations = {"pv.kubernetes.io/provisioned-by": sc.provisioner, FOLDER_ANNOTATION: str(folder)}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{pvc.metadata.uid}", "annotations": annotations},
        "spec": {
            "capacity": {"storage": (pvc.spec.resources.requests or {}).get("storage", "1Gi")},
            "accessModes": pvc.spec.access_modes or ["ReadWriteOnce"],
            "volumeMode": pvc.spec.volume_mode or "Filesystem",
            "persistentVolumeReclaimPolicy": sc.reclaim_policy or "Delete",
            "storageClassName": class_name,
            "claimRef": claim_ref,
            "local": {"path": str(folder)},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [hostname]}]}},
        },
    }


class Provisioner:
    """One reconcile pass at a time over claims, volumes and pods of one cluster."""

    def __init__(self, api: ApiClient, volumes_dir: Path) -> None:
        # Typed as Any: the generated models make every field Optional, which says nothing useful here.
        self.core: Any = core_v1(api)
        self.storage: Any = storage_v1(api)
        self.custom: Any = custom_objects(api)
        self.volumes_dir = volumes_dir

    def reconcile(self) -> None:
        """Provision, clean up and prepare pods once."""
        classes = {sc.metadata.name: sc for sc in self.storage.list_storage_class().items}
        nodes = sorted(n.metadata.name for n in self.core.list_node().items)
        for pvc in self.core.list_persistent_volume_claim_for_all_namespaces().items:
            if pvc.status.phase == "Pending" and not pvc.spec.volume_name:
                self._provision(pvc, classes, nodes)
        for pv in self.core.list_persistent_volume().items:
            if pv.status.phase == "Released" and pv.spec.persistent_volume_reclaim_policy == "Delete":
                self._delete_volume(pv)
        for pod in self.core.list_pod_for_all_namespaces().items:
            ann = pod.metadata.annotations or {}
            if pod.spec.node_name and not pod.metadata.deletion_timestamp and ann.get(VOLUMES_READY) != "true":
                self._prepare_pod(pod)

    def _provision(self, pvc: Any, classes: dict[str, Any], nodes: list[str]) -> None:
        name = pvc.spec.storage_class_name
        if name is None:
            defaults = [n for n, sc in classes.items() if (sc.metadata.annotations or {}).get(_DEFAULT_CLASS) == "true"]
            name = defaults[0] if defaults else None
        sc = classes.get(name or "")
        if sc is None or not nodes:
            return
        node = (pvc.metadata.annotations or {}).get(SELECTED_NODE)
        if sc.volume_binding_mode != "WaitForFirstConsumer":
            node = node or nodes[0]
        if not node:
            return
        folder = self.volumes_dir / f"{pvc.metadata.namespace}_{pvc.metadata.name}_{pvc.metadata.uid[:8]}"
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)  # like local-path: any container user may write
        pv = local_volume(pvc, sc, name, node, folder)
        try:
            self.core.create_persistent_volume(pv)
            logger.info(
                "provisioned %s for %s/%s on %s",
                pv["metadata"]["name"],
                pvc.metadata.namespace,
                pvc.metadata.name,
                node,
            )
        except ApiError as e:
            if e.status != 409:
                raise

    def _delete_volume(self, pv: Any) -> None:
        folder = (pv.metadata.annotations or {}).get(FOLDER_ANNOTATION)
        if folder and Path(folder).parent == self.volumes_dir:
            shutil.rmtree(folder, ignore_errors=True)
        try:
            self.core.delete_persistent_volume(pv.metadata.name)
        except ApiError as e:
            if e.status != 404:
                raise

    def _claim_folders(self, pod: Any) -> list[tuple[str, str]] | None:
        """(volume name, folder) for each claim of ``pod``; None while a claim is not bound yet."""
        out: list[tuple[str, str]] = []
        for vol in pod.spec.volumes or []:
            if vol.persistent_volume_claim is None:
                continue
            pvc = self.core.read_namespaced_persistent_volume_claim(
                vol.persistent_volume_claim.claim_name, pod.metadata.namespace
            )
            if pvc.status.phase != "Bound":
                return None
            pv = self.core.read_persistent_volume(pvc.spec.volume_name)
            path = pv.spec.local.path if pv.spec.local else pv.spec.host_path.path if pv.spec.host_path else None
            if path is None:
                return None
            out.append((vol.name, path))
        return out

    def _prepare_pod(self, pod: Any) -> None:
        try:
            folders = self._claim_folders(pod)
        except ApiError as e:
            if e.status == 404:
                return
            raise
        if folders is None:
            return
        if folders:
            self._ensure_exec(pod, folders)
        patch = {"metadata": {"annotations": {VOLUMES_READY: "true"}}}
        try:
            self.core.patch_namespaced_pod(pod.metadata.name, pod.metadata.namespace, patch)
        except ApiError as e:
            if e.status != 404:
                raise

    def _ensure_exec(self, pod: Any, folders: list[tuple[str, str]]) -> None:
        envs = [{"name": "VOLUME_DIR", "value": folders[0][1]}]
        envs += [{"name": "VOLUME_DIR_" + re.sub(r"[^A-Za-z0-9]", "_", n).upper(), "value": p} for n, p in folders]
        body = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Exec",
            "metadata": {
                "name": pod.metadata.name,
                "namespace": pod.metadata.namespace,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "uid": pod.metadata.uid}
                ],
            },
            "spec": {"execs": [{"local": {"workDir": folders[0][1], "envs": envs}}]},
        }
        try:
            self.custom.create_namespaced_custom_object(
                "kwok.x-k8s.io", "v1alpha1", pod.metadata.namespace, "execs", body
            )
        except ApiError as e:
            if e.status != 409:
                raise


def run(kubeconfig: Path, volumes_dir: Path, interval: float = 0.5) -> None:
    """Reconcile forever (until SIGTERM); API errors are logged and retried on the next pass."""
    stop = False

    def _on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_term)
    prov = Provisioner(api_client(kubeconfig), volumes_dir)
    while not stop:
        try:
            prov.reconcile()
        except Exception as e:  # a daemon loop: the API server may be restarting, try again next pass
            first = str(e).splitlines()[0] if str(e) else ""
            logger.warning("reconcile failed: %s %s", type(e).__name__, first)
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the provisioner process."""
    parser = argparse.ArgumentParser(description="k3smig sandbox volume provisioner")
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--volumes", type=Path, required=True)
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    run(args.kubeconfig, args.volumes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
