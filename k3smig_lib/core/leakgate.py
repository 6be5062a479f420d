"""The leak gate: prove that no secret value sits in any file of a run before it is archived.

Papermill keeps parameters and tracebacks in the executed notebook, nbconvert copies outputs into
the HTML, and an ``ApiException`` body echoes the object it refused (docs/safety.md §4.5, case 28).
So after each phase every file of the run is searched for every secret value, in every form a value
takes on its way into a file: raw, base64 (standard and URL-safe, padded or not, and the three
alignments a value has when it is base64-encoded *inside* a longer blob such as a dockerconfigjson),
URL-encoded, JSON-escaped (once and twice: a JSON body inside a notebook), HTML-escaped and Python
``repr``. Compressed files (gzip, bzip2, xz, hence ``.tar.gz``) are searched decompressed, in memory.

The search is a Rabin-Karp style filter: every needle is anchored on its first 8 bytes, all
8-byte windows of a chunk are hashed at once with numpy, and only the rare candidates are compared
byte by byte. Every occurrence of every needle is found, also when needles share a prefix or
overlap, at a few hundred MB/s for a few thousand needles.

A hit names the file and the form, and the value only by a keyed fingerprint.
"""

from __future__ import annotations

import base64
import bz2
import datetime as dt
import gzip
import html
import json
import lzma
import os
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from k3smig_lib.core.fsafe import atomic_write
from k3smig_lib.core.secrets import Fingerprinter
from k3smig_lib.errors import ParameterError, SecretLeakError

_ANCHOR = 8  # bytes hashed per window; needles shorter than this are searched with bytes.find
_TABLE_BITS = 22  # 4 MiB of flags: few false candidates even for tens of thousands of needles
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_SHIFT = np.uint64(64 - _TABLE_BITS)
_CHUNK = 8 << 20
_LINE = re.compile(rb"^[A-Za-z0-9+/=]{40,}$")
_MAGIC: tuple[tuple[bytes, Any], ...] = (
    (b"\x1f\x8b", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open),
)


@dataclass(frozen=True)
class Hit:
    """One secret value found in one file, in one form; never the value itself.

    Attributes:
        file: path relative to the scanned root (``name.gz (decompressed)`` for compressed files).
        form: how the value was written (``raw``, ``base64``, ``url``, ``json``, ``html``…).
        fingerprint: keyed HMAC fingerprint of the value (see :class:`Fingerprinter`).
        source: what the value is, when the caller labelled it (``secret ns/name key k``).
    """

    file: str
    form: str
    fingerprint: str
    source: str = ""


