"""The three ports every phase talks to: a source of objects, a target, and volumes.

Notebooks never know whether objects come from a snapshot folder or a live cluster, or go to a
directory or a live cluster. Each backend implements these small protocols; a phase receives them
from :func:`k3smig_lib.backends.open_source` / ``open_target`` built from the parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from k3smig_lib.core.objects import Obj

ApplyAction = Literal["create", "update", "unchanged", "conflict", "skip"]


@dataclass(frozen=True)
class VolumeRef:
    """A PersistentVolumeClaim whose bytes move in the data phase."""

    namespace: str
    claim: str
    storage_class: str = ""
    size: str = ""
    access_modes: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """``namespace/claim``."""
        return f"{self.namespace}/{self.claim}"


@dataclass(frozen=True)
class SourceInfo:
    """What a report says about where objects came from."""

    kind: str
    location: str
    cluster_name: str = ""
    kubernetes_version: str = ""
    distribution: str = ""
    identity: str = ""  # kube-system namespace UID: tells two clusters apart


@dataclass
class ApplyItem:
    """One object's fate on the target, in apply order."""

    ref_id: str
    action: ApplyAction
    reason: str = ""
    sha256: str = ""
    path: str = ""


@dataclass
class ApplyResult:
    """What a target did (or, in dry run, would do) with a set of objects."""

    items: list[ApplyItem] = field(default_factory=list)
    dry_run: bool = True

    def count(self, action: ApplyAction) -> int:
        """Number of items with ``action``."""
        return sum(1 for i in self.items if i.action == action)

    @property
    def changes(self) -> int:
        """Creates plus updates: zero on an idempotent re-run."""
        return self.count("create") + self.count("update")


class Source(Protocol):
    """Where objects and volume bytes come from. Read-only by contract."""

    def info(self) -> SourceInfo:
        """Describe the source for reports and preflight."""
        ...

    def list_objects(self) -> list[Obj]:
        """Every exported object, as ``kubectl get -o yaml`` would show it."""
        ...

    def list_volumes(self) -> list[VolumeRef]:
        """Every PVC whose data the data phase moves."""
        ...

    def open_volume(self, volume: VolumeRef) -> AbstractContextManager[BinaryIO]:
        """A readable tar stream of the volume's root (members relative, numeric owners)."""
        ...


class Target(Protocol):
    """Where cleaned objects and volume bytes go."""

    def info(self) -> SourceInfo:
        """Describe the target for reports and preflight."""
        ...

    def list_objects(self) -> list[Obj]:
        """Objects present on the target (what validation compares against)."""
        ...

    def apply(self, objects: Sequence[Obj], *, dry_run: bool, existing: str = "fail") -> ApplyResult:
        """Write ``objects`` (already cleaned and ordered); in dry run, only plan."""
        ...

    def volume_root(self, volume: VolumeRef) -> Path:
        """Folder that holds the target volume's files (directory target; live uses a helper pod)."""
        ...
