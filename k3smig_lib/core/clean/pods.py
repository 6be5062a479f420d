"""Pod spec rules (K7-K11, K16, K25), for bare Pods and every workload template alike.

A pod spec sits at ``spec`` (Pod), ``spec.template.spec`` (Deployment, StatefulSet, DaemonSet, Job,
ReplicaSet) or ``spec.jobTemplate.spec.template.spec`` (CronJob); :func:`locate` finds it and names
its path so every change points at the right field.

K9 decision: k3smig treats bare Pods like templates. Selector keys that name source nodes
(hostname, topology, node pools, instance types, or any value equal to a source node name) are
removed; ``kubernetes.io/os``/``arch`` stay; any other custom key stays with a ``warn`` change,
because the K3s node must carry that label or the pod stays Pending. Required node-affinity
expressions on the same keys are removed the same way (preferred terms are harmless and stay).
"""

from __future__ import annotations

import re
from typing import Any

from k3smig_lib.core.clean.context import BUILTIN_GROUPS, GENERATED_TOKEN_NAME, Work, api_group, key_path
from k3smig_lib.core.objects import Obj, get_path

_TEMPLATE_PATHS = {"CronJob": "spec.jobTemplate.spec.template", "Pod": ""}
#: Kinds whose pod spec the K rules touch; CRs with templates get the universal rules only.
POD_KINDS = frozenset(
    {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job", "CronJob"}
)
PORTABLE_NODE_KEYS = frozenset(
    {"kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch"}
)
NODE_KEY_PREFIXES = (
    "kubernetes.io/hostname", "topology.kubernetes.io/", "failure-domain.beta.kubernetes.io/",
    "node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type", "node-role.kubernetes.io/",
    "k8s.scaleway.com/", "cloud.google.com/", "eks.amazonaws.com/", "kubernetes.azure.com/", "agentpool",
    "doks.digitalocean.com/", "node.kubernetes.io/pool", "topology.",
)
_TOKEN_VOLUME = re.compile(r"^.+-token-[a-z0-9]{5}$")


def locate(obj: Obj) -> tuple[Obj, str] | None:
    """The pod spec of ``obj`` and its dotted path, or ``None`` when the kind has none."""
    kind = str(obj.get("kind"))
    if kind not in POD_KINDS or api_group(obj) not in BUILTIN_GROUPS:
        return None
    template = _TEMPLATE_PATHS.get(kind, "spec.template")
    base = f"{template}.spec" if template else "spec"
    spec = get_path(obj, base)
    if not isinstance(spec, dict) or (kind != "Pod" and not spec.get("containers")):
        return None
    return spec, base


def names_source_node(key: str, value: Any, work: Work) -> bool:
    """True when a node label key/value pins to the source cluster's nodes (K9)."""
    if key in PORTABLE_NODE_KEYS:
        return False
    return key.startswith(NODE_KEY_PREFIXES) or str(value) in work.ctx.node_names


def _node_selector(work: Work, spec: Obj, base: str) -> None:
    selector: dict[str, Any] = spec.get("nodeSelector") or {}
    for key in sorted(selector):
        if names_source_node(key, selector[key], work):
            work.pop("K9", selector, key, f"{base}.nodeSelector", note="names a source node or node pool")
        elif key not in PORTABLE_NODE_KEYS:
            work.record("K9", key_path(f"{base}.nodeSelector", key), "warn", before=selector[key],
                        after=f"{key}={selector[key]}",
                        note=f"label the K3s node with {key}={selector[key]} or the pod stays Pending")
    if "nodeSelector" in spec and not selector:
        del spec["nodeSelector"]


def _pinning(work: Work, expr: Obj) -> bool:
    values = expr.get("values") or []
    if expr.get("key") == "metadata.name":
        return True
    return names_source_node(str(expr.get("key")), values[0] if values else "", work)


def _node_affinity(work: Work, spec: Obj, base: str) -> None:
    node_affinity = get_path(spec, "affinity.nodeAffinity") or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms: list[Obj] = required.get("nodeSelectorTerms") or []
    if not terms:
        return
    path = f"{base}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    kept_terms = []
    for term in terms:
        for field in ("matchExpressions", "matchFields"):
            exprs = term.get(field) or []
            pinned = [e for e in exprs if _pinning(work, e)]
            if pinned:
                work.record("K9", f"{path}.nodeSelectorTerms[].{field}", "remove", before=pinned,
                            note="required node affinity to source nodes")
                term[field] = [e for e in exprs if e not in pinned]
            if field in term and not term[field]:
                del term[field]
        if term:
            kept_terms.append(term)
    required["nodeSelectorTerms"] = kept_terms
    if not kept_terms:
        del node_affinity["requiredDuringSchedulingIgnoredDuringExecution"]
    if not node_affinity:
        del spec["affinity"]["nodeAffinity"]
    if not spec["affinity"]:
        del spec["affinity"]


def _token_volumes(work: Work, spec: Obj, base: str) -> None:
    volumes = spec.get("volumes") or []
    tokens = {v.get("name") for v in volumes if _TOKEN_VOLUME.match(str(v.get("name"))) and "secret" in v}
    if not tokens:
        return
    spec["volumes"] = [v for v in volumes if v.get("name") not in tokens]
    work.record("K10", f"{base}.volumes", "remove", before=sorted(tokens), note="legacy token Secret volume")
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            mounts = container.get("volumeMounts") or []
            if any(m.get("name") in tokens for m in mounts):
                container["volumeMounts"] = [m for m in mounts if m.get("name") not in tokens]
                work.record("K10", f"{base}.{key}[{container.get('name')}].volumeMounts", "remove",
                            before=sorted(tokens))
                if not container["volumeMounts"]:
                    del container["volumeMounts"]
    if not spec["volumes"]:
        del spec["volumes"]


def rewrite_pull_secrets(work: Work, holder: Obj, base: str) -> None:
    """K16: replace every ``imagePullSecrets`` entry by the target's registry pull Secret.

    Without a target pull Secret, K26 drops the entries that name generated dockercfg/token Secrets
    (OpenShift's ``<sa>-dockercfg-xxxxx``): W5/W1 dropped those Secrets, so the reference would dangle.
    """
    name = work.options.pull_secret_name
    current = holder.get("imagePullSecrets")
    if not current:
        return
    if name:
        work.set("K16", holder, "imagePullSecrets", [{"name": name}], base,
                 note="credentials differ on the target: the Scaleway registry pull Secret")
        return
    ns = work.ref.namespace
    generated = [s for s in current if isinstance(s, dict) and (
        (ns, s.get("name")) in work.ctx.token_secrets or GENERATED_TOKEN_NAME.match(str(s.get("name", ""))))]
    if not generated:
        return
    kept = [s for s in current if s not in generated]
    if kept:
        holder["imagePullSecrets"] = kept
    else:
        del holder["imagePullSecrets"]
    work.record("K26", f"{base}.imagePullSecrets" if base else "imagePullSecrets", "remove",
                before=[s.get("name") for s in generated], note="generated pull Secrets of the source registry")


def _service_account_alias(work: Work, spec: Obj, base: str) -> None:
    alias = spec.get("serviceAccount")
    if alias is None:
        return
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = alias
    work.pop("K11", spec, "serviceAccount", base, note="deprecated alias of serviceAccountName")


def _template_noise(work: Work, obj: Obj) -> None:
    kind = str(obj.get("kind"))
    paths = ["spec.jobTemplate", "spec.jobTemplate.spec.template"] if kind == "CronJob" else ["spec.template"]
    for path in paths:
        meta = get_path(obj, f"{path}.metadata")
        if not isinstance(meta, dict):
            continue
        if "creationTimestamp" in meta:
            work.pop("K25", meta, "creationTimestamp", f"{path}.metadata", note="template noise")
        annots = meta.get("annotations") or {}
        work.pop("K25", annots, "kubectl.kubernetes.io/restartedAt", f"{path}.metadata.annotations",
                 note="rollout-restart stamp of the source")
        if "annotations" in meta and not annots:
            del meta["annotations"]
        if not meta:
            parent = get_path(obj, path)
            del parent["metadata"]


def apply(work: Work) -> None:
    """Apply the pod spec rules to a Pod or workload template.

    Args:
        work: the object being cleaned; kinds without a pod spec are left alone.
    """
    found = locate(work.obj)
    if found is None:
        return
    spec, base = found
    _template_noise(work, work.obj)
    work.pop("K7", spec, "nodeName", base, note="pins the pod to a source node")
    work.pop("K8", spec, "priority", base, note="admission recomputes it from priorityClassName")
    _node_selector(work, spec, base)
    _node_affinity(work, spec, base)
    _token_volumes(work, spec, base)
    _service_account_alias(work, spec, base)
    rewrite_pull_secrets(work, spec, base)
