"""Streaming reads of big exports: one object at a time, libyaml's C parser where present, same bounds.

:mod:`k3smig_lib.core.yamlio` reads a whole file and composes a whole document before building it: a
10,000-object ``kind: List`` is one document, so PyYAML's pure-Python loader spends minutes and a
gigabyte or more on it. Here the parser's *events* (from libyaml's C parser when PyYAML was built
with it, else from PyYAML's own parser, with a one-time notice) are turned into Python values directly,
and the ``items`` of a top-level List are handed out one by one as each is complete, so memory holds one
object, never the export. JSON is decoded item by item from a sliding buffer the same way.

The bounds of :mod:`~k3smig_lib.core.yamlio` hold here too, checked as events arrive (a billion-laughs
document fails at the alias that crosses :data:`~k3smig_lib.core.yamlio.MAX_ALIAS_NODES`, before
anything is expanded): alias expansion, recursive aliases, nesting depth, duplicate keys, UTF-16/32
files, and a size limit per object (:data:`~k3smig_lib.core.yamlio.MAX_FILE_BYTES`) instead of per file.
Values are exactly what the safe loader builds (same implicit types, merge keys, explicit tags).
Any problem is reported the way the whole-file reader reports it: for files it can read, the
message is its own (line, column, the first line of a duplicate key).

Items of a top-level ``items`` sequence that arrive before ``kind`` (``kubectl`` sorts keys, so
``items`` always comes first) are set aside in a temporary file until ``kind`` says whether the
document is a List; a document that turns out not to be one is rebuilt whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from k3smig_lib.core import yamlio
from k3smig_lib.core.jsonstream import iter_json_items, spill, unspill
from k3smig_lib.errors import K3sMigError, LimitError
from k3smig_lib.log import logger

#: Deepest nesting of collections accepted (kubectl objects nest about 15 levels).
MAX_DEPTH = 500
_STR = "tag:yaml.org,2002:str"
_MAP_TAGS = (None, "!", "tag:yaml.org,2002:map")
_SEQ_TAGS = (None, "!", "tag:yaml.org,2002:seq")
_MISS = object()
_MERGE = object()

_CParser: Any = getattr(yaml, "cyaml", None) and getattr(yaml.cyaml, "CParser", None)  # None without libyaml
_noticed: list[bool] = []


def has_c_parser() -> bool:
    """True when PyYAML was built with libyaml (the fast parser)."""
    return _CParser is not None


class _PyParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """PyYAML's pure-Python parser alone (events only): the fallback without libyaml."""

    def __init__(self, stream: IO[bytes]) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


def make_parser(stream: IO[bytes], *, fast: bool = True) -> Any:
    """An event parser over ``stream``: libyaml's when present and ``fast``, else PyYAML's (noticed once)."""
    if fast and _CParser is not None:
        return _CParser(stream)
    if not _noticed:
        _noticed.append(True)
        why = "PyYAML was built without libyaml" if _CParser is None else "the C parser was not wanted"
        logger.warning("%s: exports are parsed by PyYAML's pure-Python parser, several times slower "
                       "(a PyYAML wheel built with libyaml makes them fast)", why)
    return _PyParser(stream)


@dataclass(frozen=True)
class Streamed:
    """One value out of a file: a whole document, or one item of a top-level List, and where it is."""

    data: Any
    document: int
    line: int
    item: int = 0  # 1-based index within the List's items; 0 for a whole document

    def origin(self, path: Path) -> str:
        """``file, document n (line l)[, item i]``, as the whole-file reader names objects."""
        where = f"{path}, document {self.document} (line {self.line})"
        return f"{where}, item {self.item}" if self.item else where


class _ProblemError(ValueError):
    """A reason to refuse the file, with the event where it was found (never escapes: see :func:`stream_values`)."""

    def __init__(self, message: str, mark: Any, limit: bool = False) -> None:
        super().__init__(message)
        self.mark, self.limit = mark, limit


