"""Volume manifests: the proof that nothing was lost, added or changed (rule 13, §4.7).

A manifest has one :class:`Entry` per path — type, size, mode, numeric owner, link target and
sha256 — built either from a directory (:func:`manifest_from_dir`, ``lstat`` only, never following
links) or from a tar stream without writing anything (:func:`manifest_from_tar`). Both sides use the
same canonical form, so a source manifest made in the pod from the tar stream and a target manifest
made from disk compare field by field with :func:`compare`.

Choices that make the two sides comparable:

- Paths are relative POSIX strings, the volume root is ``"."`` and **is included** (its owner and mode
  decide whether a non-root app can write, case 22). Archives must therefore be made with
  ``tar -C <root> -cf - .`` so they carry the ``./`` member. Non-UTF-8 bytes survive as
  surrogate escapes (``os.fsdecode``); hashes use the raw bytes (``os.fsencode``), NUL-delimited.
- Hard links: within a group of paths sharing an inode, the path with the smallest bytes is ``f``,
  the others are ``h`` with ``link`` naming it. tar emits whichever it met first, so both builders
  re-canonicalise the group.
- Symlink modes are recorded as 0o777: Linux ignores them and tar writers disagree.
- ``mtime`` is informational; :func:`compare` counts drift but never fails on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Literal

from k3smig_lib.core.tarstream import TarStream, canonical_name, read_errors
from k3smig_lib.errors import DataMismatchError, SourceError

if TYPE_CHECKING:
    from k3smig_lib.core.ownership import OwnershipPlan

EntryType = Literal["f", "d", "l", "h", "o"]
#: Fields that must be equal for two entries to be the same (mtime is informational).
COMPARED_FIELDS = ("type", "size", "sha256", "link", "mode", "uid", "gid")
_CHUNK = 1 << 20
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One path of a volume.

    Attributes:
        path: relative POSIX path (``"."`` for the root); undecodable bytes as surrogate escapes.
        type: ``f`` file, ``d`` dir, ``l`` symlink, ``h`` hard link to ``link``, ``o`` other.
        size: content bytes for ``f``/``h``, else 0.
        mode: permission bits including setuid/setgid/sticky (symlinks: 0o777).
        uid: numeric owner.
        gid: numeric group.
        link: symlink target, hard-link group leader, or ``chr:MAJ:MIN``/``blk:…``/``fifo``/``sock``.
        sha256: hex digest of the content for ``f``/``h``, else ``""``.
        mtime: modification time in whole seconds (informational).
    """

    path: str
    type: EntryType
    size: int
    mode: int
    uid: int
    gid: int
    link: str
    sha256: str
    mtime: int

    def record(self) -> bytes:
        """Canonical NUL-delimited bytes of the compared fields (paths and links as raw bytes)."""
        fields = [
            os.fsencode(self.path), self.type.encode(), str(self.size).encode(), f"{self.mode:o}".encode(),
            str(self.uid).encode(), str(self.gid).encode(), os.fsencode(self.link), self.sha256.encode(),
        ]
        return b"\0".join(fields) + b"\0"


def _sort_key(path: str) -> bytes:
    return os.fsencode(path)


