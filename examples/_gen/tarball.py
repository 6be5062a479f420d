"""Deterministic volume archives: a tree described in memory, written as a gzipped tar.

Members are relative to the volume root (``./``, ``./db.sqlite3``…), sorted, with numeric owners and
no user or group names (what ``tar --numeric-owner`` writes), fixed mtimes, and a gzip header whose
mtime is 0, so the same tree always gives the same bytes.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Entry:
    """One member of a volume tree."""

    path: str
    type: str  # "dir", "file" or "symlink"
    mode: int
    uid: int
    gid: int
    mtime: int
    data: bytes = b""
    target: str = ""


@dataclass
class Tree:
    """A volume's files with the owner and modes they have on the source."""

    uid: int
    gid: int
    mtime: int
    root_mode: int = 0o755
    dir_mode: int = 0o755
    entries: dict[str, Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.entries["."] = Entry(".", "dir", self.root_mode, self.uid, self.gid, self.mtime)

    def _parents(self, path: str) -> None:
        for parent in reversed(PurePosixPath(path).parents):
            if str(parent) not in self.entries:
                self.dir(str(parent))

    def dir(self, path: str, *, mode: int | None = None, mtime: int | None = None) -> None:
        """Add a directory (parents are created with ``dir_mode``)."""
        self._parents(path)
        self.entries[path] = Entry(
            path,
            "dir",
            self.dir_mode if mode is None else mode,
            self.uid,
            self.gid,
            self.mtime if mtime is None else mtime,
        )

    def file(
        self,
        path: str,
        data: bytes,
        *,
        mode: int = 0o644,
        mtime: int | None = None,
        owner: tuple[int, int] | None = None,
    ) -> None:
        """Add a regular file."""
        self._parents(path)
        uid, gid = owner or (self.uid, self.gid)
        self.entries[path] = Entry(path, "file", mode, uid, gid, self.mtime if mtime is None else mtime, data)

    def symlink(self, path: str, target: str) -> None:
        """Add a symbolic link (mode 0777 like every Linux symlink)."""
        self._parents(path)
        self.entries[path] = Entry(path, "symlink", 0o777, self.uid, self.gid, self.mtime, target=target)


def _tarinfo(entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo("./" if entry.path == "." else f"./{entry.path}")
    info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, entry.mtime
    info.uname = info.gname = ""
    if entry.type == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.type == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, entry.target
    else:
        info.size = len(entry.data)
    return info


def tar_bytes(tree: Tree) -> bytes:
    """The uncompressed tar stream of ``tree`` (members sorted by path, root first)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(tree.entries, key=lambda p: (p != ".", p)):
            entry = tree.entries[path]
            tar.addfile(_tarinfo(entry), io.BytesIO(entry.data) if entry.type == "file" else None)
    return buffer.getvalue()


def write_tar_gz(tree: Tree, out: Path) -> None:
    """Write ``tree`` to ``out`` as a deterministic ``.tar.gz``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        out.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(tar_bytes(tree))
