"""Reading a tar stream once, front to back, and proving it ended where it should.

``tarfile`` stops silently when a stream is cut exactly on a header boundary, and also when it meets
an invalid header after the first member: an archive truncated by a dropped exec stream
(kubectl#1361) then looks complete. :class:`TarStream` records where the end-of-archive zero block
was read and insists on both zero blocks, so a cut stream is a :class:`DataMismatchError`, never a
shorter but "successful" copy (rule 4, case 9). Used by the manifest builder (hash only) and by the
safe extractor.
"""

from __future__ import annotations

import lzma
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from k3smig_lib.errors import DataMismatchError

BLOCK = tarfile.BLOCKSIZE
_CHUNK = 1 << 20
#: Magic numbers of gzip, bzip2 and xz: such streams are read in tarfile's stream mode.
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
_EOF_HEADER_ERROR: type[Exception] = getattr(tarfile, "EOFHeaderError")  # noqa: B009 - absent from stubs
_READ_ERRORS = (
    tarfile.ReadError, tarfile.StreamError, tarfile.HeaderError, EOFError, zlib.error, lzma.LZMAError,
)


@dataclass
class _EndMarker:
    offset: int = -1
    second_block: bool = False


def _marker_tarinfo(end: _EndMarker) -> type[tarfile.TarInfo]:
    """A TarInfo class that records where the end-of-archive zero block was met."""

    class _TarInfo(tarfile.TarInfo):
        @classmethod
        def fromtarfile(cls, tarfile_: tarfile.TarFile) -> _TarInfo:
            pos = tarfile_.fileobj.tell()
            try:
                return super().fromtarfile(tarfile_)
            except _EOF_HEADER_ERROR:
                end.offset = pos
                end.second_block = tarfile_.fileobj.read(BLOCK) == tarfile.NUL * BLOCK
                raise

    return _TarInfo


class _Forward:
    """A forward-only reader over a file, pipe or socket, with the first block already read.

    It lets ``tarfile`` use its random-access mode (``r:``) on a pipe: forward seeks become reads.
    The stream mode (``r|``) copies its whole buffer on every header read, which made small files
    ten times slower (see tests/benchmarks/test_manifest_bench.py).
    """

    def __init__(self, raw: IO[bytes], head: bytes) -> None:
        self._raw, self._head, self._pos = raw, head, 0

    def read(self, size: int = -1, /) -> bytes:
        parts = []
        if self._head:
            take = self._head if size < 0 else self._head[:size]
            self._head = self._head[len(take):]
            parts.append(take)
            size = size - len(take) if size >= 0 else size
        while size != 0:
            chunk = self._raw.read(size if size > 0 else _CHUNK)
            if not chunk:
                break
            parts.append(chunk)
            size = size - len(chunk) if size > 0 else size
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._pos += len(data)
        return data

    def take(self, size: int) -> Iterator[bytes]:
        """Exactly ``size`` bytes, in chunks; a short stream raises ``tarfile.ReadError``."""
        while size > 0:
            chunk = self.read(min(size, _CHUNK))
            if not chunk:
                raise tarfile.ReadError("unexpected end of data")
            size -= len(chunk)
            yield chunk

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0, /) -> int:
        target = pos + (self._pos if whence == 1 else 0)
        if whence == 2 or target < self._pos:
            raise tarfile.StreamError("seeking backwards is not possible on a stream")
        while self._pos < target and self.read(min(target - self._pos, _CHUNK)):
            pass
        return self._pos

    def write(self, b: bytes, /) -> int:
        raise OSError("read-only stream")

    def close(self) -> None:
        """The caller owns the underlying stream."""


class TarStream:
    """A tar archive read once, front to back, that proves it ended properly.

    Iterating yields the members; when iteration ends without both zero blocks of the
    end-of-archive marker, :class:`~k3smig_lib.errors.DataMismatchError` is raised.

    Args:
        fileobj: the archive bytes (file, pipe or exec stream); gzip/bz2/xz are detected.
        label: how the archive is named in messages.
    """

    def __init__(self, fileobj: IO[bytes], label: str) -> None:
        self.label = label
        self._end = _EndMarker()
        head = fileobj.read(BLOCK)
        source = _Forward(fileobj, head)
        kind = _marker_tarinfo(self._end)
        with read_errors(label):
            if head.startswith(_COMPRESSED):  # decompression needs tarfile's own stream reader
                self.tar = tarfile.open(fileobj=source, mode="r|*", tarinfo=kind, errorlevel=2)
            else:
                self.tar = tarfile.open(fileobj=source, mode="r:", tarinfo=kind, errorlevel=2)

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        with read_errors(self.label):
            yield from self.tar
        self.check_end()

    def member_data(self, member: tarfile.TarInfo) -> Iterator[bytes] | None:
        """The data of the member just yielded, read straight from the stream (None: use ``extractfile``).

        tarfile's own member reader goes through three layers of buffering per file; for the many
        small files of a volume that costs more than hashing them. A plain member's data starts where
        its header ended (``offset_data``) and is ``size`` bytes long, so it is read directly; sparse
        members and compressed archives keep tarfile's reader.
        """
        source = self.tar.fileobj
        if not isinstance(source, _Forward) or member.issparse() or source.tell() != member.offset_data:
            return None
        return source.take(member.size)

    def check_end(self) -> None:
        """Raise unless the archive ended with its two zero blocks (a cut stream has none)."""
        if self._end.offset != self.tar.offset or not self._end.second_block:
            raise DataMismatchError(
                f"archive {self.label} is truncated: it ends at byte {self.tar.offset} without the tar "
                "end-of-archive marker (two zero blocks)",
                fix="re-run the transfer; the stream was cut (kubectl#1361) even if the exit code was 0",
            )


@contextmanager
def read_errors(label: str) -> Iterator[None]:
    """Turn tarfile/decompressor read failures into :class:`DataMismatchError` naming the archive."""
    try:
        yield
    except _READ_ERRORS as e:
        raise DataMismatchError(
            f"archive {label} is truncated or corrupt: {e}",
            fix="re-run the transfer and compare manifests; never trust the partial copy",
        ) from e


def canonical_name(name: str) -> str:
    """Member name without the ``./`` prefix and trailing ``/``; the archive root is ``.``.

    Examples:
        >>> canonical_name("./a/b/"), canonical_name("./")
        ('a/b', '.')
    """
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    return name or "."


__all__ = ["BLOCK", "TarStream", "canonical_name", "read_errors"]
