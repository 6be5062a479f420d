"""What a volume helper runs, and how its output is read back: one ``sh -c`` script per step.

Every script starts in ``$VOLUME_DIR`` — the mount path in a helper pod's spec, and the folder behind
the claim in the local sandbox, where kwok runs commands on the host — so one script serves both.
Scripts address the volume only relatively (``.``), use numeric owners, and end by printing
``__K3SMIG_RC=<exit code>`` on stderr: the exit code k3smig trusts (§4.1 of the reliability notes).
They need GNU tar, GNU find and coreutils (the default helper image, ``debian:bookworm-slim``, has
them; BusyBox lacks ``--sparse``, ``--totals`` and ``find -printf``): :data:`PROBE` checks.

Stdin is never expected to reach end-of-file: a list is sent as exactly N bytes and read with
``head -c N`` (GNU head reads no further), and ``tar -x`` stops at the end-of-archive marker.

The manifest script prints, NUL-separated, ten fields per entry (``find -printf``), then a section of
``sha256sum -z`` lines and one of device numbers; :func:`parse_manifest` builds the same
:class:`~k3smig_lib.core.manifest.Manifest` that :func:`~k3smig_lib.core.manifest.manifest_from_dir`
builds locally, so a manifest made in a pod and one made from a tar stream compare field by field.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from k3smig_lib.core.manifest import Entry, EntryType, Manifest, canonical_hardlinks
from k3smig_lib.core.tarstream import canonical_name
from k3smig_lib.errors import DataMismatchError

VOLUME_DIR = "VOLUME_DIR"
_ENTER = 'cd "$VOLUME_DIR" || { echo "cannot enter the volume folder" >&2; echo "__K3SMIG_RC=97" >&2; exit 97; }'
_END = 'rc=$?; echo "__K3SMIG_RC=$rc" >&2; exit $rc'
_HASHES = b"__K3SMIG_HASHES__"
_DEVICES = b"__K3SMIG_DEVICES__"
_TYPES: dict[bytes, EntryType] = {b"f": "f", b"d": "d", b"l": "l"}


def _script(*lines: str) -> str:
    return "\n".join([_ENTER, *lines, _END])


#: GNU tar present, who we run as, free bytes where the volume lives (1K blocks of ``df -P -k``).
PROBE = _script(
    "tar --version 2>/dev/null | head -n 1",
    "id -u; id -g",
    "df -P -k . | tail -n 1",
    "true",
)

#: Entries with metadata (NUL-separated), then content hashes, then device numbers.
MANIFEST = _script(
    r"find . -printf '%y\0%p\0%s\0%m\0%U\0%G\0%T@\0%i\0%n\0%l\0' && "
    r"printf '__K3SMIG_HASHES__\0' && "
    r"find . -type f -print0 | xargs -0 -r sha256sum -z -- && "
    r"printf '__K3SMIG_DEVICES__\0' && "
    r"find . \( -type c -o -type b \) -print0 | xargs -0 -r stat --printf '%n\0%t\0%T\0' --",
)

#: Removes everything inside the volume (never the volume folder itself).
WIPE = _script("find . -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +")

_TAR_CREATE = "tar -c -f - --numeric-owner --sparse --totals"
_TAR_EXTRACT = "tar -x -f - --numeric-owner --same-permissions --same-owner --totals"


def create_script(list_bytes: int | None = None, *, ignore_missing: bool = False) -> str:
    """``tar -c`` of the whole volume (None), of nothing (0), or of the paths sent on stdin (``list_bytes``).

    The list is NUL-separated; an empty archive still carries the end-of-archive marker.

    A listed directory is archived without its contents (``--no-recursion``): the list names
    every entry to send.

    Examples:
        >>> "head -c 12" in create_script(12), "--no-recursion" in create_script(None)
        (True, False)
    """
    if list_bytes is None:
        return _script(f"{_TAR_CREATE} .")
    if list_bytes <= 0:
        return _script(f"{_TAR_CREATE} -T /dev/null")
    missing = " --ignore-failed-read" if ignore_missing else ""
    listed = "--no-recursion --null --verbatim-files-from -T -"
    return _script(f"head -c {int(list_bytes)} | {_TAR_CREATE}{missing} {listed}")


def extract_script(delete_bytes: int = 0, *, as_root: bool = True) -> str:
    """Delete the NUL-separated paths sent first (``delete_bytes`` of stdin), then ``tar -x`` the rest.

    Deleted paths come from the target's own manifest, relative and under ``.``; ``rm -rf --``
    treats names beginning with ``-`` as names. As root, tar restores numeric owners and every
    mode bit; as the target owner (no chown needed), files simply belong to that user.
    """
    lines = []
    if delete_bytes > 0:
        lines.append(f"head -c {int(delete_bytes)} | xargs -0 -r rm -rf -- || exit 96")
    lines.append(_TAR_EXTRACT if as_root else _TAR_EXTRACT.replace(" --same-owner", " --no-same-owner"))
    return _script(*lines)


def remap_script(uid: int | None, gid: int | None) -> str:
    """Give every entry the planned owner, keeping setuid/setgid bits that ``chown`` clears.

    Special files are listed with their modes first, the tree is chowned (symlinks themselves,
    never followed), then the modes are put back.
    """
    owner = f"{'' if uid is None else int(uid)}:{'' if gid is None else int(gid)}"
    if uid is None:
        owner = f":{int(gid)}" if gid is not None else ""
    if not owner:
        return _script("true")
    return _script(
        't=$(mktemp) || exit 95',
        r"""find . ! -type l ! -type d -perm /6000 -printf '%m\0%p\0' > "$t" && """
        f"chown -R -h {shlex.quote(owner)} . && "
        'xargs -0 -r -n 2 chmod -- < "$t"',
        'rc=$?; rm -f "$t"; (exit $rc)',
    )


def nul_list(paths: Iterable[str]) -> bytes:
    r"""Paths as NUL-terminated ``./p`` records (the root as ``.``), as tar and xargs read them.

    Names are raw bytes (surrogate escapes encoded back), never interpreted by a shell.

    Examples:
        >>> nul_list([".", "a b", "d/x"])
        b'.\\x00./a b\\x00./d/x\\x00'
    """
    return b"".join((b"." if p == "." else b"./" + os.fsencode(p)) + b"\0" for p in paths)


@dataclass(frozen=True)
class Probe:
    """What :data:`PROBE` found."""

    tar: str
    uid: int
    gid: int
    free_bytes: int

    @property
    def gnu_tar(self) -> bool:
        """GNU tar, which the scripts need (``--sparse``, ``--totals``, ``--null -T``)."""
        return "GNU tar" in self.tar


def parse_probe(out: bytes) -> Probe:
    r"""Read :data:`PROBE` output.

    Examples:
        >>> parse_probe(b"tar (GNU tar) 1.34\\n0\\n0\\n/dev/vda 100 50 40 56% /data\\n").free_bytes
        40960
    """
    lines = out.decode("utf-8", errors="replace").splitlines()
    if len(lines) < 4:
        raise DataMismatchError(f"the helper's probe printed {len(lines)} lines, expected 4",
                                fix="use a helper image with GNU tar, coreutils and findutils (volume_helper_image)")
    fields = lines[3].split()
    free = int(fields[3]) * 1024 if len(fields) >= 4 and fields[3].isdigit() else 0
    return Probe(tar=lines[0].strip(), uid=int(lines[1]), gid=int(lines[2]), free_bytes=free)


def _fields(data: bytes) -> list[bytes]:
    parts = data.split(b"\0")
    return parts[:-1] if parts and parts[-1] == b"" else parts


def _sections(out: bytes) -> tuple[list[bytes], list[bytes], list[bytes]]:
    fields = _fields(out)
    try:
        h = fields.index(_HASHES)
        d = fields.index(_DEVICES, h)
    except ValueError as e:
        raise DataMismatchError("the helper's manifest output is incomplete (a section marker is missing)",
                                fix="re-run; if it persists, check the helper image has GNU find and coreutils") from e
    return fields[:h], fields[h + 1:d], fields[d + 1:]


def _hashes(records: list[bytes]) -> dict[str, str]:
    out: dict[str, str] = {}
    for rec in records:
        digest, sep, name = rec.partition(b"  ")
        if not sep or not re.fullmatch(rb"[0-9a-f]{64}", digest):
            raise DataMismatchError("the helper's sha256sum output is malformed",
                                    fix="use a helper image with GNU coreutils (sha256sum -z)")
        out[canonical_name(os.fsdecode(name))] = digest.decode()
    return out


def _devices(records: list[bytes]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i in range(0, len(records) - 2, 3):
        name, major, minor = records[i:i + 3]
        out[canonical_name(os.fsdecode(name))] = f"{int(major, 16)}:{int(minor, 16)}"
    return out


def parse_manifest(out: bytes, label: str) -> Manifest:
    """Build a manifest from :data:`MANIFEST` output.

    Args:
        out: the script's stdout.
        label: where it was made (``pod ns/name``), for reports.

    Raises:
        DataMismatchError: the output is incomplete or malformed (a cut stream).
    """
    entries_raw, hash_raw, dev_raw = _sections(out)
    if len(entries_raw) % 10:
        raise DataMismatchError(f"the helper's manifest output of {label} is cut inside an entry",
                                fix="re-run the data phase; the stream was interrupted")
    hashes, devices = _hashes(hash_raw), _devices(dev_raw)
    entries: dict[str, Entry] = {}
    inodes: dict[bytes, list[str]] = {}
    for i in range(0, len(entries_raw), 10):
        y, p, s, m, u, g, t, ino, n, lk = entries_raw[i:i + 10]
        path = canonical_name(os.fsdecode(p))
        kind: EntryType = _TYPES.get(y, "o")
        mode = int(m, 8)
        size, link, sha = 0, "", ""
        if kind == "f":
            size, sha = int(s), hashes.get(path, "")
            if not sha:
                raise DataMismatchError(f"no hash for {path!r} in the manifest of {label} (changed while listed?)",
                                        fix="quiesce the application (scale to 0), then re-run")
            if int(n) > 1:
                inodes.setdefault(ino, []).append(path)
        elif kind == "l":
            mode, link = 0o777, os.fsdecode(lk)
        elif kind == "o":
            link = {b"p": "fifo", b"s": "sock"}.get(y, "")
            if y in (b"c", b"b"):
                link = f"{'chr' if y == b'c' else 'blk'}:{devices.get(path, '?:?')}"
        entries[path] = Entry(path, kind, size, mode, int(u), int(g), link, sha, int(float(t)))
    canonical_hardlinks(entries, [grp for grp in inodes.values() if len(grp) > 1])
    if "." not in entries:
        raise DataMismatchError(f"the manifest of {label} has no root entry", fix="re-run the data phase")
    return Manifest(entries=entries, source=label)


def parse_totals(stderr: str, verb: str) -> int | None:
    """Bytes GNU tar says it wrote (``verb="written"``) or read (``"read"``) with ``--totals``.

    Examples:
        >>> parse_totals("Total bytes written: 10240 (10KiB, 9.6MiB/s)", "written")
        10240
    """
    found = re.findall(rf"Total bytes {verb}: (\d+)", stderr)
    return int(found[-1]) if found else None


def quiet_stderr(stderr: str) -> str:
    """Stderr without tar's totals line, for messages."""
    return "\n".join(line for line in stderr.splitlines() if not line.startswith("Total bytes ")).strip()


def describe(paths: Sequence[str], limit: int = 3) -> str:
    """A few paths for a message (non-printable names shown with ``repr``)."""
    shown = [p if p.isprintable() else repr(p) for p in paths[:limit]]
    return ", ".join(shown) + (f" (+{len(paths) - limit} more)" if len(paths) > limit else "")


__all__ = ["MANIFEST", "PROBE", "VOLUME_DIR", "WIPE", "Probe", "create_script", "describe", "extract_script",
           "nul_list", "parse_manifest", "parse_probe", "parse_totals", "quiet_stderr", "remap_script"]
