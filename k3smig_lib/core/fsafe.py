"""Every file k3smig writes goes through here: confined to a root folder, and written atomically.

Why: paths are built from names that come from the source (object names, namespaces, ConfigMap keys,
claim names). A name such as ``../../x``, or a folder on the way replaced by a symlink, must never make
a write land outside the target tree, the run folder or the cleaner's output (issue 9): names are
validated when a source is read (:mod:`k3smig_lib.core.names`), and this module refuses the write
anyway, so a future path builder cannot reintroduce the hole. And a file is always either its old or
its new content: a disk that fills up mid-write leaves the previous file, never a zero-byte manifest.

How: the root is the operator's choice and is resolved once. Every part below it is checked as text
(no empty, ``.``, ``..``, absolute, NUL, control-character or over-long component), then walked with
folder descriptors opened ``O_NOFOLLOW``, so a symlink below the root is refused at the moment it
would be used, not only when it was checked. Content goes to a temporary file in the destination
folder, is fsynced, renamed over the final name, and the folder is fsynced. A temporary file left by
a killed process carries that process's PID; :func:`remove_leftovers` deletes it once the PID is gone.

Examples:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> atomic_write(root, "manifests/a.yaml", b"kind: ConfigMap").name
    'a.yaml'
    >>> confined_path(root, "manifests", "../../etc/passwd")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    k3smig_lib.errors.UnsafePathError: refusing to write '../../etc/passwd' under …
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from k3smig_lib.errors import UnsafePathError, WriteError

#: Longest file or folder name most filesystems accept, in bytes.
MAX_COMPONENT_BYTES = 255
TMP_PREFIX = ".k3smig-tmp-"
STAGING_MARK = ".k3smig-staging-"
_LEFTOVER = re.compile(r"^(?:\.k3smig-tmp-|.*\.k3smig-staging-)(\d+)-")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FIX = "rename the object in the source (names become file names), or report the path builder as a k3smig bug"


def _shown(text: str) -> str:
    """A part as shown in a message: quoted, control characters escaped, cut when long."""
    return repr(text) if len(text) <= 80 else repr(text[:60]) + "…"


def _components(parts: tuple[str | os.PathLike[str], ...], root: Path) -> list[str]:
    """Split ``parts`` into checked path components (each part may hold ``/``)."""
    comps: list[str] = []
    for part in parts:
        text = os.fspath(part)
        if text.startswith("/") or PurePosixPath(text).is_absolute():
            raise UnsafePathError(f"refusing to write {_shown(text)}: an absolute path, not a path under {root}",
                                  fix=_FIX)
        comps.extend(text.split("/"))
    if not comps:
        raise UnsafePathError(f"refusing to write to {root} itself: no file name given", fix=_FIX)
    for comp in comps:
        why = ""
        if comp in ("", ".", ".."):
            why = "has an empty, '.' or '..' component"
        elif _CONTROL.search(comp):
            why = "has a control character in a component"
        elif len(os.fsencode(comp)) > MAX_COMPONENT_BYTES:
            why = f"has a component longer than {MAX_COMPONENT_BYTES} bytes"
        if why:
            shown = "/".join(os.fspath(p) for p in parts)
            raise UnsafePathError(f"refusing to write {_shown(shown)} under {root}: the path {why}", fix=_FIX)
    return comps


def _root(root: Path | str) -> Path:
    return Path(os.path.realpath(os.fspath(root)))


def _unsafe_link(root: Path, comps: list[str], index: int) -> UnsafePathError:
    where = root.joinpath(*comps[: index + 1])
    return UnsafePathError(
        f"refusing to write under {where}: it is a symlink or not a folder (possibly planted by an earlier "
        "run or by a hostile archive)",
        fix=f"remove {where}, or point the root at the real folder if the link is yours",
    )


def _open_dirs(root: Path, comps: list[str], *, create: bool, dir_mode: int = 0o755) -> int | None:
    """Open the folder ``root/comps`` without following any symlink below ``root``.

    Returns:
        A folder descriptor (the caller closes it), or ``None`` when a folder is missing and
        ``create`` is false.
    """
    if create:
        root.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    for index, comp in enumerate(comps):
        try:
            try:
                nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return None
                try:
                    os.mkdir(comp, dir_mode, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _unsafe_link(root, comps, index) from None
            raise WriteError(f"cannot create the folder {root.joinpath(*comps[: index + 1])}: {e.strerror}",
                             fix="check the path and its permissions") from e
        os.close(fd)
        fd = nfd
    return fd


def _check_leaf(dfd: int, root: Path, comps: list[str]) -> None:
    try:
        st = os.stat(comps[-1], dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise _unsafe_link(root, comps, len(comps) - 1)
    if stat.S_ISDIR(st.st_mode):
        raise WriteError(f"cannot write {root.joinpath(*comps)}: a folder of that name exists",
                         fix="remove or rename that folder, then re-run")


def confined_path(root: Path | str, *parts: str | os.PathLike[str]) -> Path:
    """The path ``root/parts…``, proven to stay under ``root``; nothing is created.

    Args:
        root: the folder every write of the caller stays in (target tree, run folder, cleaner output).
        *parts: path parts below ``root``; a part may contain ``/`` but no ``..``, ``.`` or empty part.

    Returns:
        The absolute path (under the resolved root).

    Raises:
        UnsafePathError: a part is absolute, ``..``, empty, too long or holds a control character, or an
            existing folder on the way (or the file itself) is a symlink.
    """
    base = _root(root)
    comps = _components(parts, base)
    fd = _open_dirs(base, comps[:-1], create=False)
    if fd is not None:
        try:
            _check_leaf(fd, base, comps)
        finally:
            os.close(fd)
    return base.joinpath(*comps)


def ensure_dir(root: Path | str, *parts: str | os.PathLike[str], mode: int = 0o755) -> Path:
    """Create the folder ``root/parts…`` (and the missing folders on the way), confined to ``root``.

    Raises:
        UnsafePathError: as :func:`confined_path`.
        WriteError: a folder cannot be created.
    """
    base = _root(root)
    comps = _components(parts, base)
    fd = _open_dirs(base, comps, create=True, dir_mode=mode)
    assert fd is not None
    os.close(fd)
    return base.joinpath(*comps)


def _fsync_dir(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as e:  # some filesystems refuse fsync on folders; the rename itself is still atomic
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise


@contextmanager
def atomic_writer(root: Path | str, rel: str | os.PathLike[str], *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Stream a file into ``root/rel``: readers see the old file until the block ends without error.

    Args:
        root: the folder the write stays in.
        rel: path below ``root`` (``/``-separated).
        mode: permission bits of the new file (applied exactly, not through the umask).

    Yields:
        A binary file to write to.

    Raises:
        UnsafePathError: the path leaves ``root`` (see :func:`confined_path`).
        WriteError: the file could not be written completely (disk full, permissions); the previous
            content is kept and the temporary file removed.
    """
    base = _root(root)
    comps = _components((rel,), base)
    final = base.joinpath(*comps)
    dfd = _open_dirs(base, comps[:-1], create=True)
    assert dfd is not None
    tmp = f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        _check_leaf(dfd, base, comps)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fchmod(fh.fileno(), mode)
                os.fsync(fh.fileno())
            _check_leaf(dfd, base, comps)
            os.replace(tmp, comps[-1], src_dir_fd=dfd, dst_dir_fd=dfd)
            _fsync_dir(dfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except FileNotFoundError:
                pass
            raise
    except OSError as e:
        raise WriteError(f"cannot write {final}: {e.strerror or e}",
                         fix="free disk space or fix the permissions, then re-run (the previous content of "
                         "the file was kept)") from e
    finally:
        os.close(dfd)


def atomic_write(root: Path | str, rel: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o644) -> Path:
    """Write ``data`` (text is UTF-8) to ``root/rel`` atomically; return the path written.

    Raises:
        UnsafePathError: the path leaves ``root`` (see :func:`confined_path`).
        WriteError: the file could not be written completely; the previous content is kept.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_writer(root, rel, mode=mode) as fh:
        fh.write(payload)
    return confined_path(root, rel)


def staged_write(root: Path | str, rel: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o644) -> None:
    """Write a file into a staging tree nobody reads yet: confined like :func:`atomic_write`, one syscall path.

    A tree built in a staging folder becomes visible only when the folder is renamed into place, so
    each file needs neither a temporary name nor its own fsync (5 ms each here: 10,000 manifests would
    spend 50 s syncing). The caller makes the whole tree durable once with :func:`sync_staged` before
    the rename.

    Raises:
        UnsafePathError: the path leaves ``root`` (see :func:`confined_path`).
        WriteError: the file could not be written completely.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    base = _root(root)
    comps = _components((rel,), base)
    dfd = _open_dirs(base, comps[:-1], create=True)
    assert dfd is not None
    try:
        _check_leaf(dfd, base, comps)
        fd = os.open(comps[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=dfd)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            os.fchmod(fh.fileno(), mode)
    except OSError as e:
        raise WriteError(f"cannot write {base.joinpath(*comps)}: {e.strerror or e}",
                         fix="free disk space or fix the permissions, then re-run") from e
    finally:
        os.close(dfd)


def sync_staged() -> None:
    """Flush every file written with :func:`staged_write` to disk (one ``sync`` for the whole tree)."""
    os.sync()


def pid_alive(pid: int) -> bool:
    """True when a process with this PID exists on this machine (also when it belongs to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftover_pid(name: str) -> int | None:
    """PID in the name of a temporary file or staging folder k3smig left, else ``None``.

    Examples:
        >>> leftover_pid(".k3smig-tmp-4242-0a1b2c3d"), leftover_pid(".data.k3smig-staging-77-x1"), leftover_pid("a")
        (4242, 77, None)
    """
    match = _LEFTOVER.match(name)
    return int(match.group(1)) if match else None


def remove_leftovers(root: Path | str, *, max_depth: int = 8) -> list[Path]:
    """Delete temporary files and staging folders whose writer process is gone; return what was removed.

    A process killed mid-write (SIGKILL, OOM, power cut) leaves ``.k3smig-tmp-<pid>-*`` files and
    ``*.k3smig-staging-<pid>-*`` folders behind; the next run removes them here. Entries of a process
    that still runs are kept, symlinks are never followed, and nothing deeper than ``max_depth`` folders
    below ``root`` is looked at (volume contents are user data).
    """
    base = _root(root)
    removed: list[Path] = []
    if not base.is_dir():
        return removed
    for folder, dirs, files in os.walk(base, followlinks=False):
        depth = len(Path(folder).relative_to(base).parts)
        gone: set[str] = set()
        for name in [*files, *dirs]:
            pid = leftover_pid(name)
            if pid is None or pid_alive(pid):
                continue
            path = Path(folder, name)
            if name in dirs and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            gone.add(name)
            removed.append(path)
        dirs[:] = [d for d in dirs if d not in gone and depth + 1 < max_depth]
    return removed


__all__ = [
    "MAX_COMPONENT_BYTES", "STAGING_MARK", "TMP_PREFIX", "atomic_write", "atomic_writer", "confined_path",
    "ensure_dir", "leftover_pid", "pid_alive", "remove_leftovers",
]
