"""JSON exports read item by item from a sliding buffer: ``kubectl get -o json`` Lists in bounded memory.

``json.load`` builds the whole List before the first item can be looked at. Here the top-level object
is walked key by key and each value is decoded with the C decoder's ``raw_decode`` from a buffer that
holds a few chunks of the file: the ``items`` of a List come out one at a time. Duplicate keys are
refused as :func:`k3smig_lib.core.yamlio.load_json` refuses them. Items read before ``kind`` says
the document is a List (``kubectl`` prints ``items`` first) wait in a temporary file, not in memory.
"""

from __future__ import annotations

import json
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from k3smig_lib.errors import WriteError

#: Bytes read from the file at a time.
CHUNK = 1 << 20
#: Items held in memory before the rest of a List whose ``kind`` is not yet known goes to a temp file.
SPILL_AFTER = 64
_WHITESPACE = " \t\n\r"


class DuplicateKeyError(ValueError):
    """Two equal keys in one JSON object."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"duplicate key {key!r} in one object")
        out[key] = value
    return out


def spill(held: list[Any], fh: IO[bytes] | None, item: Any) -> IO[bytes] | None:
    """Keep ``item`` for later: in ``held`` while it is short, then in a temporary file (returned)."""
    if fh is None and len(held) < SPILL_AFTER:
        held.append(item)
        return None
    try:
        if fh is None:
            fh = tempfile.TemporaryFile(prefix="k3smig-list-")
        pickle.dump(item, fh, protocol=pickle.HIGHEST_PROTOCOL)
    except OSError as e:
        raise WriteError(f"cannot write a temporary file in {tempfile.gettempdir()}: {e.strerror or e}",
                         fix="free disk space there (a List's items wait there until its kind is read) "
                             "or set TMPDIR") from e
    return fh


def unspill(held: list[Any], fh: IO[bytes] | None) -> Iterator[Any]:
    """Items kept by :func:`spill`, in order."""
    yield from held
    if fh is None:
        return
    fh.seek(0)
    while True:
        try:
            yield pickle.load(fh)
        except EOFError:
            return


class _Buffer:
    """A window on a text file that grows on demand and forgets what was consumed."""

    def __init__(self, fh: IO[str], limit: int) -> None:
        self.fh, self.limit = fh, limit
        self.text, self.pos, self.eof = "", 0, False
        self.decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates)

    def more(self) -> bool:
        if self.eof:
            return False
        chunk = self.fh.read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.text = self.text[self.pos:] + chunk
        self.pos = 0
        return True

    def skip(self) -> str:
        """Skip whitespace; the next character (``""`` at the end of the file)."""
        while True:
            text, pos = self.text, self.pos
            while pos < len(text) and text[pos] in _WHITESPACE:
                pos += 1
            self.pos = pos
            if pos < len(text):
                return text[pos]
            if not self.more():
                return ""

    def expect(self, char: str) -> None:
        found = self.skip()
        if found != char:
            raise ValueError(f"expected {char!r} at offset {self.pos}, found {found or 'the end of the file'!r}")
        self.pos += 1

    def value(self) -> Any:
        """Decode the next value, reading more of the file while it is cut off."""
        self.skip()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError:
                # Cut off by the end of the buffer, or really invalid: only more text tells.
                if self.eof:
                    raise
                if len(self.text) - self.pos > self.limit:
                    raise ValueError(f"a value is larger than the limit of {self.limit} bytes") from None
                self.more()
                continue
            if end == len(self.text) and not self.eof and self.more():
                continue  # a number may go on in the next chunk
            self.pos = end
            return value


def _document(buf: _Buffer) -> Iterator[tuple[Any, bool]]:
    if buf.skip() != "{":
        yield buf.value(), False
        return
    buf.expect("{")
    doc: dict[str, Any] = {}
    held: list[Any] = []
    spilled: IO[bytes] | None = None
    streamed = False
    try:
        while buf.skip() != "}":
            if doc:
                buf.expect(",")
            key = buf.value()
            if key in doc:
                raise DuplicateKeyError(f"duplicate key {key!r} in one object")
            buf.expect(":")
            if key == "items" and buf.skip() == "[":
                buf.expect("[")
                listed = str(doc.get("kind", "")).endswith("List")
                first = True
                while buf.skip() != "]":
                    if not first:
                        buf.expect(",")
                    first = False
                    item = buf.value()
                    if listed:
                        yield item, True
                    else:
                        spilled = spill(held, spilled, item)
                buf.expect("]")
                streamed, doc[key] = listed, None
                continue
            doc[str(key)] = buf.value()
        buf.expect("}")
        if buf.skip():
            raise ValueError(f"extra data after the JSON document at offset {buf.pos}")
        if streamed:
            return
        if "items" in doc and doc["items"] is None:
            if str(doc.get("kind", "")).endswith("List"):
                for item in unspill(held, spilled):
                    yield item, True
                return
            doc["items"] = list(unspill(held, spilled))
        yield doc, False
    finally:
        if spilled is not None:
            spilled.close()


def iter_json_items(path: Path, *, limit: int) -> Iterator[tuple[Any, bool]]:
    """The JSON document of ``path``: ``(item, True)`` for each item of a List, else ``(document, False)``.

    Raises:
        ValueError: invalid JSON (``json.JSONDecodeError``), a duplicate key, or a value over ``limit`` bytes.
        UnicodeDecodeError: the file is not UTF-8.
    """
    with path.open("r", encoding="utf-8-sig") as fh:
        yield from _document(_Buffer(fh, limit))
