"""``metadata.managedFields`` entries with a ``fieldsV1`` set computed from the fields a manager wrote.

The encoding follows structured-merge-diff: ``f:<field>`` for struct and map fields, ``k:{json}``
for items of associative lists (containers by name, ports by port+protocol…), ``v:<json>`` for
items of set lists (finalizers), ``.`` when a nested map or list item itself is owned, and ``{}``
for leaves and atomic fields (selectors, args, accessModes).
"""

from __future__ import annotations

import json
from typing import Any

from _gen.common import Obj

#: Associative lists and the item fields that key them.
_LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "imagePullSecrets": ("name",),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "containerStatuses": ("name",),
}
#: Fields kept whole by the API (``+structType=atomic`` / ``+mapType=atomic`` / ``+listType=atomic``).
_ATOMIC = frozenset(
    {
        "selector",
        "nodeSelector",
        "args",
        "command",
        "accessModes",
        "matchLabels",
        "hosts",
        "ipFamilies",
        "clusterIPs",
        "podIPs",
        "hostIPs",
        "addresses",
        "tolerations",
        "rules",
        "subjects",
        "roleRef",
        "claimRef",
        "nodeAffinity",
        "csi",
        "capacity",
        "dnsNames",
        "issuerRef",
        "webhooks",
        "ingress",
    }
)
#: Non-pointer struct fields: owned through their children only, so no ``.`` entry.
_NO_DOT = frozenset({"metadata", "spec", "template", "strategy", "status", "updateStrategy"})
_SET_LISTS = frozenset({"finalizers"})


def _item_key(field: str, item: Obj) -> str:
    if field == "ports":
        keys: tuple[str, ...] = ("containerPort", "protocol") if "containerPort" in item else ("port", "protocol")
    else:
        keys = _LIST_KEYS[field]
    return "k:" + json.dumps({k: item[k] for k in keys if k in item}, separators=(",", ":"), sort_keys=True)


def _list_fields(field: str, items: list[Any]) -> Obj:
    if field in _SET_LISTS:
        owned: Obj = {".": {}} if items else {}
        owned.update({"v:" + json.dumps(v): {} for v in items})
        return owned
    keyed = field in _LIST_KEYS or field == "ports"
    if not keyed or not items or not all(isinstance(i, dict) for i in items):
        return {}
    result: Obj = {".": {}}
    for item in items:
        result[_item_key(field, item)] = {".": {}, **_map_fields(item)}
    return result


def _map_fields(value: Obj) -> Obj:
    result: Obj = {}
    for key, sub in value.items():
        name = "f:" + key
        if key in _ATOMIC:
            result[name] = {}
        elif isinstance(sub, dict) and sub:
            inner = _map_fields(sub)
            result[name] = inner if key in _NO_DOT else {".": {}, **inner}
        elif isinstance(sub, list):
            result[name] = _list_fields(key, sub)
        else:
            result[name] = {}
    return result


def fields_v1(owned: Obj) -> Obj:
    """Return the ``fieldsV1`` set for the fields in ``owned`` (a partial object)."""
    return _map_fields(owned)


def managed_entry(
    manager: str,
    time: str,
    owned: Obj,
    *,
    operation: str = "Update",
    api_version: str = "v1",
    subresource: str = "",
) -> Obj:
    """Return one ``managedFields`` item for ``manager`` owning the fields in ``owned``."""
    entry: Obj = {
        "apiVersion": api_version,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(owned),
        "manager": manager,
        "operation": operation,
        "time": time,
    }
    if subresource:
        entry["subresource"] = subresource
    return entry


def owned_meta(obj: Obj, *keys: str) -> Obj:
    """The ``metadata`` part a manager owns: only ``keys`` (labels, annotations, finalizers…)."""
    meta = obj.get("metadata", {})
    return {k: meta[k] for k in keys if meta.get(k)}
