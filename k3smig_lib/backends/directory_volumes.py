"""Volumes of the directory target: local folders behind the transfer port.

A volume lands in ``<target>/volumes/<namespace>/<claim>``. A write never touches the current
folder until the new one is proven extractable: the stream is spooled into a fresh staging folder
beside it (``.k3smig-staging-*``, same filesystem), extracted there by the fail-closed extractor
(:func:`~k3smig_lib.core.tarsafe.safe_extract`), owners set by the ownership plan, and only then
swapped in by two renames. A crash leaves the old folder or the new one, plus a staging folder the
next write removes; never a half-written volume. The data state k3smig records (``dirty``,
``proven:<hash>``) lives in ``<target>/.k3smig/volumes/``, outside the volume, so it never shows in
a manifest.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from k3smig_lib.backends.base import Capacity, VolumeAccess, VolumeRef, WriteReport
from k3smig_lib.core.fsafe import leftover_pid, pid_alive, remove_leftovers
from k3smig_lib.core.manifest import Manifest, manifest_from_dir
from k3smig_lib.core.ownership import OwnershipPlan, apply_ownership
from k3smig_lib.core.quantity import parse_quantity
from k3smig_lib.core.tarsafe import safe_extract, volume_limit_bytes
from k3smig_lib.errors import TargetError

STAGING_PREFIX = ".k3smig-staging-"
#: What the directory target holds outside volume contents: where a killed run's leftovers can be.
_OWN_FOLDERS = ("manifests", ".k3smig")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _checked(kind: str, name: str) -> str:
    """A namespace or claim name that can safely become one path component (DNS-1123)."""
    if not _NAME.match(name) or ".." in name:
        raise TargetError(f"{kind} name {name!r} is not a valid Kubernetes name and cannot become a folder name",
                          fix="fix the export: Kubernetes names are lower-case DNS-1123 names")
    return name


def volume_folder(root: Path, volume: VolumeRef) -> Path:
    """``<root>/volumes/<namespace>/<claim>``, with both names checked before they become path parts."""
    return root / "volumes" / _checked("namespace", volume.namespace) / _checked("claim", volume.claim)


def _state_file(root: Path, volume: VolumeRef) -> Path:
    return root / ".k3smig" / "volumes" / f"{_checked('namespace', volume.namespace)}__" \
        f"{_checked('claim', volume.claim)}.state"


def remove_stale_staging(parent: Path) -> list[str]:
    """Delete staging folders of writers that are gone (a killed run); a live writer's is kept."""
    removed = []
    if parent.is_dir():
        for child in parent.iterdir():
            pid = leftover_pid(child.name)
            if STAGING_PREFIX in child.name and child.is_dir() and not child.is_symlink() and \
                    (pid is None or not pid_alive(pid)):
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child.name)
    return removed


def leftovers_of_killed_runs(root: Path) -> list[Path]:
    """Temp files and staging folders a killed run left in a directory target — never inside a volume.

    Volume contents are user data: a user's file that happens to look like a k3smig temporary name is
    not touched. Only the tree's own folders are walked, and under ``volumes/`` only the level where
    staging folders live (``volumes/<namespace>/``).
    """
    removed: list[Path] = []
    for name in _OWN_FOLDERS:
        removed += remove_leftovers(root / name)
    volumes = root / "volumes"
    if volumes.is_dir() and not volumes.is_symlink():
        for ns in sorted(p for p in volumes.iterdir() if p.is_dir() and not p.is_symlink()):
            removed += [ns / n for n in remove_stale_staging(ns)]
    return removed


