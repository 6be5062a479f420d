"""The keep-list (KEEP1-KEEP6): what naive cleaners wrongly drop, and how we say we kept it.

Two halves. The predicates (:func:`is_certificate_secret`, :func:`is_acme_key_secret`,
:func:`keeps_node_port`, :func:`is_helm_release_secret`) are consulted by the earlier steps so a
KEEP rule can override a W/M/K rule *before* it fires. :func:`apply` runs last (§1, after the remaps)
and records a ``keep`` change for everything that survived because of a KEEP rule, so the report
cites it, and applies the Helm ownership policy of KEEP5.

Decisions (beyond the rule texts of docs/cleaning-rules.md):

* KEEP4 keeps a TLS Secret when it carries ``cert-manager.io/certificate-name`` or a kept Certificate
  names it in ``spec.secretName``; an ownerReference to its Certificate is stripped (M8) instead of
  whiting the Secret out (W1). The ACME account-key Secret is kept when a kept Issuer (same
  namespace) or ClusterIssuer (``cert-manager`` namespace, the default cluster resource namespace)
  references it, even though that namespace is otherwise a platform namespace (W11). Secrets of
  cert-manager itself (webhook CA) are not referenced that way and stay whited out.
* KEEP5 without ``keep_helm_releases``: release Secrets are dropped and every object loses
  ``meta.helm.sh/*`` annotations and the ``app.kubernetes.io/managed-by: Helm`` label, so the target
  holds plain manifests that Helm ≥ 3.17 can adopt later with ``--take-ownership``.
"""

from __future__ import annotations

from typing import Any

from k3smig_lib.core.clean.context import HELM_RELEASE_TYPE, ClusterContext, Work, ns_name
from k3smig_lib.core.clean.pods import locate
from k3smig_lib.core.objects import Obj, annotations_of, get_path

HELM_ANNOTATION_PREFIX = "meta.helm.sh/"
MANAGED_BY = "app.kubernetes.io/managed-by"


def is_certificate_secret(obj: Obj, ctx: ClusterContext) -> bool:
    """True for a cert-manager TLS Secret (KEEP4): annotated by cert-manager or named by a Certificate."""
    if obj.get("kind") != "Secret":
        return False
    named = ns_name(obj) in ctx.certificate_secrets
    return named or "cert-manager.io/certificate-name" in annotations_of(obj)


def is_acme_key_secret(obj: Obj, ctx: ClusterContext) -> bool:
    """True for an ACME account-key Secret referenced by a kept Issuer or ClusterIssuer (KEEP4)."""
    return obj.get("kind") == "Secret" and ns_name(obj) in ctx.acme_key_secrets


def is_helm_release_secret(obj: Obj) -> bool:
    """True for a Helm 3 release record (``sh.helm.release.v1.<release>.v<n>``)."""
    return obj.get("kind") == "Secret" and (
        obj.get("type") == HELM_RELEASE_TYPE or ns_name(obj)[1].startswith("sh.helm.release.v1.")
    )


def keeps_node_port(work: Work, port: Obj) -> bool:
    """True when KEEP2 keeps this port's nodePort: set explicitly on the source and exposed on the VM."""
    explicit = work.facts.get("explicit_node_ports") or []
    return work.options.expose_node_ports and port.get("nodePort") in explicit


def _keep_cert_manager(work: Work) -> None:
    kept = sorted(k for k in annotations_of(work.obj) if k.startswith("cert-manager.io/"))
    if is_certificate_secret(work.obj, work.ctx):
        work.record("KEEP4", "", "keep", after=kept,
                    note="cert-manager TLS Secret kept with its annotations: no re-issue on the target")
    elif is_acme_key_secret(work.obj, work.ctx):
        work.record("KEEP4", "", "keep", note="ACME account key of a kept issuer: avoids a new account")


def _keep_services(work: Work) -> None:
    spec = work.obj.get("spec") or {}
    if work.kind == "Service" and spec.get("clusterIP") == "None":
        work.record("KEEP1", "spec.clusterIP", "keep", after="None", note="headless: StatefulSet DNS uses it")
    if work.kind == "Service":
        for i, port in enumerate(spec.get("ports") or []):
            if "nodePort" in port:
                work.record("KEEP2", f"spec.ports[{i}].nodePort", "keep", after=port["nodePort"],
                            note="set explicitly on the source and expose_node_ports is true")
    if work.kind in ("Endpoints", "EndpointSlice"):
        work.record("KEEP3", "", "keep", note="manual endpoints of a selectorless Service (external backend)")


def _keep_pod_fields(work: Work) -> None:
    found = locate(work.obj)
    if found is None:
        return
    spec, _ = found
    kept: list[str] = []
    if spec.get("priorityClassName"):
        kept.append(f"priorityClassName={spec['priorityClassName']}")
    if get_path(spec, "securityContext.fsGroup") is not None:
        kept.append(f"fsGroup={get_path(spec, 'securityContext.fsGroup')}")
    if spec.get("securityContext") or any(c.get("securityContext") for c in _containers(spec)):
        kept.append("securityContext")
    if kept:
        work.record("KEEP6", "podSpec", "keep", after=kept, note="needed to derive file ownership (§10)")


def _containers(spec: Obj) -> list[Obj]:
    return [c for key in ("initContainers", "containers") for c in spec.get(key) or [] if isinstance(c, dict)]


def _helm_policy(work: Work) -> None:
    meta = work.obj.get("metadata") or {}
    annots: dict[str, Any] = meta.get("annotations") or {}
    helm_keys = sorted(k for k in annots if k.startswith(HELM_ANNOTATION_PREFIX))
    managed = (meta.get("labels") or {}).get(MANAGED_BY) == "Helm"
    if work.options.keep_helm_releases:
        if is_helm_release_secret(work.obj):
            work.record("KEEP5", "", "keep", note="Helm release record kept: helm upgrade works")
        elif helm_keys or managed:
            work.record("KEEP5", "metadata", "keep", after=helm_keys, note="Helm ownership kept")
        return
    for key in helm_keys:
        work.pop("KEEP5", annots, key, "metadata.annotations", note="Helm release not kept: plain manifest")
    if managed:
        work.pop("KEEP5", meta["labels"], MANAGED_BY, "metadata.labels", note="Helm release not kept")


def apply(work: Work) -> None:
    """Record what survived because of a KEEP rule and apply the Helm ownership policy (KEEP5).

    Args:
        work: the object after stripping, per-kind rules and remaps.
    """
    _keep_cert_manager(work)
    _keep_services(work)
    _keep_pod_fields(work)
    _helm_policy(work)
