"""The ports every phase talks to: a source of objects, a target, and the volume transfer port.

Notebooks never know whether objects come from a snapshot folder or a live cluster, or go to a
directory or a live cluster. Each backend implements these small protocols; a phase receives them
from :func:`k3smig_lib.backends.open_source` / ``open_target`` built from the parameters.

Volumes move through one port whatever the backends: a source opens a volume as a
:class:`SourceVolume` (its manifest read in place, and its bytes as a tar stream), a target opens it
as a :class:`TargetVolume` (its manifest re-read from what it holds, a writer that takes a tar stream
under an ownership plan, its capacity). A live cluster implements them with helper pods and
``pods/exec``; a snapshot folder with its archives; a directory target with local folders. The data
phase therefore has one code path for hashing, comparing, application checks and release.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, Protocol

from k3smig_lib.core.objects import Obj

if TYPE_CHECKING:
    from k3smig_lib.core.manifest import Manifest
    from k3smig_lib.core.ownership import OwnershipPlan

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


@dataclass(frozen=True)
class VolumeAccess:
    """Who reads or writes a volume, where, and why (a report row).

    Attributes:
        side: ``source`` or ``target``.
        where: ``pod ns/name on node n``, a local folder or an archive.
        user: ``uid:gid`` the reader/writer runs as (``0:0`` is root).
        why: why that user (root only when the ownership plan needs it).
        image: helper image, for helper pods.
    """

    side: str
    where: str
    user: str = ""
    why: str = ""
    image: str = ""


@dataclass(frozen=True)
class Capacity:
    """Room for a volume on the target: the claim's request and the free bytes where it lives."""

    requested: int | None
    free: int | None


@dataclass
class WriteReport:
    """What a target writer says it wrote (a check on the stream, never the proof: manifests are)."""

    bytes_received: int = 0
    bytes_extracted: int | None = None
    owners: str = ""
    detail: str = ""


class VolumeWriter(Protocol):
    """Takes a plain tar stream chunk by chunk; ``finish`` ends it and says what was written."""

    def write(self, data: bytes, /) -> object:
        """Pass the next chunk of the stream."""
        ...

    def finish(self) -> WriteReport:
        """End the stream (the end-of-archive marker was sent), wait for the writer, set owners.

        Raises:
            DataMismatchError: the writer did not take the whole stream (cut, short, failed).
        """
        ...


class SourceVolume(Protocol):
    """One source volume, open for reading.

    Attributes:
        volume: the claim.
        access: who reads it.
        subset: ``stream`` can send chosen entries (a live volume); archives always send everything.
        immutable: nothing can change it while it is read (an archive): no second hash needed.
    """

    volume: VolumeRef
    access: VolumeAccess
    subset: bool
    immutable: bool

    def manifest(self) -> Manifest:
        """The volume as it is now, hashed in place (nothing is transferred)."""
        ...

    def stream(self, paths: Sequence[str] | None = None, *, allow_changes: bool = False
               ) -> AbstractContextManager[IO[bytes]]:
        """A tar stream of the volume (``paths``: only those entries, when ``subset``).

        ``allow_changes`` accepts files that change while they are read (a first pass of a running
        application, which the final pass makes exact).
        """
        ...

    def fetch(self, paths: Sequence[str], dest: Path) -> list[str]:
        """Copy these regular files (small ones: databases, metadata) into the private folder ``dest``."""
        ...


class TargetVolume(Protocol):
    """One target volume, open for writing.

    Attributes:
        volume: the claim.
        access: who writes it.
        supports_delta: ``writer`` can delete entries and add a partial stream to what is there.
        owners_exact: numeric owners are set as planned (false: a folder written without root).
    """

    volume: VolumeRef
    access: VolumeAccess
    supports_delta: bool
    owners_exact: bool

    def manifest(self) -> Manifest | None:
        """What the target holds now, re-read from its disk; None when it holds nothing yet."""
        ...

    def capacity(self) -> Capacity:
        """The claim's requested size and the free bytes where the volume lives."""
        ...

    def state(self) -> str:
        """The data state k3smig recorded (``""`` never written, ``dirty``, ``proven:<hash>``)."""
        ...

    def mark(self, state: str) -> None:
        """Record the data state (``dirty`` before a write, ``proven:<root hash>`` after the proof)."""
        ...

    def writer(self, *, delete: Sequence[str], plan: OwnershipPlan, full: bool
               ) -> AbstractContextManager[VolumeWriter]:
        """A writer for one stream: ``delete`` goes first; ``full`` replaces the whole volume."""
        ...

    def fetch(self, paths: Sequence[str], dest: Path) -> list[str]:
        """Copy these regular files into the private folder ``dest`` (application checks)."""
        ...


class Source(Protocol):
    """Where objects and volume bytes come from. Read-only by contract (quiescing aside)."""

    def info(self) -> SourceInfo:
        """Describe the source for reports and preflight."""
        ...

    def list_objects(self) -> list[Obj]:
        """Every exported object, as ``kubectl get -o yaml`` would show it."""
        ...

    def list_volumes(self) -> list[VolumeRef]:
        """Every PVC whose data the data phase moves."""
        ...

    def volume(self, volume: VolumeRef) -> AbstractContextManager[SourceVolume]:
        """Open one volume for reading (a live source starts a helper pod for it)."""
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

    def volume(self, volume: VolumeRef, *, user: tuple[int, int] | None = None
               ) -> AbstractContextManager[TargetVolume]:
        """Open one volume for writing; ``user`` = (uid, gid) to write as, None = root."""
        ...