class _Builder:
    """Python values from parser events, as ``yaml.safe_load`` builds them, with the reader's bounds."""

    def __init__(self, parser: Any) -> None:
        self.get = parser.get_event
        self.peek = parser.peek_event
        self.constructor = SafeConstructor()
        self.resolvers = Resolver.yaml_implicit_resolvers
        self.cache: dict[str, Any] = {}
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open: set[str] = set()
        self.added = 0

    def new_document(self) -> None:
        self.anchors, self.open, self.added = {}, set(), 0

    def _tagged(self, tag: str, value: str, mark: Any) -> Any:
        if tag == _STR:
            return value
        make = SafeConstructor.yaml_constructors.get(tag)
        if make is None or tag.endswith((":seq", ":map", ":omap", ":pairs", ":set")):
            raise _ProblemError(f"could not determine a constructor for the tag {tag!r}", mark)
        return make(self.constructor, ScalarNode(tag, value))

    def _plain(self, value: str) -> Any:
        found = self.cache.get(value, _MISS)
        if found is not _MISS:
            return found
        result: Any = value
        for tag, regexp in self.resolvers.get(value[0] if value else "", []):
            if regexp.match(value):
                result = _MERGE if tag == "tag:yaml.org,2002:merge" else self._tagged(tag, value, None)
                break
        if len(self.cache) < 50_000 and len(value) < 64:
            self.cache[value] = result
        return result

    def scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            return self._plain(event.value) if event.implicit[0] else event.value
        return self._tagged(tag, event.value, event.start_mark)

    def alias(self, event: Any) -> tuple[Any, int]:
        name = event.anchor
        if name in self.open:
            raise _ProblemError("an alias refers to the node that contains it (a recursive structure)",
                           event.start_mark, limit=True)
        if name not in self.anchors:
            raise _ProblemError(f"found undefined alias {name!r}", event.start_mark)
        value, size = self.anchors[name]
        self.added += size
        if self.added > yamlio.MAX_ALIAS_NODES:
            raise _ProblemError(f"the document expands its aliases into more than {yamlio.MAX_ALIAS_NODES} extra nodes "
                           "(a 'billion laughs' document?)", event.start_mark, limit=True)
        return value, size

    def value(self, first: Any) -> Any:
        """Build the value that starts with event ``first`` (its events are consumed)."""
        return self._build(first)[0]

    def _build(self, first: Any) -> tuple[Any, int]:  # noqa: C901 - one loop keeps it fast and flat
        kind = type(first)
        if kind is ScalarEvent:
            result = self.scalar(first)
            if first.anchor:
                self.anchors[first.anchor] = (result, 1)
            return (None if result is _MERGE else result), 1
        if kind is AliasEvent:
            return self.alias(first)
        # frame: [container, is_map, key, size, anchor, merges, start event]
        stack: list[list[Any]] = [self._open(first)]
        get = self.get
        while True:
            event = get()
            kind = type(event)
            if kind is ScalarEvent:
                value, size = self.scalar(event), 1
                if event.anchor:
                    self.anchors[event.anchor] = (value, 1)
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                if len(stack) >= MAX_DEPTH:
                    raise _ProblemError("nesting is deeper than this reader allows", event.start_mark, limit=True)
                stack.append(self._open(event))
                continue
            elif kind is AliasEvent:
                value, size = self.alias(event)
            else:  # MappingEndEvent / SequenceEndEvent
                frame = stack.pop()
                value, size = self._close(frame), frame[3]
                if not stack:
                    return value, size
            top = stack[-1]
            top[3] += size
            if not top[1]:
                top[0].append(None if value is _MERGE else value)
            elif top[2] is _MISS:
                top[2] = value
                top[6] = event
            else:
                self._set(top, value)

    def _open(self, event: Any) -> list[Any]:
        is_map = type(event) is MappingStartEvent
        if event.tag not in (_MAP_TAGS if is_map else _SEQ_TAGS):
            raise _ProblemError(f"the tag {event.tag!r} is not supported in an export", event.start_mark)
        if event.anchor:
            self.open.add(event.anchor)
        return [{} if is_map else [], is_map, _MISS, 1, event.anchor, None, event]

    def _set(self, frame: list[Any], value: Any) -> None:
        key, frame[2] = frame[2], _MISS
        mapping = frame[0]
        if key is _MERGE:
            merges = frame[5] = frame[5] or []
            if isinstance(value, dict):
                merges.append([value])
            elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
                merges.append(value)
            else:
                raise _ProblemError("expected a mapping or list of mappings for merging", frame[6].start_mark)
            return
        if isinstance(key, dict | list):
            raise _ProblemError("found unhashable key", frame[6].start_mark)
        if key in mapping:
            raise _ProblemError(f"duplicate key {key!r}; YAML keeps only the last one", frame[6].start_mark)
        mapping[key] = value

    def _close(self, frame: list[Any]) -> Any:
        value = frame[0]
        if frame[5]:  # merge keys: explicit keys win, then the first mapping named, as PyYAML does
            merged: dict[Any, Any] = {}
            for group in frame[5]:
                for mapping in reversed(group):
                    merged.update(mapping)
            merged.update(value)
            value = merged
        if frame[4]:
            self.open.discard(frame[4])
            self.anchors[frame[4]] = (value, frame[3])
        return value


