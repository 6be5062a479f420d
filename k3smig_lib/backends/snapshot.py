"""Snapshot source: a folder of ``kubectl get -o yaml|json`` output, read as a cluster.

It accepts what people actually have on disk: single objects, multi-document YAML, ``kind: List``
exports, JSON, in any folder layout. Volume archives live under ``volumes/<namespace>/<claim>.tar[.gz]``
and an optional ``cluster.yaml`` describes the cluster (name, version, kube-system UID).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from k3smig_lib.backends.base import SourceInfo, VolumeAccess, VolumeRef
from k3smig_lib.core.manifest import Manifest, manifest_from_tar
from k3smig_lib.core.names import check_object, check_secret_data
from k3smig_lib.core.objects import Obj, get_path, ref, sha256_of
from k3smig_lib.core.transfer import extract_selected
from k3smig_lib.core.yamlio import MAX_FILE_BYTES, MAX_STREAM_BYTES, load_yaml, read_text
from k3smig_lib.core.yamlstream import stream_values
from k3smig_lib.errors import SourceError

_MANIFEST_SUFFIXES = {".yaml", ".yml", ".json"}
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def _flatten(doc: Any, origin: str) -> Iterator[tuple[Obj, str]]:
    if doc is None:
        return
    if not isinstance(doc, dict):
        raise SourceError(f"{origin}: expected a Kubernetes object, found {type(doc).__name__}",
                          fix="export with `kubectl get <kind> -o yaml`")
    kind = str(doc.get("kind", ""))
    if kind.endswith("List") and isinstance(doc.get("items"), list):
        for index, item in enumerate(doc.get("items") or [], 1):
            yield from _flatten(item, f"{origin}, item {index}")
        return
    if not kind or "metadata" not in doc:
        raise SourceError(f"{origin}: a document has no kind or metadata",
                          fix="remove non-Kubernetes documents from the export folder")
    yield doc, origin


def iter_manifest_file(path: Path, *, file_limit: int = MAX_FILE_BYTES) -> Iterator[tuple[Obj, str]]:
    """Every object of one export file with where it is, one at a time (a List's items as they are parsed).

    The file is streamed (:mod:`k3smig_lib.core.yamlstream`: libyaml when present, bounded like
    :mod:`k3smig_lib.core.yamlio`) and every object must carry names Kubernetes accepts
    (:mod:`k3smig_lib.core.names`), because names become file names in the target tree and the run folder.

    Raises:
        SourceError: the file is not valid UTF-8 YAML/JSON, holds something that is not an object, an
            invalid name or key (``InvalidNameError``), or a Secret whose data is not base64.
        LimitError: the file or one of its documents is over a size limit.
    """
    for value in stream_values(path, error=SourceError, file_limit=min(file_limit, MAX_STREAM_BYTES)):
        for obj, origin in _flatten(value.data, value.origin(path)):
            check_object(obj, origin)
            check_secret_data(obj, origin)
            yield obj, origin


def read_manifest_file(path: Path) -> list[Obj]:
    r"""Read every object of one export file (YAML multi-doc, JSON, ``kind: List``), names checked.

    Raises:
        SourceError: see :func:`iter_manifest_file`.
        LimitError: the file or one of its documents is over a size limit.

    Examples:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "cm.yaml"
        >>> _ = p.write_text("kind: ConfigMap\napiVersion: v1\nmetadata: {name: a}\n")
        >>> [o["metadata"]["name"] for o in read_manifest_file(p)]
        ['a']
    """
    return [obj for obj, _ in iter_manifest_file(path)]


def export_files(root: Path) -> list[Path]:
    """The manifest files of an export folder, in reading order (sorted paths; ``cluster.yaml`` and volumes out).

    Raises:
        SourceError: the folder does not exist or is a file.
    """
    if not root.exists():
        raise SourceError(f"export folder {root} does not exist",
                          fix="point source_snapshot at a folder of `kubectl get -o yaml` files")
    if not root.is_dir():
        raise SourceError(f"export folder {root} is a file, not a folder",
                          fix="give the folder that holds the export files (e.g. its parent folder)")
    return [path for path in sorted(p for p in root.rglob("*") if p.suffix in _MANIFEST_SUFFIXES and p.is_file())
            if not (path.name == "cluster.yaml" and path.parent == root
                    or "volumes" in path.relative_to(root).parts[:1])]


def iter_export(root: Path, *, file_limit: int = MAX_FILE_BYTES) -> Iterator[tuple[Obj, str]]:
    """Every object under ``root`` once, with its canonical sha256, in a stable order; memory holds one object.

    The same object in two files is read once when both copies are equal (overlapping ``kubectl get``
    selections) and refused when they differ: the later one would silently win. Only each object's
    identity and hash are remembered for that. ``file_limit`` is the largest file read (bytes).

    Raises:
        SourceError: the folder does not exist, is a file, holds no object, or holds two different
            copies of one object.
    """
    seen: dict[str, tuple[str, Path]] = {}
    for path in export_files(root):
        for obj, _ in iter_manifest_file(path, file_limit=file_limit):
            key, digest = ref(obj).identity, sha256_of(obj)
            if key in seen:
                first, where = seen[key]
                if first != digest:
                    raise SourceError(f"{ref(obj)} is in {where} and, different, in {path}",
                                      fix="keep one copy of the object in the export folder")
                continue
            seen[key] = (digest, path)
            yield obj, digest
    if not seen:
        raise SourceError(f"no Kubernetes objects found under {root}", fix="check the export folder")


def read_export(root: Path) -> list[Obj]:
    """Read every manifest under ``root`` in a stable order (sorted paths), ignoring ``cluster.yaml``.

    Raises:
        SourceError: see :func:`iter_export`.
    """
    return [obj for obj, _ in iter_export(root)]


class SnapshotSource:
    """A read-only source backed by an export folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._objects: list[Obj] | None = None

    def info(self) -> SourceInfo:
        """Describe the snapshot from ``cluster.yaml`` when present."""
        meta: dict[str, Any] = {}
        cluster_file = self.root / "cluster.yaml"
        if cluster_file.is_file():
            meta = load_yaml(read_text(cluster_file, error=SourceError), str(cluster_file), error=SourceError) or {}
            if not isinstance(meta, dict):
                raise SourceError(f"{cluster_file} must be a mapping (name, kubernetesVersion, kubeSystemUID)",
                                  fix="write one 'key: value' per line")
        return SourceInfo(
            kind="snapshot",
            location=str(self.root),
            cluster_name=str(meta.get("name", self.root.name)),
            kubernetes_version=str(meta.get("kubernetesVersion", "")),
            distribution=str(meta.get("distribution", "")),
            identity=str(meta.get("kubeSystemUID", "")),
        )

    def list_objects(self) -> list[Obj]:
        """All objects of the export (read once, then cached)."""
        if self._objects is None:
            self._objects = read_export(self.root)
        return self._objects

    def _archive(self, namespace: str, claim: str) -> Path | None:
        for suffix in _ARCHIVE_SUFFIXES:
            path = self.root / "volumes" / namespace / f"{claim}{suffix}"
            if path.is_file():
                return path
        return None

    def list_volumes(self) -> list[VolumeRef]:
        """PVCs of the export that have a volume archive."""
        vols: list[VolumeRef] = []
        for obj in self.list_objects():
            if obj.get("kind") != "PersistentVolumeClaim":
                continue
            ns, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
            if self._archive(ns, name) is None:
                continue
            vols.append(
                VolumeRef(
                    namespace=ns,
                    claim=name,
                    storage_class=str(get_path(obj, "spec.storageClassName", "") or ""),
                    size=str(get_path(obj, "spec.resources.requests.storage", "") or ""),
                    access_modes=tuple(get_path(obj, "spec.accessModes", []) or []),
                )
            )
        return sorted(vols, key=lambda v: v.id)

    def archive_path(self, volume: VolumeRef) -> Path:
        """Path of the archive of ``volume``.

        Raises:
            SourceError: no archive exists for that claim.
        """
        path = self._archive(volume.namespace, volume.claim)
        if path is None:
            raise SourceError("no volume archive in the snapshot", resource=f"pvc/{volume.claim}",
                              namespace=volume.namespace,
                              fix=f"add volumes/{volume.namespace}/{volume.claim}.tar.gz to the export")
        return path

    @contextmanager
    def open_volume(self, volume: VolumeRef) -> Iterator[BinaryIO]:
        """Open the volume archive as a binary stream."""
        with self.archive_path(volume).open("rb") as fh:
            yield fh

    @contextmanager
    def volume(self, volume: VolumeRef) -> Iterator[ArchiveVolume]:
        """The volume's archive behind the transfer port (nothing to start, nothing to stop)."""
        yield ArchiveVolume(volume, self.archive_path(volume))


class ArchiveVolume:
    """A source volume read from its archive: the manifest is hashed from the archive, never extracted.

    An archive cannot change while it is read (``immutable``) and is always sent whole (no ``subset``).
    """

    subset = False
    immutable = True

    def __init__(self, volume: VolumeRef, archive: Path) -> None:
        self.volume = volume
        self.archive = archive
        self.access = VolumeAccess(side="source", where=f"archive {archive.name}", user="(archive)",
                                   why="a snapshot archive is read as it is; owners are recorded in it")
        self._manifest: Manifest | None = None

    def manifest(self) -> Manifest:
        """The archive's manifest (hashed once, streaming)."""
        if self._manifest is None:
            self._manifest = manifest_from_tar(self.archive)
        return self._manifest

    @contextmanager
    def stream(self, paths: Sequence[str] | None = None, *, allow_changes: bool = False) -> Iterator[BinaryIO]:
        """The whole archive (``paths`` is ignored: archives are sent whole; an archive never changes)."""
        with self.archive.open("rb") as fh:
            yield fh

    def fetch(self, paths: Sequence[str], dest: Path) -> list[str]:
        """Copy the named regular files out of the archive into ``dest``."""
        with self.archive.open("rb") as fh:
            return extract_selected(fh, paths, dest, str(self.archive))
