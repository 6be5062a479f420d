"""Seed the sandbox's source cluster from a snapshot folder, the way a user built the real cluster.

Only user-authored objects are created (see :mod:`k3smig_lib.sandbox.userform` for the choice),
stripped of what the server assigns. Everything derived — ReplicaSets, Pods, EndpointSlices, token
Secrets, ControllerRevisions, PersistentVolumes — is left to the sandbox's controllers and
provisioner, so the source looks like a cluster that grew naturally. The snapshot's Nodes become kwok
fake nodes (workloads pinned to them schedule). Then each volume archive
(``volumes/<ns>/<claim>.tar.gz``) is unpacked into the folder behind its bound claim.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k3smig_lib.backends.snapshot import read_export
from k3smig_lib.core.objects import Obj, ref
from k3smig_lib.errors import SourceError, TargetError
from k3smig_lib.k8s.errors import ApiError
from k3smig_lib.k8s.rawapi import api_client, core_v1, dynamic_client, served_resource
from k3smig_lib.sandbox.bootstrap import SANDBOX_PROVISIONER, storage_class
from k3smig_lib.sandbox.procs import wait_until
from k3smig_lib.sandbox.userform import select


@dataclass
class SeedReport:
    """What ``seed_source`` did."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)


def _wait_crds_established(dyn: Any, names: list[str], timeout: float) -> None:
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")

    def established() -> bool:
        for name in names:
            conds = (crds.get(name=name).to_dict().get("status") or {}).get("conditions") or []
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                return False
        return True

    wait_until(established, timeout, f"CRDs {', '.join(names)}", lambda: "check the CRD manifests")


def _create(dyn: Any, obj: Obj, report: SeedReport) -> None:
    rid = ref(obj).id
    res = served_resource(dyn, obj["apiVersion"], obj["kind"])
    if res is None:
        report.skipped[rid] = "API not served by the sandbox"
        return
    try:
        res.create(body=obj, namespace=obj["metadata"].get("namespace") if res.namespaced else None)
        report.created.append(rid)
    except ApiError as e:
        if e.status != 409:
            raise TargetError(
                f"the sandbox refused the object: {e.reason}",
                resource=rid,
                fix="check the snapshot's manifest of this object",
            ) from e
        report.existing.append(rid)


def _missing_classes(objs: list[Obj], dyn: Any) -> list[Obj]:
    """StorageClasses the claims name but neither the snapshot nor the cluster defines."""
    have = {
        i.metadata.name for i in dyn.resources.get(api_version="storage.k8s.io/v1", kind="StorageClass").get().items
    }
    have |= {o["metadata"]["name"] for o in objs if o["kind"] == "StorageClass"}
    specs = [o.get("spec") or {} for o in objs if o["kind"] == "PersistentVolumeClaim"]
    specs += [t.get("spec") or {} for o in objs for t in (o.get("spec") or {}).get("volumeClaimTemplates") or []]
    wanted = {str(spec["storageClassName"]) for spec in specs if spec.get("storageClassName")}
    return [storage_class(n, SANDBOX_PROVISIONER, wait_for_consumer=False) for n in sorted(wanted - have)]


def _archive(snapshot_dir: Path, ns: str, claim: str) -> Path | None:
    for suffix in (".tar.gz", ".tgz", ".tar"):
        path = snapshot_dir / "volumes" / ns / f"{claim}{suffix}"
        if path.is_file():
            return path
    return None


def _claim_folder(core: Any, ns: str, claim: str) -> str | None:
    try:
        pvc = core.read_namespaced_persistent_volume_claim(claim, ns)
    except ApiError as e:
        if e.status == 404:
            return None  # a StatefulSet has not created it yet
        raise
    if pvc.status.phase != "Bound":
        return None
    pv = core.read_persistent_volume(pvc.spec.volume_name)
    return str(pv.spec.local.path) if pv.spec.local else None


