"""Moving a volume as a tar stream: what to send (the delta) and the relay that hashes what passes.

:func:`plan_delta` compares what the source holds now with what the target holds now — both
manifests read in place, never trusted from an earlier pass — and answers with the entries to
send and the ones to delete first. One rule serves the first copy (the target is empty: send
everything), the second pass after quiesce (send what changed since), a resumed run (send what a cut
stream left unfinished) and a re-run (nothing differs: send 0 bytes). Hard-link groups travel whole,
so links survive; an entry whose type changed is deleted before it is sent again.

:func:`relay` forwards a tar stream from a source to a sink chunk by chunk while the manifest of
exactly those bytes is built on the way (decompressing first, so the sink always gets plain tar);
nothing is written on the operator's machine and memory stays flat (rule 2 of the reliability notes).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import queue
import shutil
import tarfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from k3smig_lib.core.manifest import Manifest, compare, manifest_from_tar
from k3smig_lib.core.tarstream import canonical_name, read_errors
from k3smig_lib.errors import LimitError

if TYPE_CHECKING:
    from k3smig_lib.core.ownership import OwnershipPlan

_CHUNK = 1 << 20
_QUEUED = 16  # chunks between the forwarder and the hasher (16 MiB at most)


@dataclass
class Delta:
    """What a transfer must do to make the target equal to the source.

    Attributes:
        send: entries to send, parents first; ``None`` means the whole volume (``tar -c .``).
        delete: target entries to delete before the stream is extracted (top-most paths only).
        send_bytes: content bytes of the regular files to send.
        missing: source entries absent from the target.
        changed: entries present on both sides that differ.
        extra: target entries absent from the source.
    """

    send: list[str] | None
    delete: list[str] = field(default_factory=list)
    send_bytes: int = 0
    missing: int = 0
    changed: int = 0
    extra: int = 0

    @property
    def nothing(self) -> bool:
        """The target already equals the source: no byte to send, nothing to delete."""
        return self.send == [] and not self.delete

    @property
    def full(self) -> bool:
        """The whole volume is sent."""
        return self.send is None

    def describe(self) -> str:
        """One line for a report."""
        if self.nothing:
            return "target already equal: nothing sent"
        if self.full:
            return f"whole volume ({self.send_bytes} bytes)"
        assert self.send is not None
        return (f"{len(self.send)} entries ({self.send_bytes} bytes): {self.missing} missing, {self.changed} changed; "
                f"{len(self.delete)} deleted first ({self.extra} extra)")


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _top_most(paths: set[str]) -> list[str]:
    """Paths none of whose ancestors is also in the set (deleting a folder deletes its contents)."""
    return sorted((p for p in paths if not any(a in paths for a in _parents(p))), key=lambda p: p.encode(
        "utf-8", "surrogateescape"))


def _hardlink_groups(manifest: Manifest) -> dict[str, set[str]]:
    """Path → every path of its hard-link group (leader ``f`` plus its ``h`` entries)."""
    groups: dict[str, set[str]] = {}
    for e in manifest.entries.values():
        if e.type == "h":
            groups.setdefault(e.link, {e.link}).add(e.path)
    out: dict[str, set[str]] = {}
    for members in groups.values():
        for p in members:
            out[p] = members
    return out


def plan_delta(source: Manifest, target: Manifest | None, *, remap: OwnershipPlan | None = None) -> Delta:
    """The entries to send and to delete so that the target becomes equal to the source.

    Args:
        source: the source manifest now (read in place).
        target: the target manifest now, ``None`` when the target holds nothing yet.
        remap: the ownership plan; target owners are compared with what it expects.

    Returns:
        The delta; ``send=None`` when the target is empty (send everything).

    Examples:
        >>> from k3smig_lib.core.manifest import Entry, Manifest
        >>> root = Entry(".", "d", 0, 0o755, 0, 0, "", "", 0)
        >>> f = Entry("a", "f", 1, 0o644, 0, 0, "", "ab", 0)
        >>> plan_delta(Manifest({".": root, "a": f}, "s"), Manifest({".": root}, "t")).full
        True
        >>> plan_delta(Manifest({".": root, "a": f}, "s"), Manifest({".": root, "a": f}, "t")).nothing
        True
    """
    total = sum(e.size for e in source.entries.values() if e.type == "f")
    if target is None or set(target.entries) <= {"."}:
        return Delta(send=None, send_bytes=total, missing=len(source.entries) - 1)
    diff = compare(source, target, remap=remap)
    send: set[str] = set(diff.missing)
    delete: set[str] = set(diff.extra)
    for path, _fields in diff.changed:
        send.add(path)
        s, t = source.entries[path], target.entries[path]
        if s.type != "d" or t.type != "d":
            delete.add(path)  # replaced, not rewritten in place (a hard link would keep the old data)
    groups = _hardlink_groups(source)
    for path in list(send):
        for member in groups.get(path, ()):
            send.add(member)
            if member in target.entries:
                delete.add(member)
    delete.discard(".")
    ordered = sorted(send, key=lambda p: (p != ".", p.encode("utf-8", "surrogateescape")))
    size = sum(source.entries[p].size for p in send if source.entries[p].type == "f")
    return Delta(send=ordered, delete=_top_most(delete), send_bytes=size, missing=len(diff.missing),
                 changed=len(diff.changed), extra=len(diff.extra))


class _Tee:
    """A reader that hands every byte it reads to a sink too, counts them, and stops at a byte limit."""

    def __init__(self, src: IO[bytes], sink: Callable[[bytes], object], limit: int | None = None) -> None:
        self.src, self.sink, self.count, self.limit = src, sink, 0, limit
        self.name = "<relay>"

    def read(self, size: int = -1, /) -> bytes:
        data = self.src.read(size if size and size > 0 else _CHUNK)
        if data:
            if self.limit is not None and self.count + len(data) > self.limit:
                raise LimitError(f"{self.name}: the stream grew past {self.limit} bytes, more than the source "
                                 "manifest announced; stopped before the target disk fills",
                                 fix="check the source volume (is it being written?), quiesce it, then re-run")
            self.sink(data)
            self.count += len(data)
        return data


class _Raw(io.RawIOBase):
    """Any object with ``read(n)`` (a pod's stdout, a pipe) as a raw stream, so it can be buffered."""

    def __init__(self, src: IO[bytes]) -> None:
        self.src = src

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.src.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def plain_tar(stream: IO[bytes]) -> IO[bytes]:
    """``stream`` decompressed when it is gzip, bzip2 or xz (detected by magic number), else as it is."""
    buffered = io.BufferedReader(_Raw(stream), buffer_size=_CHUNK)
    head = buffered.peek(6)[:6]
    if head.startswith(b"\x1f\x8b"):
        return cast(IO[bytes], gzip.GzipFile(fileobj=buffered, mode="rb"))
    if head.startswith(b"BZh"):
        return bz2.BZ2File(buffered, mode="rb")
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(buffered, mode="rb")
    return buffered


def stream_limit(content_bytes: int, entries: int) -> int:
    """Most tar bytes a stream of ``entries`` entries holding ``content_bytes`` may take (headers, padding, slack).

    Examples:
        >>> stream_limit(0, 1)
        1050112
    """
    return int(content_bytes * 1.05) + 3 * tarfile.BLOCKSIZE * entries + (1 << 20)


class _Chunks:
    """A forward reader over chunks handed over through a queue (``None`` ends it): the hasher's input."""

    def __init__(self, chunks: queue.Queue[bytes | None], name: str) -> None:
        self.chunks, self.name = chunks, name
        self._buf = bytearray()
        self._pos = 0
        self._eof = False

    def read(self, size: int = -1, /) -> bytes:
        while not self._eof and (size < 0 or len(self._buf) - self._pos < size):
            chunk = self.chunks.get()
            if chunk is None:
                self._eof = True
                break
            if self._pos:
                del self._buf[:self._pos]
                self._pos = 0
            self._buf += chunk
        end = len(self._buf) if size < 0 else min(len(self._buf), self._pos + size)
        out = bytes(self._buf[self._pos:end])
        self._pos = end
        return out

    def drain(self) -> None:
        """Take what is left, so the producer never waits on a reader that is done."""
        while not self._eof:
            if self.chunks.get() is None:
                self._eof = True


def relay(stream: IO[bytes], sink: Callable[[bytes], object], label: str, *,
          max_bytes: int | None = None) -> tuple[Manifest, int]:
    """Forward ``stream`` (a tar archive) to ``sink`` and build the manifest of what passed.

    The whole stream is forwarded — the end-of-archive marker and tar's record padding included —
    so the receiving ``tar -x`` ends exactly as it would reading the archive itself. Forwarding and
    hashing run side by side: the stream goes on to the target while a second thread parses and hashes
    the same chunks (a bounded queue between them keeps memory flat), so a volume of many small files
    moves at the speed of the slower of the two, not of their sum.

    Args:
        stream: the archive, possibly compressed (forwarded decompressed).
        sink: called with each chunk, in order (a pod's stdin, a local file).
        label: the stream's name in messages.
        max_bytes: stop (:class:`~k3smig_lib.errors.LimitError`) once more bytes than this arrive.

    Returns:
        The manifest of the forwarded archive and the number of bytes forwarded.

    Raises:
        DataMismatchError: the stream is cut (no end-of-archive marker) or corrupt.
    """
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUED)
    reader = _Chunks(chunks, label)
    outcome: dict[str, Any] = {}

    def hash_all() -> None:
        try:
            outcome["manifest"] = manifest_from_tar(reader)  # type: ignore[arg-type]
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            outcome["error"] = e
        finally:
            reader.drain()

    hasher = threading.Thread(target=hash_all, name=f"k3smig-hash-{label}", daemon=True)
    hasher.start()
    tee = _Tee(plain_tar(stream), sink, max_bytes)
    tee.name = label
    try:
        with read_errors(label):
            while "error" not in outcome:
                data = tee.read(_CHUNK)
                if not data:
                    break
                chunks.put(data)
    finally:
        chunks.put(None)
        hasher.join()
    if "error" in outcome:
        raise outcome["error"]
    manifest: Manifest = outcome["manifest"]
    manifest.source = label
    return manifest, tee.count


