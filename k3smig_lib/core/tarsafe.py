"""Reading untrusted volume archives: a strict pre-scan, then a fail-closed extraction.

The preferred data path streams tar pod → pod and only *hashes* members on the host
(:func:`k3smig_lib.core.manifest.manifest_from_tar`). When an archive must be extracted on the host,
:func:`safe_extract` follows docs/safety.md §4.3:

1. :func:`prescan` reads the whole archive first and refuses it if any member could write outside
   the destination: absolute or ``..`` names, non-canonical names (``a//b``, ``a/./b``, empty names),
   duplicates, members placed under a symlink member ("plant a link, then write through it",
   CVE-2019-11251), symlink targets that are absolute or resolve outside the archive root (resolved
   through the archive's own symlinks, not lexically — ``x -> .`` then ``y -> x/../etc`` escapes),
   hard links to anything but an earlier regular member, devices, FIFOs and unknown types. It also
   proves the archive is complete: both zero blocks of the end-of-archive marker must be present,
   because ``tarfile`` silently stops at a stream cut on a header boundary (case 9).
2. **setuid is refused, not stripped**: a setuid member, or a setgid *file*, makes the archive
   unsafe. Stripping would silently change the data (rule "fail closed, never skip with warning");
   setgid and sticky *directories* are legitimate (shared group dirs, case 22) and are kept.
3. Extraction goes into a fresh ``mkdtemp`` sibling of the destination (never a reused directory,
   case 20), with ``filter='data'`` run on every member as defence in depth — its verdict is
   enforced, its lossy result discarded: ``data`` drops owners and ``tar`` masks modes to 0o755,
   which would lose group-write bits and setgid dirs. Members must match the pre-scan one for one,
   so an archive swapped between the two reads is refused. ``errorlevel=2`` makes a failed chown
   fatal instead of a debug message.
4. The staging directory is renamed onto the destination only when everything succeeded; on any
   error it is deleted and the destination is left as it was. The rename needs the destination's
   parent on the same filesystem, so a mount point itself cannot be the destination. Its name holds
   the PID of the extracting process, so the next run removes the staging folder of a killed one
   (:func:`k3smig_lib.core.fsafe.remove_leftovers`).
5. **Size is bounded before anything is written**: with ``max_bytes`` (derived by the caller from the
   claim's requested size plus a margin, :func:`volume_limit_bytes`) the pre-scan adds up the
   *apparent* size of every regular member (a sparse member counts for its full length, as it will
   on a volume without sparse support) and stops at the first member past the limit, naming it and
   the limit: a 10 GiB sparse file in a 1Gi claim is refused while reading headers, never after
   filling TMPDIR or the target disk.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from k3smig_lib.core.fsafe import STAGING_MARK
from k3smig_lib.core.quantity import parse_quantity
from k3smig_lib.core.tarstream import TarStream, canonical_name, read_errors
from k3smig_lib.errors import DataMismatchError, LimitError, ParameterError, TargetError, UnsafeArchiveError
from k3smig_lib.log import logger

#: Longest member name accepted, in bytes; leaves room for the destination under PATH_MAX (4096).
MAX_NAME_BYTES = 3840
#: Symlink hops followed while resolving a link target inside the archive (Linux uses 40).
MAX_LINK_HOPS = 40
_SPECIAL = {
    tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a FIFO",
}


@dataclass
class ExtractReport:
    """What :func:`safe_extract` wrote.

    Attributes:
        members: archive members extracted (the root ``.`` included when present).
        bytes: bytes of regular-file content.
        owners_applied: numeric uid/gid were applied (only possible as root).
        staging_used: the fresh staging directory that was renamed onto the destination.
    """

    members: int
    bytes: int
    owners_applied: bool
    staging_used: str


def volume_limit_bytes(requested: str, margin: float) -> int | None:
    """Most bytes a volume archive may expand to: the claim's requested size plus ``margin`` (0.1 = 10 %).

    Returns:
        ``None`` when the claim states no size (nothing to bound against).

    Raises:
        ParameterError: the margin is negative or the size is not a Kubernetes quantity.

    Examples:
        >>> volume_limit_bytes("1Gi", 0.25), volume_limit_bytes("", 0.25)
        (1342177280, None)
    """
    if margin < 0:
        raise ParameterError(f"volume_size_margin {margin} is negative", fix="give 0 or more (0.1 = 10 %)")
    if not requested:
        return None
    try:
        size = parse_quantity(requested)
    except ValueError as e:
        raise ParameterError(f"claim size {requested!r} is not a Kubernetes quantity", fix="e.g. 1Gi or 500Mi") from e
    return int(size * (1 + margin))


def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def prescan(archive: Path, *, max_bytes: int | None = None) -> list[tarfile.TarInfo]:
    """Read the whole archive and refuse it if any member is unsafe, before anything is written.

    Args:
        archive: path of the tar archive (plain or compressed).
        max_bytes: most bytes the regular members may add up to (apparent sizes); ``None``: no limit.

    Returns:
        The members, in archive order.

    Raises:
        UnsafeArchiveError: a member is unsafe; the message names it and says why.
        LimitError: the members add up to more than ``max_bytes``; raised at the first member past it.
        DataMismatchError: the archive is truncated or corrupt.

    Examples:
        >>> members = prescan(Path("volume.tar"))  # doctest: +SKIP
        >>> [m.name for m in members][:2]  # doctest: +SKIP
        ['.', './db.sqlite3']
    """
    scanner = _Scanner(str(archive), max_bytes)
    with archive.open("rb") as fh:
        for member in TarStream(fh, str(archive)):
            scanner.add(member)
    scanner.finish()
    return scanner.members


def _q(text: str) -> str:
    """Quote a name for a message, shortened: error messages are cut at 256 characters."""
    return repr(text) if len(text) <= 80 else f"{text[:40]!r}…{text[-30:]!r}"


def _unsafe(member: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"archive member {_q(member)} {why}; the archive was refused and nothing was extracted",
        fix="inspect the source volume for planted links or special files; never extract it with plain tar",
    )


def _check_name(raw: str, link_of: str | None = None) -> str:
    """Validate a member name, or with ``link_of`` that member's hard-link target; return it canonical."""
    label, say = (raw, "") if link_of is None else (link_of, f"is a hard link to {_q(raw)}, whose target ")
    if raw == "":
        raise _unsafe(label, say + "has an empty name")
    if raw.startswith("/"):
        raise _unsafe(label, say + "has an absolute path")
    if "\x00" in raw:
        raise _unsafe(label, say + "contains a NUL byte")
    name = canonical_name(raw)
    if name == ".":
        return name
    parts = name.split("/")
    if ".." in parts:
        raise _unsafe(label, say + "climbs out of the destination with '..'")
    if "" in parts or "." in parts:
        raise _unsafe(label, say + "has a non-canonical path (empty or '.' components)")
    if len(os.fsencode(name)) > MAX_NAME_BYTES or any(len(os.fsencode(p)) > 255 for p in parts):
        raise _unsafe(label, say + f"is longer than {MAX_NAME_BYTES} bytes or has a component over 255 bytes")
    return name


