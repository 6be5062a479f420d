"""Reading YAML and JSON that someone else wrote: bounded, strict about duplicates, clear about errors.

Exports and parameters files come from outside. Plain ``yaml.safe_load`` accepts a billion-laughs file
(ten nested aliases: a few hundred bytes that any later walk expands to 10^9 nodes), keeps the last
of two duplicate keys without a word, and a non-UTF-8 file ends in a ``UnicodeDecodeError``
traceback. Here a file over :data:`MAX_FILE_BYTES` is refused before it is read, a document whose
aliases would add more than :data:`MAX_ALIAS_NODES` nodes (or refer to themselves) is refused as soon
as it is composed, duplicate keys are refused with their line, parse errors keep PyYAML's line and
column, and an encoding problem names the byte, the line and the likely cause (PowerShell's ``>``
writes UTF-16).

Every function takes the error class to raise, so a parameters file fails with a ``ParameterError``
and an export with a ``SourceError``; limit breaches raise :class:`~k3smig_lib.errors.LimitError`.
"""

from __future__ import annotations

import codecs
import json
import json.decoder
import json.scanner
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from k3smig_lib.errors import K3sMigError, LimitError

#: Largest export or manifest file read, in bytes (a 64 MiB YAML file already takes PyYAML a minute).
MAX_FILE_BYTES = 64 << 20
#: Largest export file a caller may allow when it streams (:mod:`k3smig_lib.core.yamlstream`): memory
#: then holds one object at a time, and each document or List item is still held to :data:`MAX_FILE_BYTES`.
MAX_STREAM_BYTES = 16 << 30
#: Largest parameters file read, in bytes.
MAX_PARAMETERS_BYTES = 1 << 20
#: Nodes aliases may add to one document when expanded (hand-written anchors add a few dozen).
MAX_ALIAS_NODES = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"
_UTF16_32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass(frozen=True)
class Document:
    """One parsed document and where it starts (1-based line), for messages that point at it."""

    data: Any
    line: int