@dataclass
class Manifest:
    """All entries of one volume, keyed by path.

    Attributes:
        entries: path → entry.
        source: where the manifest came from (directory, archive, pod), for reports.
    """

    entries: dict[str, Entry]
    source: str

    @property
    def totals(self) -> dict[str, int]:
        """Counts by type (``f d l h o``), ``entries`` and ``bytes`` (content of ``f`` entries)."""
        out = {t: 0 for t in ("f", "d", "l", "h", "o")}
        for e in self.entries.values():
            out[e.type] += 1
        out["entries"] = len(self.entries)
        out["bytes"] = sum(e.size for e in self.entries.values() if e.type == "f")
        return out

    @property
    def root_hash(self) -> str:
        """sha256 over the sorted canonical records (mtime excluded): equal trees, equal hash."""
        h = hashlib.sha256()
        for path in sorted(self.entries, key=_sort_key):
            h.update(self.entries[path].record())
        return h.hexdigest()

    def rows(self) -> list[dict[str, Any]]:
        """One dict per entry, sorted by path, for ``pandas.DataFrame``; mode shown in octal."""
        rows = []
        for path in sorted(self.entries, key=_sort_key):
            row = asdict(self.entries[path])
            row["mode"] = f"{row['mode']:04o}"
            rows.append(row)
        return rows

    def to_json(self) -> str:
        """Serialise losslessly (undecodable name bytes survive as JSON surrogate escapes)."""
        entries = [asdict(self.entries[p]) for p in sorted(self.entries, key=_sort_key)]
        return json.dumps({"format": _FORMAT, "source": self.source, "entries": entries}, ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Load what :meth:`to_json` wrote.

        Raises:
            DataMismatchError: the text is not a manifest of a known format.
        """
        try:
            data = json.loads(text)
            if data.get("format") != _FORMAT:
                raise ValueError(f"unknown manifest format {data.get('format')!r}")
            entries = [Entry(**e) for e in data["entries"]]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise DataMismatchError(f"not a k3smig manifest: {e}", fix="regenerate the manifest") from e
        return cls(entries={e.path: e for e in entries}, source=str(data.get("source", "")))


def _hash_fd(fd: int) -> str:
    with os.fdopen(fd, "rb", closefd=False) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _hash_file(path: str, st: os.stat_result, shown: str) -> str:
    """Hash a regular file that must stay the same inode and size while it is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            digest = _hash_fd(fd)
            after = os.fstat(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise SourceError(f"cannot read {shown} for its manifest: {e}",
                          fix="run the manifest as root, on a quiesced volume") from e
    if (after.st_ino, after.st_dev, after.st_size, after.st_mtime_ns) != (
        st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns
    ):
        raise DataMismatchError(
            f"{shown} changed while it was being hashed (is the application still writing?)",
            fix="scale the workload to 0 replicas before copying (case 17), then re-run",
        )
    return digest


def _other_link(mode: int, rdev: int) -> str:
    if stat.S_ISCHR(mode):
        return f"chr:{os.major(rdev)}:{os.minor(rdev)}"
    if stat.S_ISBLK(mode):
        return f"blk:{os.major(rdev)}:{os.minor(rdev)}"
    return "fifo" if stat.S_ISFIFO(mode) else "sock"


def _dir_entry(rel: str, full: str, st: os.stat_result, hashed: dict[tuple[int, int], str]) -> Entry:
    """One entry from lstat; ``hashed`` caches digests per inode so hard links are read once."""
    mode, perm = st.st_mode, stat.S_IMODE(st.st_mode)
    kind: EntryType = "o"
    size, link, sha = 0, "", ""
    if stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        sha = hashed.get(key) or _hash_file(full, st, rel)
        if st.st_nlink > 1:
            hashed[key] = sha
        kind, size = "f", st.st_size
    elif stat.S_ISDIR(mode):
        kind = "d"
    elif stat.S_ISLNK(mode):
        kind, perm, link = "l", 0o777, os.readlink(full)
    else:
        link = _other_link(mode, st.st_rdev)
    return Entry(rel, kind, size, perm, st.st_uid, st.st_gid, link, sha, int(st.st_mtime))


def manifest_from_dir(root: Path) -> Manifest:
    """Build the manifest of a directory tree from ``lstat``, never following symlinks.

    Args:
        root: the volume root (must be a real directory, not a symlink).

    Returns:
        The manifest, root ``"."`` included.

    Raises:
        SourceError: ``root`` is missing, a symlink or not a directory.
        DataMismatchError: a file changed while it was hashed.

    Examples:
        >>> m = manifest_from_dir(Path("/srv/restore/vol"))  # doctest: +SKIP
        >>> m.totals["bytes"]  # doctest: +SKIP
        52428800
    """
    try:
        st = os.lstat(root)
    except FileNotFoundError as e:
        raise SourceError(f"cannot build a manifest of {root}: it does not exist") from e
    if not stat.S_ISDIR(st.st_mode):
        raise SourceError(f"cannot build a manifest of {root}: not a directory (a symlink?)")
    hashed: dict[tuple[int, int], str] = {}
    entries: dict[str, Entry] = {".": _dir_entry(".", str(root), st, hashed)}
    inodes: dict[tuple[int, int], list[str]] = {}
    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        full_dir, rel_dir = stack.pop()
        with os.scandir(full_dir) as it:
            for de in it:
                rel = f"{rel_dir}{de.name}"
                est = de.stat(follow_symlinks=False)
                entries[rel] = _dir_entry(rel, de.path, est, hashed)
                if stat.S_ISDIR(est.st_mode):
                    stack.append((de.path, rel + "/"))
                elif stat.S_ISREG(est.st_mode) and est.st_nlink > 1:
                    inodes.setdefault((est.st_dev, est.st_ino), []).append(rel)
    canonical_hardlinks(entries, [g for g in inodes.values() if len(g) > 1])
    return Manifest(entries=entries, source=str(root))


def canonical_hardlinks(entries: dict[str, Entry], groups: list[list[str]]) -> None:
    """Make the smallest path of each hard-link group the ``f`` and the others ``h`` to it."""
    for group in groups:
        data = next((entries[p] for p in group if entries[p].type == "f"), None)
        if data is None:
            continue
        leader = min(group, key=_sort_key)
        for p in group:
            e = entries[p]
            if p == leader:
                entries[p] = replace(e, type="f", link="", size=data.size, sha256=data.sha256)
            else:
                entries[p] = replace(e, type="h", link=leader, size=data.size, sha256=data.sha256)


def _hash_member(stream: TarStream, member: tarfile.TarInfo) -> tuple[str, int]:
    reader = stream.tar.extractfile(member)
    h = hashlib.sha256()
    size = 0
    if reader is not None:
        while chunk := reader.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    if size != member.size:
        raise DataMismatchError(f"archive member {member.name!r} has {size} bytes, its header {member.size}")
    return h.hexdigest(), size


def _tar_entries(stream: TarStream) -> tuple[dict[str, Entry], dict[str, str]]:
    entries: dict[str, Entry] = {}
    hardlinks: dict[str, str] = {}
    for m in stream:
        path = canonical_name(m.name)
        kind: EntryType = "o"
        size, mode, link, sha = 0, m.mode & 0o7777, "", ""
        if m.isreg():
            kind, (sha, size) = "f", _hash_member(stream, m)
        elif m.isdir():
            kind = "d"
        elif m.issym():
            kind, mode, link = "l", 0o777, m.linkname
        elif m.islnk():
            kind = "h"
            link = hardlinks[path] = canonical_name(m.linkname)
        else:
            dev = "chr" if m.ischr() else "blk" if m.isblk() else "fifo"
            link = f"{dev}:{m.devmajor}:{m.devminor}" if dev != "fifo" else dev
        entries[path] = Entry(path, kind, size, mode, m.uid, m.gid, link, sha, int(m.mtime))
    return entries, hardlinks


def manifest_from_tar(stream: BinaryIO | Path) -> Manifest:
    """Build the manifest of a tar stream by hashing members as they pass, writing nothing.

    Args:
        stream: an open binary stream (read once, front to back) or the path of an archive.

    Returns:
        The manifest, comparable with :func:`manifest_from_dir` of the same tree.

    Raises:
        DataMismatchError: the stream is truncated, lacks the end-of-archive marker, or is corrupt.

    Examples:
        >>> with open("vol.tar", "rb") as fh:  # doctest: +SKIP
        ...     manifest_from_tar(fh).totals["f"]
        42
    """
    if isinstance(stream, Path):
        with stream.open("rb") as fh:
            return _manifest_of(fh, str(stream))
    name = getattr(stream, "name", None)  # a pipe's "name" is its file descriptor number
    return _manifest_of(stream, name if isinstance(name, str) else "<stream>")


def _manifest_of(fh: IO[bytes], label: str) -> Manifest:
    with read_errors(label):
        entries, hardlinks = _tar_entries(TarStream(fh, label))
    groups: dict[str, list[str]] = {}
    for path, target in hardlinks.items():
        leader, seen = target, {path}
        while leader in hardlinks and leader not in seen:  # a link to a link: follow to the data member
            seen.add(leader)
            leader = hardlinks[leader]
        groups.setdefault(leader, [leader]).append(path)
    canonical_hardlinks(entries, [g for g in groups.values() if g[0] in entries])
    return Manifest(entries=entries, source=label)


@dataclass
class ManifestDiff:
    """Result of :func:`compare`.

    Attributes:
        equal: no path missing, none extra, none changed.
        missing: paths of the source absent from the target.
        extra: paths of the target absent from the source (a planted marker shows here).
        changed: ``(path, [field, …])`` for entries whose compared fields differ.
        entries: entries in the source manifest.
        mtime_drift: entries whose mtime differs (information only).
    """

    equal: bool
    missing: list[str]
    extra: list[str]
    changed: list[tuple[str, list[str]]]
    entries: int = 0
    mtime_drift: int = field(default=0)

    def summary(self, limit: int = 5) -> str:
        """One paragraph for a report: counts, then the first few paths of each kind."""
        if self.equal:
            drift = f"; mtime differs on {self.mtime_drift} (information only)" if self.mtime_drift else ""
            return f"manifests equal: {self.entries} entries{drift}"
        parts = [f"manifests differ: {len(self.missing)} missing, {len(self.extra)} extra, "
                 f"{len(self.changed)} changed (of {self.entries} source entries)"]
        for label, paths in (("missing", self.missing), ("extra", self.extra)):
            if paths:
                parts.append(f"{label}: " + ", ".join(_show(p) for p in paths[:limit]))
        if self.changed:
            shown = (f"{_show(p)} ({'/'.join(f)})" for p, f in self.changed[:limit])
            parts.append("changed: " + ", ".join(shown))
        return "; ".join(parts)

    def raise_for_mismatch(self, what: str = "volume") -> None:
        """Raise :class:`DataMismatchError` with :meth:`summary` unless the manifests are equal."""
        if not self.equal:
            raise DataMismatchError(f"{what}: {self.summary()}",
                                    fix="re-run the copy into an empty target; do not start the app on it")


def _show(path: str) -> str:
    return path if path.isprintable() else repr(path)


def compare(source: Manifest, target: Manifest, *, remap: OwnershipPlan | None = None) -> ManifestDiff:
    """Compare two manifests entry by entry.

    Args:
        source: the manifest of what was sent.
        target: the manifest of what arrived.
        remap: the declared ownership plan; target uid/gid are compared with ``remap.expected``.

    Returns:
        The differences; ``equal`` is true only when path sets and every compared field match.

    Examples:
        >>> compare(manifest_from_dir(Path("a")), manifest_from_dir(Path("a"))).equal  # doctest: +SKIP
        True
    """
    src, tgt = source.entries, target.entries
    missing = sorted((p for p in src if p not in tgt), key=_sort_key)
    extra = sorted((p for p in tgt if p not in src), key=_sort_key)
    changed: list[tuple[str, list[str]]] = []
    drift = 0
    for path in sorted((p for p in src if p in tgt), key=_sort_key):
        s, t = src[path], tgt[path]
        uid, gid = remap.expected(s.uid, s.gid) if remap is not None else (s.uid, s.gid)
        want = (s.type, s.size, s.sha256, s.link, s.mode, uid, gid)  # the order of COMPARED_FIELDS
        got = (t.type, t.size, t.sha256, t.link, t.mode, t.uid, t.gid)
        fields = [f for f, a, b in zip(COMPARED_FIELDS, want, got, strict=True) if a != b] if want != got else []
        if fields:
            changed.append((path, fields))
        drift += s.mtime != t.mtime
    equal = not (missing or extra or changed)
    return ManifestDiff(equal=equal, missing=missing, extra=extra, changed=changed,
                        entries=len(src), mtime_drift=drift)


__all__ = ["COMPARED_FIELDS", "Entry", "EntryType", "Manifest", "ManifestDiff", "canonical_hardlinks", "compare",
           "manifest_from_dir", "manifest_from_tar"]