def _fill_volumes(core: Any, snapshot_dir: Path, report: SeedReport, timeout: float) -> None:
    archives = sorted(
        (p.parent.name, p.name.split(".tar")[0].removesuffix(".tgz"))
        for p in (snapshot_dir / "volumes").glob("*/*")
        if p.is_file()
    )
    for ns, claim in archives:
        archive = _archive(snapshot_dir, ns, claim)
        if archive is None:
            continue
        found: list[str] = []

        def bound(ns: str = ns, claim: str = claim, found: list[str] = found) -> bool:
            folder = _claim_folder(core, ns, claim)
            found[:] = [folder] if folder else []
            return bool(folder)

        wait_until(bound, timeout, f"claim {ns}/{claim}", lambda: "is it created by the snapshot's workloads?")
        folder = Path(found[0])
        if not any(folder.iterdir()):
            # GNU tar keeps owners and modes as root and refuses absolute paths and `..` members.
            subprocess.run(
                ["tar", "-x", "--numeric-owner", "-p", "-f", str(archive), "-C", str(folder)],
                check=True,
                capture_output=True,
            )
        report.volumes[f"{ns}/{claim}"] = str(folder)


def _create_owned(dyn: Any, owned: list[tuple[Obj, list[dict[str, Any]]]], report: SeedReport) -> None:
    """Create objects owned by kinds no sandbox controller manages, with owner references renewed.

    Owner uids change on replay, so each reference gets the live owner's uid; rounds let chains
    (Ingress -> Certificate -> Secret) resolve in order.
    """
    pending = list(owned)
    while pending:
        waiting = []
        for obj, owners in pending:
            live = [_live_owner(dyn, r, obj["metadata"].get("namespace")) for r in owners]
            if all(live):
                obj["metadata"]["ownerReferences"] = [r | {"uid": uid} for r, uid in zip(owners, live, strict=True)]
                _create(dyn, obj, report)
            else:
                waiting.append((obj, owners))
        if len(waiting) == len(pending):
            for obj, _ in waiting:
                report.skipped[ref(obj).id] = "its owner is not in the snapshot"
            return
        pending = waiting


def _live_owner(dyn: Any, owner: dict[str, Any], namespace: str | None) -> str:
    """Uid of the live object an owner reference names ("" when it does not exist)."""
    res = served_resource(dyn, owner["apiVersion"], owner["kind"])
    if res is None:
        return ""
    try:
        live = res.get(name=owner["name"], namespace=namespace if res.namespaced else None)
    except ApiError:
        return ""
    return str(live.metadata.uid)


def seed_source(kubeconfig: Path, context: str, snapshot_dir: Path, timeout: float = 120.0) -> SeedReport:
    """Create the snapshot's user-authored objects in a sandbox cluster and fill their volumes.

    Args:
        kubeconfig: the sandbox kubeconfig (from ``up``).
        context: the context to seed, normally ``k3smig-source``.
        snapshot_dir: a snapshot folder (``manifests/…`` exports and ``volumes/<ns>/<claim>.tar.gz``).
        timeout: seconds to wait for each archived claim to be bound.

    Returns:
        Which objects were created, already existed or were skipped (with the reason), and the
        folder behind each seeded volume.

    Raises:
        SourceError: the snapshot folder cannot be read.
        TargetError: the cluster refused an object.
        TimeoutError: an archived claim was not bound in time.

    Examples:
        >>> kubeconfig = Path(".cache/sandbox/state/kubeconfig")
        >>> seed_source(kubeconfig, "k3smig-source", Path("examples/prod-cluster"))  # doctest: +SKIP
    """
    if not snapshot_dir.is_dir():
        raise SourceError(f"snapshot folder {snapshot_dir} does not exist", fix="pass the example's folder")
    objs = read_export(snapshot_dir / "manifests" if (snapshot_dir / "manifests").is_dir() else snapshot_dir)
    sel = select(objs)
    report = SeedReport(skipped=dict(sel.skipped))
    crds = [o for o in sel.objects if o["kind"] == "CustomResourceDefinition"]
    api = api_client(kubeconfig, context)
    with tempfile.TemporaryDirectory() as tmp:
        dyn = dynamic_client(api, Path(tmp) / "discovery.json")
        for obj in sel.nodes + crds:
            _create(dyn, obj, report)
        if crds:
            _wait_crds_established(dyn, [c["metadata"]["name"] for c in crds], timeout)
            dyn = dynamic_client(api, Path(tmp) / "discovery-after-crds.json")
        for obj in _missing_classes(sel.objects, dyn) + [o for o in sel.objects if o not in crds]:
            _create(dyn, obj, report)
        _create_owned(dyn, sel.owned, report)
    _fill_volumes(core_v1(api), snapshot_dir, report, timeout)
    return report