def _span(first: Any, last: Any) -> int:
    """Characters from the start of event ``first`` to the end of event ``last``."""
    return int(last.end_mark.index) - int(first.start_mark.index)


def _check_encoding(path: Path, error: type[K3sMigError]) -> None:
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        yamlio.read_text(path, error=error, what="export file")  # raises its UTF-16/32 message


def _items_of(builder: _Builder, limit: int) -> Iterator[Any]:
    """Items of a block sequence, one at a time (the SequenceStart event is consumed)."""
    while True:
        event = builder.get()
        if type(event) is SequenceEndEvent:
            return
        item = builder.value(event)
        end = builder.peek().start_mark.index
        if end - event.start_mark.index > limit:
            raise _ProblemError(f"an item is larger than the limit of {limit} bytes ({limit >> 20} MiB)",
                           event.start_mark, limit=True)
        yield item


def _document(builder: _Builder, number: int, limit: int) -> Iterator[Streamed]:
    """The next document: a List's items one by one, anything else whole."""
    builder.get()  # DocumentStart
    builder.new_document()
    first = builder.get()
    line = first.start_mark.line + 1
    if type(first) is not MappingStartEvent or first.anchor or first.tag not in _MAP_TAGS:
        yield Streamed(builder.value(first), number, line)
        builder.get()  # DocumentEnd
        return
    doc: dict[Any, Any] = {}
    held: list[Any] = []
    spilled: IO[bytes] | None = None
    streamed = collected = False
    count = 0
    try:
        while type(builder.peek()) is not MappingEndEvent:
            key = builder.value(builder.get())
            if isinstance(key, dict | list):
                raise _ProblemError("found unhashable key", first.start_mark)
            if key in doc:  # the whole-file reader gives the precise message (see _refuse)
                raise _ProblemError(f"duplicate key {key!r}; YAML keeps only the last one", builder.peek().start_mark)
            if key == "items" and type(builder.peek()) is SequenceStartEvent and not builder.peek().anchor:
                builder.get()
                known = str(doc.get("kind", ""))
                for item in _items_of(builder, limit):
                    count += 1
                    if known.endswith("List"):
                        yield Streamed(item, number, line, count)
                    else:
                        spilled = spill(held, spilled, item)
                streamed, collected = known.endswith("List"), not known.endswith("List")
                doc[key] = None
                continue
            doc[key] = builder.value(builder.get())
        end = builder.get()  # MappingEnd
        builder.get()  # DocumentEnd
        if _span(first, end) > limit and not (streamed or collected):  # items were bounded one by one
            raise _ProblemError(f"a document is larger than the limit of {limit} bytes ({limit >> 20} MiB)",
                           first.start_mark, limit=True)
        if collected:
            if str(doc.get("kind", "")).endswith("List"):
                for index, item in enumerate(unspill(held, spilled), 1):
                    yield Streamed(item, number, line, index)
                return
            doc["items"] = list(unspill(held, spilled))
        if not streamed:
            yield Streamed(doc, number, line)
    finally:
        if spilled is not None:
            spilled.close()


