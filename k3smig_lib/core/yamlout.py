"""YAML out, fast and byte-identical: libyaml's emitter where it writes what PyYAML's would.

Manifests are written with sorted keys and block style, and re-runs must write identical bytes (the
GitOps tree, the run's hashes). Two things make ``yaml.safe_dump`` slow on big trees: the
representer, which walks every value through a generic dispatch with alias tracking, and the
pure-Python emitter. Here plain JSON-like values (dicts, lists, strings, numbers, booleans, null,
nothing shared) become nodes in one direct walk, and libyaml's emitter writes them — the same text
except where a long string is *folded* across lines (both wrap at ``width``, not at the same
places). So an object whose strings could be folded — a line break, a space in a long string, a
character outside printable ASCII — goes through PyYAML's emitter; anything unusual (dates, bytes,
a container used twice) through ``yaml.safe_dump`` itself.
"""

from __future__ import annotations

from io import StringIO
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_CDumper: Any = getattr(yaml, "CSafeDumper", None)
#: Strings up to this length are never folded, whatever they hold (half the narrowest width used).
_SHORT = 40
_STR, _INT, _BOOL = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:bool"
_NULL, _MAP, _SEQ = "tag:yaml.org,2002:null", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class _Unusual(Exception):  # noqa: N818 - a private signal, never raised out of this module
    """A value the direct walk leaves to PyYAML's representer."""


class _Walk:
    """Nodes for a JSON-like tree, as SafeRepresenter(sort_keys, block style) makes them."""

    def __init__(self, sort_keys: bool) -> None:
        self.sort_keys = sort_keys
        self.seen: set[int] = set()
        self.foldable = False

    def node(self, value: Any) -> Node:
        kind = type(value)
        if kind is str:
            if len(value) > _SHORT and (" " in value or not value.isascii() or not value.isprintable()) \
                    or "\n" in value:
                self.foldable = True
            return ScalarNode(_STR, value)
        if kind is dict or kind is list:
            if id(value) in self.seen:
                raise _Unusual  # the representer would write an anchor and an alias
            self.seen.add(id(value))
            if kind is list:
                return SequenceNode(_SEQ, [self.node(v) for v in value], flow_style=False)
            items = sorted(value.items()) if self.sort_keys else list(value.items())
            return MappingNode(_MAP, [(self.node(k), self.node(v)) for k, v in items], flow_style=False)
        if kind is bool:
            return ScalarNode(_BOOL, "true" if value else "false")
        if kind is int:
            return ScalarNode(_INT, str(value))
        if value is None:
            return ScalarNode(_NULL, "null")
        raise _Unusual


def dump(obj: Any, **options: Any) -> str:
    """``yaml.safe_dump(obj, **options)`` (block style options only), through libyaml's emitter when that is the same.

    Args:
        obj: the value to write.
        options: ``sort_keys``, ``default_flow_style=False``, ``allow_unicode``, ``width``…
    """
    if _CDumper is None or options.get("default_flow_style", False) is not False:
        return str(yaml.safe_dump(obj, **options))
    walk = _Walk(bool(options.get("sort_keys", True)))
    try:
        node = walk.node(obj)
    except (_Unusual, TypeError):  # TypeError: keys of mixed types do not sort
        return str(yaml.safe_dump(obj, **options))
    out = StringIO()
    kwargs = {k: v for k, v in options.items() if k not in ("sort_keys", "default_flow_style")}
    dumper = (yaml.SafeDumper if walk.foldable else _CDumper)(out, **kwargs)
    dumper.open()
    dumper.serialize(node)
    dumper.close()
    return out.getvalue()


def dump_all(documents: list[Any], **options: Any) -> str:
    """``yaml.safe_dump_all(documents, **options)``, each mapping through :func:`dump`.

    PyYAML starts every document after the first with ``---`` and ends none (for non-empty
    mappings); anything else (a scalar, a list, an empty mapping, an explicit start or end) is left
    to ``yaml.safe_dump_all`` itself.
    """
    if any(type(d) is not dict or not d for d in documents) or options.get("explicit_start") \
            or options.get("explicit_end"):
        return str(yaml.safe_dump_all(documents, **options))
    return "---\n".join(dump(d, **options) for d in documents)