class _Scanner:
    """Accumulates members and applies per-member and cross-member safety rules."""

    def __init__(self, label: str, max_bytes: int | None = None) -> None:
        self.label = label
        self.max_bytes = max_bytes
        self.total = 0
        self.members: list[tarfile.TarInfo] = []
        self.kinds: dict[str, str] = {}  # canonical name -> "d" | "f" | "l" | "h"
        self.symlinks: dict[str, str] = {}
        self.ancestors: set[str] = set()

    def add(self, m: tarfile.TarInfo) -> None:
        name = _check_name(m.name)
        if name in self.kinds:
            raise _unsafe(m.name, "appears twice (a later copy would replace the first)")
        self._check_type_and_mode(m, name)
        parts = name.split("/") if name != "." else []
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            kind = self.kinds.get(parent)
            if kind == "l":
                raise _unsafe(m.name, f"would be written through the symlink member {_q(parent)}")
            if kind in ("f", "h"):
                raise _unsafe(m.name, f"is placed under {_q(parent)}, which is not a directory")
            self.ancestors.add(parent)
        kind = "d" if m.isdir() else "l" if m.issym() else "h" if m.islnk() else "f"
        if kind != "d" and name in self.ancestors:
            raise _unsafe(m.name, "is not a directory but earlier members were placed under it")
        if kind == "l":
            self._check_symlink_text(m)
            self.symlinks[name] = m.linkname
        elif kind == "h":
            target = _check_name(m.linkname, link_of=m.name)
            if self.kinds.get(target) != "f":
                raise _unsafe(m.name, f"is a hard link to {_q(m.linkname)}, which is not an earlier regular "
                              "file of the archive (hard links out of the destination are refused)")
        self.kinds[name] = kind
        self.members.append(m)
        if m.isreg():
            self._count(m)

    def _count(self, m: tarfile.TarInfo) -> None:
        self.total += m.size  # apparent size: tarfile reports a sparse member's full length
        if self.max_bytes is not None and self.total > self.max_bytes:
            sparse = " (a sparse file: its apparent size counts)" if m.issparse() else ""
            raise LimitError(
                f"archive {self.label} expands to more than its limit of {self.max_bytes} bytes "
                f"({_human(self.max_bytes)}): member {_q(m.name)} of {m.size} bytes{sparse} brings it to "
                f"{self.total} bytes; nothing was extracted",
                fix="check the claim's requested size against the data (resize the claim on the source), or "
                "raise volume_size_margin if the volume is legitimately fuller than its claim")

    @staticmethod
    def _check_type_and_mode(m: tarfile.TarInfo, name: str) -> None:
        if m.type in _SPECIAL:
            raise _unsafe(m.name, f"is {_SPECIAL[m.type]}")
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
            raise _unsafe(m.name, f"has an unsupported member type {m.type!r}")
        if name == "." and not m.isdir():
            raise _unsafe(m.name, "names the destination root but is not a directory")
        if m.mode & ~0o7777:
            raise _unsafe(m.name, f"has an invalid mode {m.mode:#o}")
        if m.mode & stat.S_ISUID:
            raise _unsafe(m.name, f"is setuid (mode {m.mode:04o}); setuid members are refused, not stripped")
        if m.mode & stat.S_ISGID and not m.isdir():
            raise _unsafe(m.name, f"is a setgid file (mode {m.mode:04o}); only setgid directories are kept")

    @staticmethod
    def _check_symlink_text(m: tarfile.TarInfo) -> None:
        target = m.linkname
        if target == "":
            raise _unsafe(m.name, "is a symlink with an empty target")
        if "\x00" in target:
            raise _unsafe(m.name, "is a symlink whose target contains a NUL byte")
        if target.startswith("/"):
            raise _unsafe(m.name, f"is a symlink to the absolute path {_q(target)}")
        if len(os.fsencode(target)) > MAX_NAME_BYTES:
            raise _unsafe(m.name, f"is a symlink whose target is longer than {MAX_NAME_BYTES} bytes")

    def finish(self) -> None:
        """Resolve every symlink through the archive's own links; any escape refuses the archive."""
        for name, target in self.symlinks.items():
            parent = name.split("/")[:-1]
            try:
                self._resolve(parent, target, 0)
            except _EscapeError as e:
                raise _unsafe(name, f"is a symlink to {_q(target)}, which {e}") from None

    def _resolve(self, where: list[str], target: str, hops: int) -> list[str]:
        stack = list(where)
        for comp in target.split("/"):
            if comp in ("", "."):
                continue
            if comp == "..":
                if not stack:
                    raise _EscapeError("resolves outside the destination")
                stack.pop()
                continue
            stack.append(comp)
            link = self.symlinks.get("/".join(stack))
            if link is not None:
                if hops >= MAX_LINK_HOPS:
                    raise _EscapeError(f"needs more than {MAX_LINK_HOPS} symlink hops (a loop or a chain)")
                stack = self._resolve(stack[:-1], link, hops + 1)
        return stack