@dataclass
class LeakReport:
    """What the gate looked at and what it found."""

    files_scanned: int = 0
    bytes_scanned: int = 0
    values_checked: int = 0
    short_values: int = 0
    hits: list[Hit] = field(default_factory=list)
    min_length: int = 8

    @property
    def ok(self) -> bool:
        """True when no value was found anywhere."""
        return not self.hits

    def summary(self) -> str:
        """One sentence for the phase report."""
        text = (
            f"searched {self.files_scanned} files ({self.bytes_scanned} bytes) for {self.values_checked} "
            f"secret values in all their encodings: {len(self.hits)} hits"
        )
        if self.short_values:
            text += (
                f"; {self.short_values} values shorter than {self.min_length} bytes were not searched "
                "(too short to tell from ordinary text)"
            )
        return text

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``phase_result.json``."""
        return {**asdict(self), "ok": self.ok}

    def raise_for_hits(self) -> None:
        """Fail the phase when anything leaked.

        Raises:
            SecretLeakError: lists the files and forms, never the values.
        """
        if self.hits:
            where = "; ".join(sorted({f"{h.file} ({h.form})" for h in self.hits}))
            raise SecretLeakError(
                f"{len(self.hits)} secret value occurrence(s) in run files: {where}",
                fix="the run is quarantined; find what printed the value, fix it, and re-run the phase",
            )


def _base64_cores(value: bytes) -> Iterator[tuple[int, bytes]]:
    """Base64 characters that depend only on ``value``, for each of its 3 alignments in a blob."""
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + value)
        start, end = -(-8 * shift // 6), (8 * (shift + len(value))) // 6
        yield shift, encoded[start:end]


def _text_forms(text: str) -> Iterator[tuple[str, str]]:
    once = json.dumps(text)[1:-1]
    yield "url", urllib.parse.quote(text, safe="")
    yield "url (path)", urllib.parse.quote(text)
    yield "url (form)", urllib.parse.quote_plus(text, safe="")
    yield "json", once
    yield "json (unicode)", json.dumps(text, ensure_ascii=False)[1:-1]
    yield "json (escaped twice)", json.dumps(once)[1:-1]
    yield "python repr", repr(text)[1:-1]
    for name, form in (("", text), ("json in ", once), ("json (escaped twice) in ", json.dumps(once)[1:-1])):
        yield f"{name}html", html.escape(form)  # nbconvert: a JSON body in a traceback, then HTML
        yield f"{name}html (quotes kept)", html.escape(form, quote=False)


def needles(value: bytes) -> dict[str, bytes]:
    """Every byte string that betrays ``value``, keyed by form; identical byte strings appear once.

    Needles may share prefixes or contain one another: :func:`scan` finds each of them anyway.
    Multi-line values (PEM keys) also give one needle per long base64 line, so a key cut short in a
    log is still found.

    Examples:
        >>> sorted(needles(b"changeme-42"))[:3]
        ['base64', 'base64 (embedded, shift 0)', 'base64 (embedded, shift 1)']
        >>> needles(b"a b/c")["url"]
        b'a%20b%2Fc'
    """
    forms: list[tuple[str, bytes]] = [("raw", value)]
    for alphabet, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
        forms += [(alphabet, encode(value)), (f"{alphabet} (no padding)", encode(value).rstrip(b"="))]
    for shift, core in _base64_cores(value):
        forms += [(f"base64 (embedded, shift {shift})", core)]
        forms += [(f"base64url (embedded, shift {shift})", core.translate(bytes.maketrans(b"+/", b"-_")))]
    try:
        forms += [(name, text.encode()) for name, text in _text_forms(value.decode())]
    except UnicodeDecodeError:
        forms += [("url", urllib.parse.quote_from_bytes(value, safe="").encode())]
        forms += [("python repr", repr(value)[2:-1].encode())]
    if b"\n" in value.strip():
        forms += [(f"line {n}", line) for n, line in enumerate(value.splitlines(), 1) if _LINE.match(line)]
    out: dict[str, bytes] = {}
    for name, needle in forms:
        if needle and needle not in out.values():
            out[name] = needle
    return out


class _Matcher:
    """All needles at once: an 8-byte anchor hash table (numpy) plus exact verification."""

    def __init__(self, owners: Mapping[bytes, list[tuple[int, str]]]) -> None:
        self.owners = owners
        self.anchors: dict[int, list[bytes]] = {}
        self.short = [n for n in owners if len(n) < _ANCHOR]
        for needle in owners:
            if len(needle) >= _ANCHOR:
                self.anchors.setdefault(int.from_bytes(needle[:_ANCHOR], "little"), []).append(needle)
        self.table = np.zeros(1 << _TABLE_BITS, dtype=bool)
        if self.anchors:
            keys = np.array(list(self.anchors), dtype=np.uint64)
            self.table[(keys * _MULTIPLIER) >> _SHIFT] = True
        self.overlap = max((len(n) for n in owners), default=1) - 1

    def find(self, buf: bytes, limit: int) -> Iterator[tuple[int, bytes]]:
        """Yield ``(position, needle)`` for every occurrence starting before ``limit``."""
        for offset in range(min(_ANCHOR, len(buf) - _ANCHOR + 1)):
            windows = np.frombuffer(buf, dtype="<u8", offset=offset, count=(len(buf) - offset) // _ANCHOR)
            for index in np.nonzero(self.table[(windows * _MULTIPLIER) >> _SHIFT])[0].tolist():
                pos = offset + _ANCHOR * index
                if pos >= limit:
                    continue
                for needle in self.anchors.get(int(windows[index]), ()):
                    if buf.startswith(needle, pos):
                        yield pos, needle
        for needle in self.short:
            pos = buf.find(needle)
            while 0 <= pos < limit:
                yield pos, needle
                pos = buf.find(needle, pos + 1)


def _chunks(stream: IO[bytes], overlap: int) -> Iterator[tuple[bytes, int]]:
    """Yield ``(buffer, limit)``: positions below ``limit`` are new; the tail is carried over."""
    buf = b""
    while True:
        data = stream.read(_CHUNK)
        if not data:
            if buf:
                yield buf, len(buf)
            return
        buf += data
        limit = len(buf) - overlap
        if limit > 0:
            yield buf, limit
            buf = buf[limit:]


def _scan_stream(stream: IO[bytes], matcher: _Matcher, found: set[tuple[int, str]]) -> int:
    """Add the (value index, form) pairs found to ``found`` (kept if the stream breaks); return bytes read."""
    size = 0
    for buf, limit in _chunks(stream, matcher.overlap):
        size += limit
        best: dict[tuple[int, int], tuple[int, str]] = {}
        for pos, needle in matcher.find(buf, limit):
            for value_index, form in matcher.owners[needle]:
                # At one position keep the longest form: "base64" rather than its embedded core.
                if len(needle) > best.get((pos, value_index), (0, ""))[0]:
                    best[(pos, value_index)] = (len(needle), form)
        found.update((value_index, form) for (_, value_index), (_, form) in best.items())
    return size


def _scan_file(path: Path, matcher: _Matcher) -> tuple[set[tuple[int, str]], int, str]:
    found: set[tuple[int, str]] = set()
    with path.open("rb") as raw:
        head = raw.read(6)
    for magic, opener in _MAGIC:
        if head.startswith(magic):
            try:
                with opener(path, "rb") as stream:
                    return found, _scan_stream(stream, matcher, found), " (decompressed)"
            except (OSError, EOFError, lzma.LZMAError):
                break  # damaged or not really compressed: also search the bytes as they are
    with path.open("rb") as stream:
        return found, _scan_stream(stream, matcher, found), ""


def _files(root: Path, exclude: Iterable[Path]) -> Iterator[Path]:
    skipped = [Path(p).resolve() for p in exclude]
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder, name)
            resolved = path.resolve()
            if path.is_symlink() or not path.is_file():
                continue
            if not any(resolved == s or s in resolved.parents for s in skipped):
                yield path


def scan(
    root: Path,
    values: Iterable[bytes] | Mapping[bytes, str],
    *,
    min_length: int = 8,
    exclude: Iterable[Path] = (),
    fingerprinter: Fingerprinter | None = None,
) -> LeakReport:
    """Search every regular file under ``root`` for every value in every form.

    Args:
        root: the run folder.
        values: the secret values; a mapping value → label (``secret ns/name key k``) makes hits
            say which secret leaked.
        min_length: values shorter than this are counted in ``short_values`` and not searched.
        exclude: files or folders not to search.
        fingerprinter: key of the hit fingerprints (default: ``K3SMIG_RUN_KEY`` or a random key).

    Returns:
        The report; ``report.ok`` is False when anything was found.

    Raises:
        ParameterError: ``root`` is not a folder.
    """
    if not Path(root).is_dir():
        raise ParameterError(f"{root} is not a folder", fix="pass the run folder (runs/<run-id>)")
    labels = dict(values) if isinstance(values, Mapping) else dict.fromkeys(values, "")
    report = LeakReport(min_length=min_length)
    wanted = sorted(v for v in labels if len(v) >= max(min_length, 1))
    report.values_checked, report.short_values = len(wanted), len(labels) - len(wanted)
    owners: dict[bytes, list[tuple[int, str]]] = {}
    for index, value in enumerate(wanted):
        for form, needle in needles(value).items():
            owners.setdefault(needle, []).append((index, form))
    matcher, fp = _Matcher(owners), fingerprinter or Fingerprinter.from_env()
    for path in _files(Path(root), exclude):
        found, size, note = _scan_file(path, matcher) if owners else (set(), path.stat().st_size, "")
        report.files_scanned, report.bytes_scanned = report.files_scanned + 1, report.bytes_scanned + size
        name = path.relative_to(root).as_posix() + note
        for index, form in sorted(found):
            value = wanted[index]
            report.hits.append(Hit(name, form, fp.fingerprint("", "", "", value), labels[value]))
    return report


def _make_private(root: Path) -> None:
    """Folders 0700, files 0600, symlinks untouched: a quarantined run is for its owner's eyes only."""
    os.chmod(root, 0o700)
    for folder, dirs, names in os.walk(root, followlinks=False):
        for name in dirs:
            if not os.path.islink(os.path.join(folder, name)):
                os.chmod(os.path.join(folder, name), 0o700)
        for name in names:
            if not os.path.islink(os.path.join(folder, name)):
                os.chmod(os.path.join(folder, name), 0o600)


