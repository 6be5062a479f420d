"""Who set a field of an exported object: a field manager, the user's last apply, or nobody.

K27 may drop a field only when the API server set it. An export tells who wrote what in two places,
both read before M6 and M10 strip them:

* ``metadata.managedFields`` (Kubernetes ≥ 1.18): each manager's set of fields, in the ``FieldsV1``
  trie (``f:name`` for a field, ``k:{json}`` for an item of a keyed list, ``v:json`` for a set
  member, ``i:N`` for a positional item, ``.`` for the node itself). A field in no manager's set was
  defaulted by the server. ``kubectl create`` and client-side apply (operation ``Update``) also own
  the defaults the server filled in during that request, so they keep them: never a false drop.
* ``kubectl.kubernetes.io/last-applied-configuration``, when there are no managedFields (``kubectl get``
  omits them by default since 1.21): what the user last applied.

An object with neither was still *read from a server* when it carries server-set metadata (``uid``,
``resourceVersion``); a value equal to the server's default can then go, since the target's server
sets the same value again. An object with none of these (a hand-written or already cleaned manifest)
is authored throughout: nothing in it counts as defaulted, which keeps cleaning idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from k3smig_lib.core.objects import Obj, annotations_of

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

#: One step of a path into an object: a field name, or ``(index, item)`` for an item of a list.
Step = str | tuple[int, Any]
#: List item fields that identify an item when last-applied is matched against the live list.
_ITEM_KEYS = ("name", "containerPort", "port", "mountPath", "devicePath", "ip", "key")


def _fields_sets(meta: Obj) -> list[dict[str, Any]]:
    sets = []
    for entry in meta.get("managedFields") or []:
        fields = entry.get("fieldsV1") if isinstance(entry, dict) else None
        if isinstance(fields, dict):
            sets.append(fields)
    return sets


def _item_key_matches(key: str, item: Any) -> bool:
    """True when a ``k:{json}`` key names ``item`` (every key field equal in the live item)."""
    try:
        wanted = json.loads(key[2:])
    except ValueError:
        return False
    return isinstance(wanted, dict) and isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items())


def _child(node: dict[str, Any], step: Step) -> Any:
    """The trie node below ``node`` for one step, or ``None`` when the manager does not own it."""
    if isinstance(step, str):
        return node.get(f"f:{step}")
    index, item = step
    for key, child in node.items():
        if key.startswith("k:") and _item_key_matches(key, item):
            return child
        if key.startswith("v:") and key[2:] == json.dumps(item, separators=(",", ":")):
            return child
    return node.get(f"i:{index}")


def _claims(fields: dict[str, Any], path: Sequence[Step]) -> bool:
    node: Any = fields
    for depth, step in enumerate(path):
        node = _child(node, step) if isinstance(node, dict) else None
        if node is None:
            return False
        if node == {} and depth < len(path) - 1:  # the manager owns this whole value (atomic struct or list)
            return True
    return True


def _applied_item(items: list[Any], step: tuple[int, Any]) -> Any:
    index, item = step
    if isinstance(item, dict):
        for key in _ITEM_KEYS:
            if key in item:
                return next((a for a in items if isinstance(a, dict) and a.get(key) == item[key]), None)
    return items[index] if index < len(items) else None


def _applied_has(applied: Any, path: Sequence[Step]) -> bool:
    node = applied
    for step in path:
        if isinstance(step, str):
            if not isinstance(node, dict) or step not in node:
                return False
            node = node[step]
        else:
            if not isinstance(node, list):
                return False
            node = _applied_item(node, step)
            if node is None:
                return False
    return True


@dataclass(frozen=True)
class Provenance:
    """What an exported object says about who wrote its fields."""

    managed: tuple[dict[str, Any], ...] = ()
    applied: Any = None
    server_read: bool = False

    @classmethod
    def of(cls, obj: Obj) -> Provenance:
        """Read the provenance of ``obj`` (before M6 and M10 strip its evidence)."""
        meta = obj.get("metadata") or {}
        applied = None
        raw = annotations_of(obj).get(LAST_APPLIED)
        if raw:
            try:
                applied = json.loads(raw)
            except ValueError:
                applied = {}  # unreadable: every field counts as applied, none as defaulted
        return cls(tuple(_fields_sets(meta)), applied, bool(meta.get("uid") or meta.get("resourceVersion")))

    @property
    def authored(self) -> bool:
        """True for a manifest no server returned (hand-written, or cleaned already): nothing is a default."""
        return not (self.managed or self.applied is not None or self.server_read)

    def defaulted(self, path: Sequence[Step]) -> str:
        """Why nobody but the server can have set the field at ``path``; ``""`` when someone may have.

        A field that a manager owns or that the last apply holds was set by someone: it stays. Otherwise
        a manager that owns the field's holder (the container, the spec) wrote the holder without it,
        so the server added it; the last apply without it says the same. With neither, a field of an
        object read from a server counts as defaulted (its value is the default the target sets too).
        """
        if any(_claims(fields, path) for fields in self.managed):
            return ""
        if self.applied is not None and (not isinstance(self.applied, dict) or not self.applied
                                         or _applied_has(self.applied, path)):
            return ""
        if any(_claims(fields, path[:-1]) for fields in self.managed):
            return "its holder's field manager did not set it (managedFields)"
        if self.applied is not None:
            return "not in last-applied-configuration"
        if self.server_read:
            return "no managedFields or last-applied say who set it: the target's API server sets it again"
        return ""