def _yaml_values(path: Path, limit: int, fast: bool) -> Iterator[Streamed]:
    with path.open("rb") as fh:
        parser = make_parser(fh, fast=fast)
        builder = _Builder(parser)
        builder.get()  # StreamStart
        number = 0
        while type(builder.peek()) is not StreamEndEvent:
            number += 1
            yield from _document(builder, number, limit)


def _refuse(path: Path, error: type[K3sMigError], problem: str, limit: bool) -> K3sMigError:
    """The whole-file reader's own message for a bad file it can read, else ``problem``."""
    try:
        if path.stat().st_size <= yamlio.MAX_FILE_BYTES:
            text = yamlio.read_text(path, error=error, what="export file")
            if path.suffix == ".json":
                yamlio.load_json(text, str(path), error=error)
            else:
                for _ in yamlio.load_yaml_documents(text, str(path), error=error):
                    pass
    except K3sMigError as e:
        return e
    fix = "remove the aliases, flatten or split the document" if limit else "fix the file at that line"
    return (LimitError if limit else error)(problem, fix=fix)


def stream_values(path: Path, *, error: type[K3sMigError], limit: int = yamlio.MAX_FILE_BYTES,
                  file_limit: int = yamlio.MAX_FILE_BYTES, fast: bool = True) -> Iterator[Streamed]:
    """Every document of a YAML or JSON export file, a top-level List's items one at a time.

    Args:
        path: the file (``.json`` is read as JSON, anything else as YAML).
        error: class raised for a file that is not valid (syntax, duplicate key, encoding).
        limit: largest document or List item, in bytes.
        file_limit: largest file, in bytes (up to :data:`~k3smig_lib.core.yamlio.MAX_STREAM_BYTES`).
        fast: use libyaml when present (``False`` forces PyYAML's pure-Python parser).

    Raises:
        LimitError: an alias expansion, nesting or size bound is crossed.
        error: the file is not valid YAML/JSON or not UTF-8.
    """
    try:
        size = path.stat().st_size
        if size > file_limit:
            raise LimitError(f"export file {path} has {size} bytes, more than the limit of {file_limit} bytes "
                             f"({file_limit >> 20} MiB)",
                             fix="split it (one file per namespace or kind), or raise the limit (k3smig clean "
                                 "--max-file-mib): memory stays bounded whatever the file size")
        _check_encoding(path, error)
    except OSError as e:
        raise error(f"cannot read export file {path}: {e.strerror or e}",
                    fix="check the path and its permissions") from e
    try:
        if path.suffix == ".json":
            for index, (item, listed) in enumerate(iter_json_items(path, limit=limit), 1):
                yield Streamed(item, 1, 1, index if listed else 0)
        else:
            yield from _yaml_values(path, limit, fast)
    except _ProblemError as e:
        where = f"line {e.mark.line + 1}, column {e.mark.column + 1}: " if e.mark is not None else ""
        raise _refuse(path, error, f"{path}: {where}{e}", e.limit) from None
    except (yaml.YAMLError, ValueError, UnicodeDecodeError) as e:
        raise _refuse(path, error, f"{path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                      False) from None
    except ConstructorError as e:  # pragma: no cover - a YAMLError, kept for clarity
        raise _refuse(path, error, f"{path}: {e}", False) from None
    except RecursionError:
        raise LimitError(f"{path}: nesting is deeper than this reader allows", fix="flatten the document") from None