def quarantine(run_dir: Path, *, report: LeakReport | None = None, reason: str = "") -> Path:
    """Move a leaking run aside (``runs/<id>`` → ``runs/<id>.quarantined``) so it is never archived.

    The moved folder and everything in it become private (0700 folders, 0600 files), and a
    ``QUARANTINED.txt`` says why and lists the files that hold secret values: paths only, never a
    value, a form or a fingerprint. An existing quarantine of the same run is kept (``.quarantined-2``…).

    Returns:
        The new folder.

    Raises:
        ParameterError: ``run_dir`` is not a folder.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ParameterError(f"run folder {run_dir} does not exist", fix="pass the folder of the run")
    target, n = run_dir.with_name(f"{run_dir.name}.quarantined"), 1
    while target.exists():
        n += 1
        target = run_dir.with_name(f"{run_dir.name}.quarantined-{n}")
    run_dir.rename(target)
    lines = [
        f"Run {run_dir.name} was quarantined at {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}.",
        reason or "The leak gate found secret values in its files.",
        "Do not archive or share this folder; delete it once the cause is fixed.",
    ]
    if report is not None:
        files = sorted({h.file for h in report.hits})
        lines += ["", f"Files holding secret values ({len(files)}):"] + [f"- {f}" for f in files]
    atomic_write(target, "QUARANTINED.txt", "\n".join(lines) + "\n", mode=0o600)
    _make_private(target)
    return target