def read_text(path: Path, *, error: type[K3sMigError], limit: int = MAX_FILE_BYTES, what: str = "file") -> str:
    """Read a UTF-8 text file (a UTF-8 BOM is accepted) of at most ``limit`` bytes.

    Raises:
        LimitError: the file is larger than ``limit`` (the limit is named).
        error: the file cannot be read, is a folder, or is not UTF-8 (byte, line and likely cause named).
    """
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise error(f"{what} {path} is a folder, not a file", fix="give the path of a file")
        if size > limit:
            raise LimitError(f"{what} {path} has {size} bytes, more than the limit of {limit} bytes "
                             f"({limit >> 20} MiB)", fix="split it into smaller files (one per namespace or kind)")
        raw = path.read_bytes()
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}", fix="check the path and its permissions") from e
    if raw.startswith(_UTF16_32_BOMS):
        raise error(f"{what} {path} is UTF-16 or UTF-32 encoded (PowerShell's '>' writes UTF-16), not UTF-8",
                    fix="re-save it as UTF-8 (e.g. `kubectl get … -o yaml | Out-File -Encoding utf8`)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise error(f"{what} {path} is not UTF-8: byte {raw[e.start]:#04x} at offset {e.start} (line {line})",
                    fix="re-save the file as UTF-8") from None


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and documents whose aliases expand too far."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConstructorError(None, None, f"duplicate key {key!r} (first at line {seen[key]}); "
                                       "YAML keeps only the last one", key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_nodes(root: Node, name: str) -> int:
    """Nodes of ``root`` with every alias expanded, computed once per distinct node (cycles refused)."""
    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        if key in active:
            raise LimitError(f"{name}: line {node.start_mark.line + 1}: an alias refers to the node that contains it "
                             "(a recursive structure)", fix="remove the recursive anchor")
        active.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        memo[key] = total
        return total

    total = size(root)
    return total - len(memo)


def _yaml_problem(e: yaml.YAMLError, name: str) -> str:
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        mark = e.problem_mark
        context = f" ({e.context})" if e.context else ""
        return f"{name}: line {mark.line + 1}, column {mark.column + 1}: {e.problem}{context}"
    return f"{name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"


def load_yaml_documents(text: str, name: str, *, error: type[K3sMigError]) -> Iterator[Document]:
    """Parse every YAML document of ``text``, bounded and strict.

    Args:
        text: the file content.
        name: the file, for messages.
        error: class raised on a syntax error or a duplicate key.

    Yields:
        Each document with its first line (empty documents included, as ``None``).

    Raises:
        LimitError: aliases expand past :data:`MAX_ALIAS_NODES` nodes, refer to themselves, or the nesting
            is deeper than Python's recursion limit.
        error: invalid YAML or a duplicate key (line and column named).
    """
    loader = _BoundedLoader(text)
    loader.name = name
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node said there is one
                break
            added = _expanded_nodes(node, name)
            if added > MAX_ALIAS_NODES:
                raise LimitError(
                    f"{name}: the document at line {node.start_mark.line + 1} expands its aliases into more than "
                    f"{MAX_ALIAS_NODES} extra nodes (a 'billion laughs' document?)",
                    fix="write the document out without nested anchors and aliases (kubectl never writes them)")
            yield Document(loader.construct_document(node), node.start_mark.line + 1)
    except yaml.YAMLError as e:
        raise error(_yaml_problem(e, name), fix="fix the YAML syntax at that line") from None
    except RecursionError:
        raise LimitError(f"{name}: nesting is deeper than this reader allows", fix="flatten the document") from None
    finally:
        loader.dispose()


def load_yaml(text: str, name: str, *, error: type[K3sMigError]) -> Any:
    """The single document of ``text`` (``None`` when empty); more than one document is an error."""
    docs = list(load_yaml_documents(text, name, error=error))
    if len(docs) > 1:
        raise error(f"{name}: expected one YAML document, found {len(docs)} (line {docs[1].line})",
                    fix="keep one document in this file")
    return docs[0].data if docs else None


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out


# The pure-Python JSON scanner, used only to locate a duplicate key (absent from the typeshed stubs).
_JSON_OBJECT: Callable[..., tuple[list[tuple[str, Any]], int]] = getattr(json.decoder, "JSONObject")  # noqa: B009
_PY_MAKE_SCANNER: Callable[[json.JSONDecoder], Any] = getattr(json.scanner, "py_make_scanner")  # noqa: B009


def _duplicate_line(text: str, key: str) -> int:
    """Line of the JSON object holding a duplicate ``key`` (re-parsed with the pure-Python scanner)."""
    found: list[int] = []
    decoder = json.JSONDecoder()

    def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
        text_, start = s_and_end
        pairs, end = _JSON_OBJECT(s_and_end, *args[:2], None, lambda p: p, *args[4:])
        keys = [k for k, _ in pairs]
        if not found and len(keys) != len(set(keys)) and key in keys:
            found.append(text_.count("\n", 0, start) + 1)
        return dict(pairs), end

    setattr(decoder, "parse_object", parse_object)  # noqa: B010 - internals absent from the stubs
    setattr(decoder, "scan_once", _PY_MAKE_SCANNER(decoder))  # noqa: B010
    try:
        decoder.decode(text)
    except ValueError:
        pass
    return found[0] if found else 0


def load_json(text: str, name: str, *, error: type[K3sMigError]) -> Any:
    """Parse JSON, refusing duplicate keys with the line of the object that holds them.

    Raises:
        error: invalid JSON (line and column named) or a duplicate key.
        LimitError: nesting deeper than Python's recursion limit.
    """
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKeyError as e:
        line = _duplicate_line(text, e.key)
        raise error(f"{name}: line {line}: duplicate key {e.key!r} in one object; JSON parsers keep only one of them",
                    fix="remove the duplicate key") from None
    except json.JSONDecodeError as e:
        raise error(f"{name}: line {e.lineno}, column {e.colno}: {e.msg}",
                    fix="fix the JSON syntax at that line") from None
    except RecursionError:
        raise LimitError(f"{name}: nesting is deeper than this reader allows", fix="flatten the document") from None
