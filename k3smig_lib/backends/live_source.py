"""Live source: a running cluster read through its API, exported like ``kubectl get -o yaml``.

Read-only by contract: discovery, lists, ``/version`` and one namespace GET — nothing is written.
Every listable resource is exported, CRs included, except the kinds in :data:`SKIPPED_RESOURCES`
and :data:`SKIPPED_GROUPS`, which cannot be exported meaningfully:

- ``events`` (core and ``events.k8s.io``): history, not desired state; they expire after an hour and
  can outnumber every other object together.
- ``componentstatuses``: synthesised on each read from control-plane probes (deprecated); nothing
  is stored, so there is nothing to recreate.
- ``ipaddresses`` and ``servicecidrs`` (``networking.k8s.io``): the API server's allocation records
  for the source's Service IP range; the target allocates from its own range (K3s: 10.43.0.0/16).
- ``csistoragecapacities`` and ``resourceslices``: published per node/topology by the source's CSI
  and DRA drivers; the target's drivers publish their own.
- the ``metrics.k8s.io`` group: live usage figures computed by metrics-server, not stored objects.

Everything else — Nodes, Leases and other plumbing included — is exported as it is, so the export is
a faithful snapshot and the cleaning rules (W8…) decide, with a rule ID, what is dropped.
:func:`write_snapshot` turns the export into a snapshot folder that
:class:`~k3smig_lib.backends.snapshot.SnapshotSource` reads, so a later run can work offline.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from k3smig_lib.backends.base import SourceInfo, VolumeRef
from k3smig_lib.backends.directory import dump_yaml
from k3smig_lib.backends.live_volumes import PodVolume, open_pod_volume
from k3smig_lib.core.config import DEFAULT_HELPER_IMAGE
from k3smig_lib.core.objects import Obj, get_path, ref
from k3smig_lib.errors import SourceError
from k3smig_lib.k8s.client import ClusterRef, Kube
from k3smig_lib.k8s.discovery import ApiResource, Discovery, discover
from k3smig_lib.k8s.listing import PAGE_SIZE, ListStats, Page, PageEvent, list_order, stream_many
from k3smig_lib.k8s.preflight import kube_system_uid, server_version
from k3smig_lib.k8s.quiesce import Quiesced, quiesce_all
from k3smig_lib.k8s.retry import DEFAULT_POLICY, RetryPolicy
from k3smig_lib.k8s.volhelper import remaining, sweep

#: (group, plural) never exported, with the reason (see the module docstring).
SKIPPED_RESOURCES: dict[tuple[str, str], str] = {
    ("", "events"): "history, not desired state; expires after an hour",
    ("events.k8s.io", "events"): "history, not desired state; expires after an hour",
    ("", "componentstatuses"): "synthesised on read from control-plane probes; nothing is stored",
    ("networking.k8s.io", "ipaddresses"): "ClusterIP allocation records of the source's service range",
    ("networking.k8s.io", "servicecidrs"): "the source's Service IP range; the target has its own",
    ("storage.k8s.io", "csistoragecapacities"): "published by the source's CSI drivers",
    ("resource.k8s.io", "resourceslices"): "published by the source's DRA drivers",
}
#: API groups never exported, with the reason.
SKIPPED_GROUPS: dict[str, str] = {"metrics.k8s.io": "live usage figures from metrics-server, not stored objects"}

_PROVIDER_PREFIXES = {"scaleway://": "kapsule", "aws://": "eks", "gce://": "gke", "azure://": "aks",
                      "digitalocean://": "doks", "linode://": "lke", "k3s://": "k3s", "kind://": "kind"}
_DISTRO_LABELS = {"k8s.scaleway.com/kapsule": "kapsule", "eks.amazonaws.com/nodegroup": "eks",
                  "cloud.google.com/gke-nodepool": "gke", "kubernetes.azure.com/cluster": "aks"}
_VERSION_MARKS = {"+k3s": "k3s", "+rke2": "rke2", "-eks-": "eks", "-gke.": "gke"}


def guess_distribution(git_version: str, nodes: Sequence[Obj]) -> str:
    """Best guess of the distribution from the server version, then node labels and provider IDs.

    Examples:
        >>> guess_distribution("v1.33.4+k3s1", [])
        'k3s'
        >>> guess_distribution("v1.31.4", [{"metadata": {}, "spec": {"providerID": "scaleway://instance/x"}}])
        'kapsule'
        >>> guess_distribution("v1.31.4", [])
        'kubernetes'
    """
    for mark, name in _VERSION_MARKS.items():
        if mark in git_version:
            return name
    for node in nodes:
        labels = get_path(node, "metadata.labels", {}) or {}
        if labels.get("node.kubernetes.io/instance-type") == "k3s":
            return "k3s"
        for key, name in _DISTRO_LABELS.items():
            if key in labels:
                return name
        provider = str(get_path(node, "spec.providerID", "") or "")
        for prefix, name in _PROVIDER_PREFIXES.items():
            if provider.startswith(prefix):
                return name
    return "kubernetes"


def skip_reason(res: ApiResource) -> str:
    """Why ``res`` is not exported (``""``: it is exported)."""
    if not res.listable:
        return "not listable"
    return SKIPPED_GROUPS.get(res.group) or SKIPPED_RESOURCES.get((res.group, res.name), "")


class LiveSource:
    """A read-only source backed by a live cluster (explicit kubeconfig and context).

    Args:
        cluster: kubeconfig, context and side (``source``).
        workers: kinds listed at once.
        page_size: objects per list page.
        policy: retry policy of every call.
        on_page: told about every list page (progress lines, tests).
        run_id: the run that owns the helper pods (their label; sweeps keep it).
        helper_image: image of the volume helper pods.
        kube: a transport to use instead of building one from ``cluster`` (tests inject time).
    """

    def __init__(
        self,
        cluster: ClusterRef,
        *,
        workers: int = 4,
        page_size: int = PAGE_SIZE,
        policy: RetryPolicy = DEFAULT_POLICY,
        on_page: Callable[[PageEvent], None] | None = None,
        run_id: str = "",
        helper_image: str = DEFAULT_HELPER_IMAGE,
        kube: Kube | None = None,
    ) -> None:
        self.run_id, self.helper_image = run_id, helper_image
        self.cluster = cluster
        self.side = cluster.side or "source"
        self.kube = kube if kube is not None else Kube.of(replace(cluster, side=self.side), policy=policy)
        self.workers, self.page_size, self.policy, self.on_page = workers, page_size, policy, on_page
        self.discovery: Discovery | None = None
        self.stats: ListStats | None = None
        self._objects: list[Obj] | None = None

    def info(self) -> SourceInfo:
        """Version, identity (kube-system UID) and distribution guess of the live cluster."""
        version = server_version(self.kube).git_version
        nodes = self.kube.json("GET", "/api/v1/nodes", counter="lists")
        return SourceInfo(
            kind="cluster",
            location=self.kube.host,
            cluster_name=self.cluster.context,
            kubernetes_version=version,
            distribution=guess_distribution(version, nodes.get("items") or []),
            identity=kube_system_uid(self.kube),
        )

    def exported_resources(self) -> list[ApiResource]:
        """Every resource :meth:`list_objects` reads (discovery runs once).

        Raises:
            SourceError: a group's resource list could not be read (an export would be incomplete).
        """
        if self.discovery is None:
            self.discovery = discover(self.kube, workers=self.workers)
        failed = {gv: why for gv, why in self.discovery.failed.items() if gv.split("/")[0] not in SKIPPED_GROUPS}
        if failed:
            names = ", ".join(sorted(failed))
            raise SourceError(f"discovery could not read the API group version(s) {names}: "
                              f"{next(iter(failed.values()))}",
                              fix="repair or remove the broken APIService (`kubectl get apiservices`), then re-run")
        return [r for r in self.discovery.resources if not skip_reason(r)]

    def iter_pages(self) -> Iterator[Page]:
        """Every list page of every exported kind as it arrives, each object's name checked.

        Kinds are listed concurrently (``workers``), so pages of different kinds interleave; at most a
        few pages wait in memory (:func:`~k3smig_lib.k8s.listing.stream_many`). A page whose
        ``attempt`` is higher than the earlier pages of its resource voids them (410 Gone, relisted).
        :attr:`stats` is set once the last page was handed out.

        Raises:
            SourceError: a list failed for good (403 names the missing permission and its fix), or an
                object's name could never be served by an API server.
        """
        from k3smig_lib.core.names import check_object

        where = f"live source (context {self.cluster.context})"
        stats = ListStats()
        for page in stream_many(self.kube, self.exported_resources(), workers=self.workers,
                                page_size=self.page_size, on_page=self.on_page, stats=stats):
            for obj in page.items:  # names become file names: refuse what an API server never serves
                check_object(obj, where)
            yield page
        self.stats = stats

    def list_objects(self) -> list[Obj]:
        """Every exported object (read once, then cached), like ``kubectl get -o yaml``.

        Built on :meth:`iter_pages`: kinds in discovery order, each sorted by namespace and name.

        Raises:
            SourceError: a list failed for good; 403 names the missing permission and its fix.
        """
        if self._objects is None:
            got: dict[int, tuple[int, list[Obj]]] = {}
            for page in self.iter_pages():
                attempt, items = got.get(id(page.resource), (page.attempt, []))
                if page.attempt != attempt:  # the list restarted: its earlier pages are void
                    items = []
                items.extend(page.items)
                got[id(page.resource)] = (page.attempt, items)
            assert self.stats is not None
            for result in self.stats.results:
                result.items = sorted(got.get(id(result.resource), (0, []))[1], key=list_order)
            self._objects = self.stats.items
        return self._objects

    def list_volumes(self) -> list[VolumeRef]:
        """Bound PersistentVolumeClaims: the volumes whose bytes the data phase moves."""
        vols = [
            VolumeRef(
                namespace=str(o["metadata"].get("namespace", "")),
                claim=str(o["metadata"]["name"]),
                storage_class=str(get_path(o, "spec.storageClassName", "") or ""),
                size=str(get_path(o, "status.capacity.storage", "") or get_path(o, "spec.resources.requests.storage",
                                                                                   "") or ""),
                access_modes=tuple(get_path(o, "spec.accessModes", []) or []),
            )
            for o in self.list_objects()
            if o.get("kind") == "PersistentVolumeClaim" and get_path(o, "status.phase") == "Bound"
        ]
        return sorted(vols, key=lambda v: v.id)

    # --- volumes (the transfer port) and quiescing -----------------------------------------------

    def volume(self, volume: VolumeRef) -> AbstractContextManager[PodVolume]:
        """A helper pod on the claim (mounted read-only, as root so every file can be read), deleted after."""
        return open_pod_volume(self.kube, volume, "source", run_id=self.run_id, image=self.helper_image, user=None,
                               why="root on a read-only mount: reads every file whatever its owner and mode")

    def quiesce(self, workloads: Sequence[tuple[str, str, str]]) -> list[Quiesced]:
        """Scale ``(kind, namespace, name)`` workloads to 0, replicas recorded on them; wait for their pods."""
        return quiesce_all(self.kube, workloads)

    def sweep_helpers(self, *, keep_run: str = "") -> list[str]:
        """Delete helper pods of other (crashed) runs on the source."""
        return sweep(self.kube, keep_run=keep_run)

    def helpers_left(self) -> list[str]:
        """Helper pods still on the source."""
        return remaining(self.kube)


def _group_files(objects: Sequence[Obj]) -> dict[Path, list[Obj]]:
    files: dict[Path, list[Obj]] = {}
    for obj in objects:
        r = ref(obj)
        files.setdefault(Path(r.namespace or "_cluster") / f"{r.kind}.yaml", []).append(obj)
    for items in files.values():
        items.sort(key=lambda o: (str(o.get("apiVersion", "")), ref(o).name))
    return files


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _cluster_yaml(info: SourceInfo, nodes: Iterable[str], exported_at: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": info.cluster_name, "kubernetesVersion": info.kubernetes_version,
                           "distribution": info.distribution, "kubeSystemUID": info.identity,
                           "nodes": sorted(nodes)}
    if exported_at:
        doc["exportedAt"] = exported_at
    return doc


class SnapshotWriter:
    """A snapshot folder written one ``manifests/<ns>/<Kind>.yaml`` file at a time, replaced as a whole at the end.

    Files go to a staging folder that :meth:`finish` renames onto ``manifests/`` (so objects deleted since
    an earlier export do not linger, and an interrupted export leaves the previous one in place).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.staging = folder / ".manifests.partial"
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(mode=0o700, parents=True)
        self.written: list[Path] = []
        self.nodes: list[str] = []

    def add(self, rel: Path, items: list[Obj]) -> None:
        """Write one file: ``items`` as a ``kind: List``, in the order given."""
        _write_private(self.staging / rel, dump_yaml({"apiVersion": "v1", "kind": "List", "items": items}))
        self.written.append(Path("manifests") / rel)
        self.nodes += [ref(o).name for o in items if o.get("kind") == "Node"]

    def finish(self, info: SourceInfo | None, exported_at: str | None) -> list[Path]:
        """Put ``manifests/`` in place, write ``cluster.yaml``; return the paths written, sorted."""
        shutil.rmtree(self.folder / "manifests", ignore_errors=True)
        self.staging.rename(self.folder / "manifests")
        written = list(self.written)
        if info is not None:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if exported_at is None else exported_at
            _write_private(self.folder / "cluster.yaml",
                           yaml.safe_dump(_cluster_yaml(info, self.nodes, stamp), sort_keys=True))
            written.append(Path("cluster.yaml"))
        return sorted(written)

    def abandon(self) -> None:
        """Remove the staging folder of an export that did not finish."""
        shutil.rmtree(self.staging, ignore_errors=True)


