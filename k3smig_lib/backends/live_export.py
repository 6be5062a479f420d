"""Live export at scale: list pages spooled to disk as they arrive, handed back in snapshot order.

:meth:`LiveSource.list_objects` holds the whole export; at 10,000+ objects that is hundreds of MB of
dicts. :class:`LiveSpool` consumes :meth:`LiveSource.iter_pages` instead: each object is pickled to
a temporary spool file as soon as its page arrives, and memory keeps only a small index entry per
object (file, apiVersion, name, offset). :meth:`LiveSpool.objects` then reads the spool back in
exactly the order :func:`~k3smig_lib.backends.snapshot.iter_export` reads the snapshot folder that
:func:`~k3smig_lib.backends.live_source.write_snapshot` writes — optionally writing that folder on
the way — so ``k3smig clean`` of a live cluster gives byte for byte what cleaning its snapshot gives.

Cleaning itself cannot start before the last page: the cross-object rules need facts of the whole
export (Endpoints are dropped only for Services with a selector, and source node names come from every
pod template), which :func:`~k3smig_lib.core.clean.stream.clean_stream` gathers in its first pass.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from k3smig_lib.backends.base import SourceInfo
from k3smig_lib.backends.live_source import LiveSource, SnapshotWriter
from k3smig_lib.core.objects import Obj, sha256_of
from k3smig_lib.errors import WriteError

#: (namespace folder, "<Kind>.yaml", apiVersion, name, spool offset): the reading order of a snapshot.
_Entry = tuple[str, str, str, str, int]


class LiveSpool:
    """The objects of a live source on disk, listed page by page; memory holds an index entry per object.

    Attributes:
        spooled: objects written to the spool so far (progress, streaming tests).
        pages: pages consumed so far.
    """

    def __init__(self, source: LiveSource) -> None:
        self.source = source
        self.spooled = 0
        self.pages = 0
        self._entries: list[tuple[int, int, _Entry]] = []  # (resource key, attempt, entry)
        self._order: list[_Entry] = []
        self._fh: IO[bytes] | None = None

    def __enter__(self) -> LiveSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the spool file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def fill(self) -> int:
        """List every exported kind, pickling each object as its page arrives; return the object count.

        Raises:
            SourceError: a list failed for good, or a name is invalid (see :meth:`LiveSource.iter_pages`).
            WriteError: the spool cannot be written (disk full).
        """
        try:
            self._fh = tempfile.TemporaryFile(prefix="k3smig-live-")
            fh, dump = self._fh, pickle.dump
            latest: dict[int, int] = {}
            for page in self.source.iter_pages():
                key = id(page.resource)
                latest[key] = max(latest.get(key, 0), page.attempt)
                for obj in page.items:
                    meta = obj.get("metadata") or {}
                    entry = (str(meta.get("namespace") or "") or "_cluster", f"{obj.get('kind')}.yaml",
                             str(obj.get("apiVersion", "")), str(meta.get("name") or ""), fh.tell())
                    dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
                    self._entries.append((key, page.attempt, entry))
                    self.spooled += 1
                self.pages += 1
        except OSError as e:
            raise WriteError(f"cannot write the live export's spool file in {tempfile.gettempdir()}: "
                             f"{e.strerror or e}", fix="free disk space there (it holds the export once) "
                             "or set TMPDIR") from e
        entries = [entry for key, attempt, entry in self._entries if attempt == latest[key]]
        self._entries = []
        self._order = sorted(entries)
        return len(self._order)

    def objects(self, snapshot: Path | None = None, info: SourceInfo | None = None,
                exported_at: str | None = None) -> Iterator[tuple[Obj, str]]:
        """``(object, sha256)`` pairs in the snapshot folder's reading order, one object in memory at a time.

        Args:
            snapshot: also write the export there as a snapshot folder (what ``write_snapshot`` writes);
                memory then holds one file's objects (one kind of one namespace) at a time.
            info: ``cluster.yaml`` of the snapshot.
            exported_at: its timestamp (None: now).
        """
        if self._fh is None:
            raise RuntimeError("fill() the spool first")
        fh, load = self._fh, pickle.load
        writer = SnapshotWriter(snapshot) if snapshot is not None else None
        group: list[Obj] = []
        current: tuple[str, str] | None = None
        try:
            for folder, file, _, _, offset in self._order:
                fh.seek(offset)
                obj = load(fh)
                if writer is not None:
                    if current != (folder, file) and current is not None:
                        writer.add(Path(*current), group)
                        group = []
                    current = (folder, file)
                    group.append(obj)
                yield obj, sha256_of(obj)
            if writer is not None:
                if current is not None:
                    writer.add(Path(*current), group)
                writer.finish(info, exported_at)
        except BaseException:
            if writer is not None:
                writer.abandon()
            raise
