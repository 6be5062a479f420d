"""Phase 70's engine, the same for every pair of backends: plan a pass, copy it, prove it.

A *pass* reads both manifests in place, plans the delta (:func:`~k3smig_lib.core.transfer.plan_delta`),
marks the target ``dirty``, relays the tar stream from source to target while hashing it, and checks
that what passed the wire is what the source holds. The *proof* re-reads the target from its own disk
and compares it entry by entry with the source manifest of the final pass; for a source that can
change (a live volume) the source is hashed again afterwards, so a file written during the final pass
is found and the volume is never proven (case 17). Only then is the target marked ``proven``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from k3smig_lib.backends.base import SourceVolume, TargetVolume, WriteReport
from k3smig_lib.core.manifest import Manifest, ManifestDiff, compare
from k3smig_lib.core.ownership import OwnershipPlan
from k3smig_lib.core.transfer import Delta, changed_between, plan_delta, relay, stream_limit
from k3smig_lib.core.volscripts import describe
from k3smig_lib.errors import DataMismatchError

DIRTY = "dirty"
PROVEN = "proven"


@dataclass
class PassRecord:
    """One pass over one volume, for the report."""

    volume: str
    name: str
    delta: Delta
    bytes_sent: int = 0
    stream_entries: int = 0
    write: WriteReport | None = None
    note: str = ""

    def row(self) -> dict[str, Any]:
        """A report row."""
        return {"volume": self.volume, "pass": self.name, "action": self.delta.describe(),
                "bytes sent": self.bytes_sent, "entries in stream": self.stream_entries,
                "entries deleted first": len(self.delta.delete),
                "writer": (self.write.detail + "; owners " + self.write.owners) if self.write else "",
                "note": self.note}


def full_delta(source: Manifest, target: Manifest | None) -> Delta:
    """Send everything (sources that cannot send a subset; targets that replace the whole volume)."""
    delta = plan_delta(source, None)
    if target is not None:
        delta.delete = sorted(p for p in target.entries if p != "." and "/" not in p)
    return delta


def plan_pass(src: SourceVolume, dst: TargetVolume, source: Manifest, target: Manifest | None,
              plan: OwnershipPlan) -> Delta:
    """The delta of one pass, bounded by what each side can do."""
    delta = plan_delta(source, target, remap=plan)
    if delta.nothing or delta.full:
        return delta
    if not dst.supports_delta or not src.subset:
        return full_delta(source, target)
    return delta


def copy_pass(src: SourceVolume, dst: TargetVolume, plan: OwnershipPlan, *, name: str, source: Manifest,
              allow_changes: bool = False) -> PassRecord:
    """Make the target equal to ``source`` (the source manifest read just before): one stream at most.

    Raises:
        DataMismatchError: the stream was cut, the writer failed, or (``allow_changes`` false) what
            passed differs from the source manifest; the target stays marked ``dirty``.
    """
    vid = src.volume.id
    delta = plan_pass(src, dst, source, dst.manifest(), plan)
    record = PassRecord(vid, name, delta)
    if delta.nothing:
        return record
    dst.mark(DIRTY)
    with (src.stream(delta.send, allow_changes=allow_changes) as stream,
          dst.writer(delete=delta.delete, plan=plan, full=delta.full) as writer):
        entries = len(source.entries) if delta.send is None else len(delta.send)
        sent, count = relay(stream, writer.write, f"{vid} ({name})",
                            max_bytes=stream_limit(delta.send_bytes, entries))
        record.write = writer.finish()
    record.bytes_sent, record.stream_entries = count, len(sent.entries)
    wanted = set(source.entries) if delta.send is None else set(delta.send)
    diff = compare(_subset(source, wanted), sent)
    if not diff.equal:
        if not allow_changes:
            raise DataMismatchError(f"{vid}: what was sent differs from the source manifest read just before "
                                    f"({diff.summary()})", fix="quiesce the application (scale it to 0), then re-run")
        record.note = f"the application changed {len(diff.changed) + len(diff.missing) + len(diff.extra)} entries " \
                      "during this pass; the final pass sends them again"
    return record


def _subset(manifest: Manifest, paths: set[str]) -> Manifest:
    return Manifest({p: e for p, e in manifest.entries.items() if p in paths}, manifest.source)


@dataclass
class Proof:
    """The comparison that proves (or not) one volume."""

    volume: str
    diff: ManifestDiff
    target: Manifest
    changed_on_source: list[str] = field(default_factory=list)
    owners_ignored: bool = False

    @property
    def proven(self) -> bool:
        """Target equal to the source, and the source unchanged during the copy."""
        return self.diff.equal and not self.changed_on_source

    def problem(self) -> str:
        """Why the volume is not proven ("" when it is)."""
        if self.changed_on_source:
            return (f"{len(self.changed_on_source)} source entries changed during the final pass "
                    f"({describe(self.changed_on_source)}): the copy is not consistent")
        return "" if self.diff.equal else self.diff.summary()


def compare_volume(source: Manifest, target: Manifest, plan: OwnershipPlan | None, *, owners_exact: bool
                   ) -> tuple[ManifestDiff, bool]:
    """Compare a volume's two manifests; a target that cannot set owners is compared without uid/gid.

    Returns:
        The differences, and whether owner differences were left out.
    """
    diff = compare(source, target, remap=plan)
    if owners_exact:
        return diff, False
    changed = [(p, f) for p, f in diff.changed if set(f) - {"uid", "gid"}]
    ignored = len(changed) != len(diff.changed)
    return ManifestDiff(equal=not (diff.missing or diff.extra or changed), missing=diff.missing, extra=diff.extra,
                        changed=changed, entries=diff.entries, mtime_drift=diff.mtime_drift), ignored


def prove(src: SourceVolume, dst: TargetVolume, plan: OwnershipPlan, source: Manifest) -> Proof:
    """Re-read the target from its disk and compare it with ``source``; re-hash a live source.

    A target that cannot set owners (a folder written without root) is compared without uid/gid,
    and the proof says so.
    """
    target = dst.manifest() or Manifest({}, "empty target")
    diff, ignored = compare_volume(source, target, plan, owners_exact=dst.owners_exact)
    proof = Proof(src.volume.id, diff, target, owners_ignored=ignored)
    if not src.immutable:
        proof.changed_on_source = changed_between(source, src.manifest())
    if proof.proven:
        dst.mark(f"{PROVEN}:{source.root_hash[:16]}")
    return proof


__all__ = ["DIRTY", "PROVEN", "PassRecord", "Proof", "compare_volume", "copy_pass", "full_delta", "plan_pass",
           "prove"]