def write_snapshot(
    objects: Sequence[Obj], folder: Path, info: SourceInfo | None = None, *, exported_at: str | None = None
) -> list[Path]:
    """Write an export as a snapshot folder: ``manifests/<ns>/<Kind>.yaml`` (``kind: List``) + ``cluster.yaml``.

    Cluster-scoped objects go to ``manifests/_cluster``. Secrets are included with their values:
    this folder is the operator's own export and holds secret material, so files are created 0600
    and folders 0700 — keep it out of the run folder, git and shared storage. ``manifests/`` is
    replaced as a whole, so objects deleted since an earlier export do not linger.

    Args:
        objects: the export (:meth:`LiveSource.list_objects`).
        folder: snapshot folder (created).
        info: written to ``cluster.yaml`` (name, version, distribution, kube-system UID, nodes).
        exported_at: timestamp for ``cluster.yaml``; None = now (UTC), ``""`` = omit it.

    Returns:
        Paths written, relative to ``folder``, sorted.

    Examples:
        >>> write_snapshot(src.list_objects(), Path("exports/prod"), src.info())  # doctest: +SKIP
        [PosixPath('cluster.yaml'), PosixPath('manifests/_cluster/Namespace.yaml'), ...]
    """
    writer = SnapshotWriter(folder)
    try:
        for rel, items in sorted(_group_files(objects).items()):
            writer.add(rel, items)
    except BaseException:
        writer.abandon()
        raise
    return writer.finish(info, exported_at)
