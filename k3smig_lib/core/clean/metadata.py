"""Universal metadata and status (M1-M14, S1): what every kept object loses (§1 step 4).

These run on every kind, CRs included, after facts are derived (M10 deletes the
``last-applied-configuration`` annotation that K3 reads). Values of removed annotations are never
copied into the change: ``last-applied`` on a Secret holds its data, so it is recorded as a size.

M13 decision: the allow-list below names the finalizers that are *stripped* because the target's
own controllers re-add them. Any other finalizer is kept (its operator may run on K3s and needs it)
and reported as a ``warn`` change: if that operator is not installed on the target, the object can
never be deleted there.
"""

from __future__ import annotations

from typing import Any

from k3smig_lib.core.clean import keep
from k3smig_lib.core.clean.context import Work, key_path
from k3smig_lib.core.objects import PRE_QUIESCE, QUIESCED_AT

#: Server-assigned metadata (M1-M7) and the rule that removes each field.
SERVER_FIELDS: tuple[tuple[str, str], ...] = (
    ("uid", "M1"), ("resourceVersion", "M2"), ("selfLink", "M3"), ("creationTimestamp", "M4"),
    ("generation", "M5"), ("managedFields", "M6"), ("deletionTimestamp", "M7"),
    ("deletionGracePeriodSeconds", "M7"),
)
#: Finalizers the target re-adds by itself (M13): safe to strip.
SYSTEM_FINALIZERS = frozenset(
    {"kubernetes.io/pvc-protection", "kubernetes.io/pv-protection", "foregroundDeletion", "orphan",
     "kubernetes"}
)
CONTROLLER_UID_KEYS = ("controller-uid", "batch.kubernetes.io/controller-uid")
#: Key prefixes (before the ``/``) of source-platform labels and annotations (M14).
PLATFORM_KEY_DOMAINS = ("cattle.io", "openshift.io")
PLATFORM_KEY_PREFIXES = ("service.beta.kubernetes.io/",)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def is_platform_key(key: str) -> bool:
    """True for Rancher, OpenShift and cloud load-balancer labels/annotations (M14).

    Examples:
        >>> is_platform_key("field.cattle.io/projectId"), is_platform_key("app.kubernetes.io/name")
        (True, False)
    """
    domain = key.split("/", 1)[0] if "/" in key else ""
    if any(domain == d or domain.endswith("." + d) for d in PLATFORM_KEY_DOMAINS):
        return True
    return key.startswith(PLATFORM_KEY_PREFIXES)


def _strip_server_fields(work: Work, meta: dict[str, Any]) -> None:
    for field_name, rule_id in SERVER_FIELDS:
        work.pop(rule_id, meta, field_name, "metadata")
    note = "UIDs point at source objects"
    if keep.is_certificate_secret(work.obj, work.ctx):
        note = "kept despite its owner (KEEP4): the owner's UID is a source identity"
    work.pop("M8", meta, "ownerReferences", "metadata", note=note)
    if meta.get("name") and "generateName" in meta:
        work.pop("M9", meta, "generateName", "metadata")


def _strip_annotations(work: Work, meta: dict[str, Any]) -> None:
    annots: dict[str, Any] = meta.get("annotations") or {}
    if LAST_APPLIED in annots:
        size = len(str(annots.pop(LAST_APPLIED)).encode())
        work.record("M10", key_path("metadata.annotations", LAST_APPLIED), "remove", before=f"<{size} bytes>",
                    note="stale client-side-apply base; read for explicit nodePorts first")
    work.pop("M11", annots, "deployment.kubernetes.io/revision", "metadata.annotations")
    _restore_quiesced(work, annots)
    for base, values in (("metadata.annotations", annots), ("metadata.labels", meta.get("labels") or {})):
        for key in CONTROLLER_UID_KEYS:
            work.pop("M12", values, key, base, note="bound to the source Job UID")
        for key in sorted(k for k in values if is_platform_key(k)):
            work.pop("M14", values, key, base, note="source platform (Rancher/OpenShift/cloud LB) metadata")


def _restore_quiesced(work: Work, annots: dict[str, Any]) -> None:
    """Undo k3smig's own quiesce on the exported copy: the replicas recorded before the scale-down."""
    if PRE_QUIESCE not in annots:
        return
    recorded = str(annots.pop(PRE_QUIESCE))
    work.record("M15", key_path("metadata.annotations", PRE_QUIESCE), "remove", before=recorded)
    work.pop("M15", annots, QUIESCED_AT, "metadata.annotations")
    spec = work.obj.get("spec")
    if isinstance(spec, dict) and recorded.isdigit():
        before = spec.get("replicas")
        spec["replicas"] = int(recorded)
        work.record("M15", "spec.replicas", "rewrite", before=before, after=int(recorded),
                    note="the source is held at 0 by this migration; the target gets the recorded count")


def _strip_finalizers(work: Work, meta: dict[str, Any]) -> None:
    finalizers = list(meta.get("finalizers") or [])
    if not finalizers:
        return
    stripped = [f for f in finalizers if f in SYSTEM_FINALIZERS]
    platform = [f for f in finalizers if f not in SYSTEM_FINALIZERS and is_platform_key(f)]
    foreign = [f for f in finalizers if f not in stripped and f not in platform]
    if stripped:
        work.record("M13", "metadata.finalizers", "remove", before=stripped, note="re-added by the target")
    if platform:
        work.record("M14", "metadata.finalizers", "remove", before=platform,
                    note="source platform (Rancher/OpenShift) finalizer: nothing on K3s would clear it")
    if foreign:
        meta["finalizers"] = foreign
        work.record("M13", "metadata.finalizers", "warn", before=foreign,
                    note="foreign finalizer kept: without its controller on K3s the object cannot be deleted")
    else:
        del meta["finalizers"]


def apply(work: Work) -> None:
    """Strip universal metadata and status from the working copy.

    Args:
        work: the object being cleaned (facts already derived).
    """
    meta = work.obj.setdefault("metadata", {})
    _strip_server_fields(work, meta)
    _strip_annotations(work, meta)
    _strip_finalizers(work, meta)
    if "status" in work.obj:
        work.pop("S1", work.obj, "status", "", note="observed state, written by controllers")