class _EscapeError(Exception):
    """A symlink target leaves the archive root (internal to the pre-scan)."""


def _lstat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _check_destination(dest: Path) -> os.stat_result | None:
    """Refuse symlinked ancestors, a symlinked or non-empty destination (case 20).

    Returns:
        The destination's lstat when it exists (an empty directory), else ``None``.
    """
    cur = Path(dest.anchor)
    for part in dest.parent.parts[1:]:
        cur = cur / part
        st = _lstat_or_none(cur)
        if st is None:
            raise TargetError(f"cannot extract into {dest}: {cur} does not exist",
                              fix="create the parent directory first")
        if stat.S_ISLNK(st.st_mode):
            raise TargetError(
                f"refusing to extract through the symlink {cur} (possibly planted by an earlier partial "
                f"run) into {dest}",
                fix=f"remove the symlink, or pass the real path {os.path.realpath(dest)} if it is yours",
            )
        if not stat.S_ISDIR(st.st_mode):
            raise TargetError(f"cannot extract into {dest}: {cur} is not a directory")
    st = _lstat_or_none(dest)
    if st is None:
        return None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise TargetError(f"cannot extract into {dest}: it exists and is not a plain directory (a symlink?)",
                          fix="remove it; the destination must be absent or an empty directory")
    leftovers = sorted(os.listdir(dest))
    if leftovers:
        raise TargetError(
            f"cannot extract into {dest}: it is not empty ({len(leftovers)} entries, e.g. {leftovers[:3]})",
            fix="empty it first; extra files would survive the copy (case 18)",
        )
    return st