def changed_between(before: Manifest, after: Manifest) -> list[str]:
    """Paths whose content or metadata changed between two manifests of the same side (or appeared/vanished)."""
    diff = compare(before, after)
    return sorted([*diff.missing, *diff.extra, *(p for p, _ in diff.changed)])


def split_paths(paths: Sequence[str], limit: int) -> list[list[str]]:
    """``paths`` in consecutive batches of at most ``limit``."""
    return [list(paths[i:i + limit]) for i in range(0, len(paths), max(1, limit))]




def _safe_parts(path: str) -> list[str]:
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"unsafe member path {path!r}")
    return parts


def extract_selected(stream: IO[bytes], wanted: Sequence[str], dest: Path, label: str) -> list[str]:
    """Copy the regular files named in ``wanted`` out of a tar stream into the fresh folder ``dest``.

    Only regular-file members are written, by name components checked one by one (no ``..``, no
    absolute path, no link is ever created), so nothing can land outside ``dest``. Used to read
    small files — databases, block metadata — for application checks, never to restore a volume.

    Returns:
        The names found (a name that is not a regular file in the archive is left out).

    Raises:
        DataMismatchError: the stream is cut or corrupt.
    """
    want = set(wanted)
    found: list[str] = []
    with read_errors(label):
        tar = tarfile.open(fileobj=plain_tar(stream), mode="r|")
        for member in tar:
            name = canonical_name(member.name)
            if name not in want or not member.isreg():
                continue
            try:
                parts = _safe_parts(name)
            except ValueError:
                continue
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            reader = tar.extractfile(member)
            if reader is None:
                continue
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(reader, out, _CHUNK)
            found.append(name)
    return sorted(found)


__all__ = ["Delta", "changed_between", "extract_selected", "plain_tar", "plan_delta", "relay", "split_paths",
           "stream_limit"]