class _SpoolWriter:
    """Spools the stream into a private file, then extracts and swaps it in on ``finish``."""

    def __init__(self, folder: Path, staging: Path, plan: OwnershipPlan, max_bytes: int | None) -> None:
        self.folder, self.staging, self.plan, self.max_bytes = folder, staging, plan, max_bytes
        self.spool_path = staging / "stream.tar"
        fd = os.open(self.spool_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.spool: IO[bytes] = os.fdopen(fd, "wb")
        self.count = 0

    def write(self, data: bytes, /) -> object:
        self.spool.write(data)
        self.count += len(data)
        return len(data)

    def finish(self) -> WriteReport:
        self.spool.flush()
        os.fsync(self.spool.fileno())
        self.spool.close()
        fresh = self.staging / "volume"
        report = safe_extract(self.spool_path, fresh, max_bytes=self.max_bytes)
        self.spool_path.unlink()
        root = os.geteuid() == 0
        chowned = apply_ownership(fresh, self.plan) if self.plan.action == "chown" and root else 0
        old = self.staging / "previous"
        if self.folder.exists() or self.folder.is_symlink():
            os.rename(self.folder, old)
        os.rename(fresh, self.folder)
        owners = "applied" if report.owners_applied else "not applied (not root)"
        return WriteReport(bytes_received=self.count, bytes_extracted=report.bytes,
                           owners=owners + (f", {chowned} chowned" if chowned else ""),
                           detail=f"{report.members} members extracted into a fresh folder, then swapped in")


class FolderVolume:
    """A target volume in a local folder (the GitOps directory target).

    Every write replaces the whole folder (``supports_delta`` is false): the stream is extracted
    fresh and swapped in, so there is no partial state to reason about.
    """

    supports_delta = False

    def __init__(self, root: Path, volume: VolumeRef, *, margin: float = 0.1) -> None:
        self.root = root
        self.max_bytes = volume_limit_bytes(volume.size, margin)
        self.volume = volume
        self.folder = volume_folder(root, volume)
        self.owners_exact = os.geteuid() == 0
        user = "0:0 (root)" if self.owners_exact else f"{os.geteuid()}:{os.getegid()}"
        why = "root sets every numeric owner as planned" if self.owners_exact else \
            "not root: owners cannot be set, so they are left out of the comparison"
        where = f"folder volumes/{volume.namespace}/{volume.claim} of the target"
        self.access = VolumeAccess(side="target", where=where, user=user, why=why)

    def manifest(self) -> Manifest | None:
        """The folder re-read from disk (``lstat``, links never followed); None when it does not exist."""
        if not self.folder.exists() and not self.folder.is_symlink():
            return None
        return manifest_from_dir(self.folder)

    def capacity(self) -> Capacity:
        """The source claim's size (a folder has no quota) and the free bytes of its filesystem."""
        probe = self.folder
        while not probe.exists():
            probe = probe.parent
        requested = int(parse_quantity(self.volume.size)) if self.volume.size else None
        return Capacity(requested=requested, free=shutil.disk_usage(probe).free)

    def state(self) -> str:
        """The recorded data state (``""`` when never written)."""
        path = _state_file(self.root, self.volume)
        return path.read_text(encoding="utf-8").strip() if path.is_file() else ""

    def mark(self, state: str) -> None:
        """Record the data state atomically (temp file, fsync, rename)."""
        path = _state_file(self.root, self.volume)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(state + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    @contextmanager
    def writer(self, *, delete: Sequence[str], plan: OwnershipPlan, full: bool) -> Iterator[_SpoolWriter]:
        """A writer that replaces the whole folder once the stream extracted cleanly (``delete`` is moot)."""
        parent = self.folder.parent
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(parent)
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=parent))
        try:
            yield _SpoolWriter(self.folder, staging, plan, self.max_bytes)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def fetch(self, paths: Sequence[str], dest: Path) -> list[str]:
        """Copy the named regular files (never through a symlink) into ``dest``."""
        found = []
        base = os.path.realpath(self.folder)
        for rel in paths:
            src = os.path.join(self.folder, rel)
            real = os.path.realpath(src)
            if not real.startswith(base + os.sep):
                continue
            try:
                st = os.lstat(src)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode) or real != os.path.abspath(src):
                continue
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(src, out, follow_symlinks=False)
            found.append(rel)
        return sorted(found)


__all__ = ["STAGING_PREFIX", "FolderVolume", "leftovers_of_killed_runs", "remove_stale_staging", "volume_folder"]