def safe_extract(archive: Path, dest: Path, *, numeric_owner: bool = True,
                 max_bytes: int | None = None) -> ExtractReport:
    """Extract an untrusted archive into ``dest`` through a fresh staging directory, failing closed.

    Args:
        archive: the tar archive.
        dest: absent, or an empty directory; no ancestor may be a symlink.
        numeric_owner: apply the archive's numeric uid/gid (never names looked up on this host).
        max_bytes: most bytes the archive may expand to (see :func:`volume_limit_bytes`); checked by the
            pre-scan, so an archive past it is refused before anything is written.

    Returns:
        What was extracted; ``owners_applied`` is ``False`` when not running as root.

    Raises:
        UnsafeArchiveError: the pre-scan or the ``data`` filter refused a member (nothing written).
        LimitError: the archive expands past ``max_bytes`` (nothing written).
        DataMismatchError: the archive is truncated or corrupt (staging deleted).
        TargetError: the destination is unsafe, or writing failed (ENOSPC, chown); staging deleted.

    Examples:
        >>> safe_extract(Path("vol.tar"), Path("/srv/restore/vol")).members  # doctest: +SKIP
        1234
    """
    dest = Path(os.path.abspath(dest))
    before = _check_destination(dest)
    members = prescan(archive, max_bytes=max_bytes)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}{STAGING_MARK}{os.getpid()}-", dir=dest.parent))
    try:
        _extract_members(archive, staging, members, numeric_owner)
        if not any(canonical_name(m.name) == "." for m in members):
            _set_root_attributes(staging, before)
        _check_destination(dest)  # again, right before the rename: nothing appeared meanwhile
        os.rename(staging, dest)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, OSError):
            busy = e.errno in (errno.EBUSY, errno.EXDEV)
            raise TargetError(
                f"extracting {archive} into {dest} failed: {e}",
                fix="extract into a subdirectory: a mount point cannot be replaced by a rename" if busy
                else "check free space and permissions, then re-run (staging removed)",
            ) from e
        raise
    report = ExtractReport(
        members=len(members),
        bytes=sum(m.size for m in members if m.isreg()),
        owners_applied=hasattr(os, "geteuid") and os.geteuid() == 0,
        staging_used=str(staging),
    )
    logger.info("extracted %s into %s: %d members, %d bytes", archive, dest, report.members, report.bytes)
    return report


def _identity(m: tarfile.TarInfo) -> tuple[object, ...]:
    return (m.name, m.type, m.linkname, m.mode, m.uid, m.gid, m.size)


def _extract_members(
    archive: Path, staging: Path, members: list[tarfile.TarInfo], numeric_owner: bool
) -> None:
    """Extract with a filter that enforces the pre-scan list and the ``data`` filter's verdict."""
    expected = iter(members)

    def _checked(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        want = next(expected, None)
        if want is None or _identity(want) != _identity(member):
            raise _unsafe(member.name, "differs from the pre-scanned archive (it changed between reads)")
        tarfile.data_filter(member, path)  # raises on what 'data' refuses; its lossy copy is discarded
        return member

    with archive.open("rb") as fh:
        stream = TarStream(fh, str(archive))
        try:
            with read_errors(str(archive)):
                stream.tar.extractall(staging, numeric_owner=numeric_owner, filter=_checked)
        except tarfile.FilterError as e:
            raise _unsafe(e.tarinfo.name, f"was refused by the 'data' filter: {e}") from e
        except tarfile.ExtractError as e:
            raise TargetError(f"extracting {archive} failed: {e}",
                              fix="run the extraction as root so numeric owners can be applied") from e
        stream.check_end()
    if next(expected, None) is not None:
        raise DataMismatchError(f"archive {archive} has fewer members than when it was scanned")


def _set_root_attributes(staging: Path, before: os.stat_result | None) -> None:
    """Give the staging root the old destination's mode/owner (or 0755), since mkdtemp made it 0700."""
    if before is None:
        os.chmod(staging, 0o755)
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.chown(staging, before.st_uid, before.st_gid)
    os.chmod(staging, stat.S_IMODE(before.st_mode))


__all__ = [
    "ExtractReport",
    "TarStream",
    "canonical_name",
    "prescan",
    "read_errors",
    "safe_extract",
    "volume_limit_bytes",
]
