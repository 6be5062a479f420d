"""The cleaning pipeline: the order of docs/cleaning-rules.md §1, object by object.

1. keep the original and its hash; 2. white out whole objects (cross-object context built first);
3. derive facts; 4. drop API-server defaults nobody set (K27, while managedFields and last-applied are
still there), strip metadata and status; 5. per-kind rules; 6. K3s remaps; then the KEEP step
records what survived because of a keep rule. Step 7 (server-side dry-run) belongs to the deploy
phase. Rules never touch the original: they work on a copy.

Secret values never leave this module in a change: rules record key names or sizes, and a final
scrub replaces any ``before``/``after`` that still contains a value of the Secret by ``<redacted>``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from k3smig_lib.core.clean import defaults, keep, kinds, metadata, pods, remaps, services, whiteouts
from k3smig_lib.core.clean.context import ClusterContext, Work, build_context
from k3smig_lib.core.clean.facts import derive_facts
from k3smig_lib.core.clean.model import CleanedObject, CleanOptions, CleanReport
from k3smig_lib.core.objects import Obj, canonical_json, ref, sha256_of

_STEPS = (defaults.apply, metadata.apply, services.apply, pods.apply, kinds.apply, remaps.apply, keep.apply)
_MIN_SECRET_LEN = 4


def _secret_values(obj: Obj) -> set[str]:
    values: set[str] = set()
    for raw in (obj.get("data") or {}).values():
        values.add(str(raw))
        try:
            values.add(base64.b64decode(str(raw), validate=True).decode("utf-8", errors="ignore"))
        except (binascii.Error, ValueError):
            pass
    values.update(str(v) for v in (obj.get("stringData") or {}).values())
    return {v for v in values if len(v) >= _MIN_SECRET_LEN}


def _scrub(value: Any, secrets: set[str]) -> Any:
    if value is None:
        return None
    text = canonical_json(value).decode()
    return "<redacted>" if any(s in text for s in secrets) else value


def _scrub_changes(work: Work, original: Obj) -> None:
    if original.get("kind") != "Secret":
        return
    secrets = _secret_values(original)
    for change in work.changes:
        change.before = _scrub(change.before, secrets)
        change.after = _scrub(change.after, secrets)


def copy_tree(value: Any) -> Any:
    """Copy nested dicts and lists (the shape of every API object) several times faster than deepcopy.

    Leaves (str, int, float, bool, None, and the datetimes YAML may produce) are immutable and shared.
    """
    if isinstance(value, dict):
        return {k: copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_tree(v) for v in value]
    return value


_ONLY_POPPED = frozenset({"status", "managedFields"})


def _work_copy(original: Obj) -> Obj:
    """Copy for the rules to edit; subtrees the rules only ever remove whole (status, managedFields) are shared."""
    work = {k: v if k in _ONLY_POPPED else copy_tree(v) for k, v in original.items() if k != "metadata"}
    meta = original.get("metadata")
    if isinstance(meta, dict):
        work["metadata"] = {k: v if k in _ONLY_POPPED else copy_tree(v) for k, v in meta.items()}
    return work


def _prune_empty_metadata(obj: Obj) -> None:
    meta = obj.get("metadata") or {}
    for key in ("annotations", "labels"):
        if key in meta and not meta[key]:
            del meta[key]


def clean_object(obj: Obj, ctx: ClusterContext, *, owned: bool = False, digest: str = "") -> CleanedObject:
    """Clean one object of an export.

    Args:
        obj: the object as exported; it is not modified.
        ctx: the cross-object context of the whole export (:func:`build_context`).
        owned: ``obj`` belongs to the cleaner (a streamed object nobody else holds): kept as the
            original without a copy.
        digest: ``sha256_of(obj)`` when the reader computed it already.

    Returns:
        The original, its hash, the cleaned copy (``None`` when whited out), the changes and facts.
    """
    original: Obj = obj if owned else copy_tree(obj)
    identity = ref(original)
    drop = whiteouts.classify(original, ctx)
    facts = derive_facts(original, ctx)
    digest = digest or sha256_of(original)
    if drop is not None:
        return CleanedObject(identity, original, digest, None, [drop], facts)
    work = Work(obj=_work_copy(original), ref=identity, ctx=ctx, facts=facts)
    for step in _STEPS:
        step(work)
    _prune_empty_metadata(work.obj)
    _scrub_changes(work, original)
    return CleanedObject(identity, original, digest, work.obj, work.changes, facts)


def clean_objects(objects: Sequence[Obj], options: CleanOptions | None = None) -> CleanReport:
    """Clean every object of an export, in the order of docs/cleaning-rules.md §1.

    Args:
        objects: exported objects (``kubectl get -o yaml`` items), in any order.
        options: what the target looks like; defaults to a stock K3s with ingress-nginx.

    Returns:
        One :class:`CleanedObject` per input object, in input order.

    Examples:
        >>> svc = {"apiVersion": "v1", "kind": "Service",
        ...        "metadata": {"name": "web", "namespace": "shop", "uid": "1b2c"},
        ...        "spec": {"clusterIP": "10.96.4.7", "selector": {"app": "web"}, "ports": [{"port": 80}]}}
        >>> report = clean_objects([svc])
        >>> report.objects[0].rule_ids, report.objects[0].cleaned["spec"]
        (['K1', 'M1'], {'selector': {'app': 'web'}, 'ports': [{'port': 80}]})
    """
    opts = options if options is not None else CleanOptions()
    items = list(objects)
    ctx = build_context(items, opts)
    return CleanReport([clean_object(obj, ctx) for obj in items])
