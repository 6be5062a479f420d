"""Per-kind rules other than Services and pod specs (K12-K15, K17-K24, W5 for manual tokens).

Each function owns one kind; :func:`apply` dispatches on the kind, so a CR never reaches these rules.

K13 decision: a standalone Job is suspended unless it carries the annotation
``k3smig.io/idempotent: "true"`` — the operator's statement that re-running it on the target is safe.
K17 decision: a PVC bound to a *static* PV that is kept (NFS, hostPath, local…) keeps its
``volumeName``; every other PVC loses it and gets a new local-path volume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from k3smig_lib.core.clean.context import GENERATED_TOKEN_NAME, SA_TOKEN_TYPE, Work, ns_name
from k3smig_lib.core.clean.pods import rewrite_pull_secrets
from k3smig_lib.core.objects import annotations_of, get_path

IDEMPOTENT_ANNOTATION = "k3smig.io/idempotent"
BINDING_ANNOTATIONS = (
    "pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner", "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
)
_TOKEN_KEYS = ("token", "ca.crt", "namespace")


def _job(work: Work) -> None:
    spec = work.obj.get("spec") or {}
    if not spec.get("manualSelector"):
        work.pop("K12", spec, "selector", "spec", note="generated from the source Job UID")
    template_labels = get_path(spec, "template.metadata.labels") or {}
    for key in ("controller-uid", "batch.kubernetes.io/controller-uid"):
        work.pop("K12", template_labels, key, "spec.template.metadata.labels", note="source Job UID")
    if annotations_of(work.obj).get(IDEMPOTENT_ANNOTATION) == "true":
        return
    work.set("K13", spec, "suspend", True, "spec",
             note=f"standalone Job would re-run on the target; {IDEMPOTENT_ANNOTATION}=true allows it")


def _cron_job(work: Work) -> None:
    work.set("K14", work.obj.setdefault("spec", {}), "suspend", True, "spec",
             note="suspended until cutover, so both clusters do not fire it")


def _service_account(work: Work) -> None:
    secrets = work.obj.get("secrets")
    if secrets is not None:
        ns = ns_name(work.obj)[0]
        tokens = [
            s for s in secrets
            if (ns, s.get("name")) in work.ctx.token_secrets or GENERATED_TOKEN_NAME.match(str(s.get("name")))
        ]
        if tokens or not secrets:
            kept = [s for s in secrets if s not in tokens]
            work.record("K15", "secrets", "remove", before=[s.get("name") for s in tokens],
                        note="point at whited-out token Secrets")
            if kept:
                work.obj["secrets"] = kept
            else:
                del work.obj["secrets"]
    rewrite_pull_secrets(work, work.obj, "")


def _binding_annotations(work: Work) -> None:
    annots = (work.obj.get("metadata") or {}).get("annotations") or {}
    rule = "K18" if work.kind == "PersistentVolumeClaim" else "K20"
    for key in BINDING_ANNOTATIONS:
        work.pop(rule, annots, key, "metadata.annotations", note="binding bookkeeping of the source")


def _pvc(work: Work) -> None:
    spec = work.obj.get("spec") or {}
    if spec.get("volumeName") and spec["volumeName"] not in work.ctx.kept_pv_names:
        work.pop("K17", spec, "volumeName", "spec", note="names a source PV; local-path provisions a new one")
    _binding_annotations(work)
    for key in ("dataSource", "dataSourceRef"):
        work.pop("K19", spec, key, "spec", note="snapshot sources do not exist on K3s")


def _pv(work: Work) -> None:
    claim = get_path(work.obj, "spec.claimRef") or {}
    for key in ("uid", "resourceVersion"):
        work.pop("K20", claim, key, "spec.claimRef", note="source identity of the claim")
    _binding_annotations(work)
    spec = work.obj.get("spec") or {}
    if spec.get("persistentVolumeReclaimPolicy", "Delete") == "Delete":
        work.set("T2b", spec, "persistentVolumeReclaimPolicy", "Retain", "spec",
                 note="a deleted PVC must not destroy migrated data")


def _stateful_set(work: Work) -> None:
    for i, template in enumerate(get_path(work.obj, "spec.volumeClaimTemplates", []) or []):
        base = f"spec.volumeClaimTemplates[{i}]"
        work.pop("K21", template, "status", base, note="status inside a template")
        work.pop("K21", template.get("metadata") or {}, "creationTimestamp", f"{base}.metadata")


def _role_binding(work: Work) -> None:
    ns = ns_name(work.obj)[0]
    for i, subject in enumerate(work.obj.get("subjects") or []):
        if subject.get("kind") == "ServiceAccount" and subject.get("namespace") == ns:
            work.pop("K22", subject, "namespace", f"subjects[{i}]",
                     note="same namespace: lets the kustomize namespace transformer remap it")


def _namespace(work: Work) -> None:
    spec = work.obj.get("spec") or {}
    work.pop("K23", spec, "finalizers", "spec", note="re-added by the target")
    if "spec" in work.obj and not spec:
        del work.obj["spec"]
    annots = (work.obj.get("metadata") or {}).get("annotations") or {}
    work.pop("K23", annots, "scheduler.alpha.kubernetes.io/node-selector", "metadata.annotations",
             note="namespace-wide node pinning to source node pools")


def _ingress(work: Work) -> None:
    annots = (work.obj.get("metadata") or {}).get("annotations") or {}
    legacy = annots.get("kubernetes.io/ingress.class")
    if legacy is None:
        return
    work.pop("K24", annots, "kubernetes.io/ingress.class", "metadata.annotations",
             note="deprecated; replaced by spec.ingressClassName")
    spec: dict[str, Any] = work.obj.setdefault("spec", {})
    work.set("K24", spec, "ingressClassName", work.options.ingress_class, "spec",
             note=f"the K3s ingress serves class nginx; the source class was {legacy!r}")


def _manual_token(work: Work) -> None:
    if work.obj.get("type") != SA_TOKEN_TYPE:
        return
    annots = (work.obj.get("metadata") or {}).get("annotations") or {}
    work.pop("W5", annots, "kubernetes.io/service-account.uid", "metadata.annotations",
             note="manual token Secret kept; the target's token controller fills it in")
    data = work.obj.get("data") or {}
    removed = [k for k in _TOKEN_KEYS if k in data]
    for key in removed:
        del data[key]
    if "data" in work.obj and not data:
        del work.obj["data"]
    if removed:
        work.record("W5", "data", "remove", before=removed, note="token minted by the source (key names)")


_BY_KIND: dict[str, Callable[[Work], None]] = {
    "Job": _job, "CronJob": _cron_job, "ServiceAccount": _service_account,
    "PersistentVolumeClaim": _pvc, "PersistentVolume": _pv, "StatefulSet": _stateful_set,
    "RoleBinding": _role_binding, "Namespace": _namespace, "Ingress": _ingress, "Secret": _manual_token,
}


def apply(work: Work) -> None:
    """Apply the per-kind rule of ``work.kind``, if it has one.

    Args:
        work: the object being cleaned.
    """
    rule = _BY_KIND.get(work.kind)
    if rule is not None:
        rule(work)
