"""Cross-object context and the per-object work record the rule modules share.

Several rules cannot decide from one object alone: an Endpoints object is generated only when its
Service has a selector (W4), a LoadBalancer Service can become ClusterIP only when an Ingress fronts
it (K6), a PV is dynamic when its class provisions (W7), a TLS Secret is cert-manager's when a
Certificate names it (KEEP4). :func:`build_context` indexes the whole export once, before any object
is touched, so every rule sees the source as exported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from k3smig_lib.core.clean.model import Action, Change, CleanOptions
from k3smig_lib.core.objects import Obj, ObjRef, annotations_of, get_path, pod_spec

NsName = tuple[str, str]

SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
HELM_RELEASE_TYPE = "helm.sh/release.v1"
CERT_MANAGER_NAMESPACE = "cert-manager"
CERT_MANAGER_GROUPS = frozenset({"cert-manager.io", "acme.cert-manager.io"})
#: PV volume sources that name a disk of the source cloud: meaningless on the VM (W7).
CLOUD_VOLUME_SOURCES = frozenset(
    {
        "csi", "awsElasticBlockStore", "gcePersistentDisk", "azureDisk", "azureFile", "cinder",
        "vsphereVolume", "portworxVolume", "scaleIO", "flexVolume", "photonPersistentDisk",
    }
)


#: API groups served by Kubernetes itself; kinds of any other group are CRs (universal rules only).
BUILTIN_GROUPS = frozenset(
    {
        "", "apps", "batch", "policy", "autoscaling", "extensions", "admissionregistration.k8s.io",
        "apiextensions.k8s.io", "apiregistration.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
        "certificates.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io",
        "flowcontrol.apiserver.k8s.io", "internal.apiserver.k8s.io", "networking.k8s.io", "node.k8s.io",
        "rbac.authorization.k8s.io", "resource.k8s.io", "scheduling.k8s.io", "storage.k8s.io",
        "storagemigration.k8s.io", "metrics.k8s.io",
    }
)


def ns_name(obj: Obj) -> NsName:
    """``(namespace, name)`` of an object."""
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def api_group(obj: Obj) -> str:
    """API group of an object (``""`` for the core group)."""
    version = str(obj.get("apiVersion", ""))
    return version.split("/")[0] if "/" in version else ""


GENERATED_TOKEN_NAME = re.compile(r"^(?P<sa>.+)-(token|dockercfg)-[a-z0-9]{5}$")


def generated_token_secret(secret: Obj) -> str:
    """Name of the ServiceAccount a *generated* token or dockercfg Secret belongs to, else ``""``.

    Generated Secrets are named ``<sa>-token-xxxxx`` (legacy token controller) or
    ``<sa>-dockercfg-xxxxx`` (OpenShift) and annotated with that ServiceAccount's name; manually
    created token Secrets have free names and are kept (W5, as Velero does).
    """
    if secret.get("kind") != "Secret" or secret.get("type") not in (SA_TOKEN_TYPE, "kubernetes.io/dockercfg"):
        return ""
    sa = annotations_of(secret).get("kubernetes.io/service-account.name", "")
    match = GENERATED_TOKEN_NAME.match(ns_name(secret)[1])
    return sa if match and match.group("sa") == sa else ""


def is_dynamic_pv(pv: Obj) -> bool:
    """True when a PV was provisioned by the source or names a source-cloud disk (W7)."""
    if "pv.kubernetes.io/provisioned-by" in annotations_of(pv):
        return True
    spec = pv.get("spec") or {}
    return any(key in spec for key in CLOUD_VOLUME_SOURCES)


@dataclass
class ClusterContext:
    """Indexes over the whole export, built before any object is cleaned."""

    options: CleanOptions
    selector_services: set[NsName] = field(default_factory=set)
    ingress_backends: set[NsName] = field(default_factory=set)
    pvs: dict[str, Obj] = field(default_factory=dict)
    storage_classes: dict[str, Obj] = field(default_factory=dict)
    certificate_secrets: set[NsName] = field(default_factory=set)
    acme_key_secrets: set[NsName] = field(default_factory=set)
    token_secrets: set[NsName] = field(default_factory=set)
    node_names: frozenset[str] = frozenset()
    binding_refs: dict[str, list[Obj]] = field(default_factory=dict)
    #: Static PVs that survive cleaning (their PVCs keep binding to them).
    kept_pv_names: frozenset[str] = frozenset()

    def excluded_namespace(self, namespace: str) -> bool:
        """True when a namespace is whited out as system (W8) or platform (W11)."""
        opts = self.options
        return namespace in opts.system_namespaces or namespace in opts.platform_namespaces


def ingress_backend_services(ingress: Obj) -> set[str]:
    """Names of the Services an Ingress routes to (default backend included)."""
    spec = ingress.get("spec") or {}
    backends = [spec.get("defaultBackend") or spec.get("backend") or {}]
    for rule in spec.get("rules") or []:
        backends += [p.get("backend") or {} for p in get_path(rule, "http.paths", []) or []]
    names = {get_path(b, "service.name") or b.get("serviceName") for b in backends}
    return {str(n) for n in names if n}


def _node_names_of(obj: Obj) -> Iterator[str]:
    """Source node names an object reveals: a Node's name, a pod's ``nodeName``, a claim's selected node."""
    if obj.get("kind") == "Node":
        yield ns_name(obj)[1]
    spec = pod_spec(obj)
    if spec and spec.get("nodeName"):
        yield str(spec["nodeName"])
    selected = annotations_of(obj).get("volume.kubernetes.io/selected-node")
    if selected:
        yield selected


def _index_cert_manager(ctx: ClusterContext, obj: Obj) -> None:
    kind, ns = obj.get("kind"), ns_name(obj)[0]
    if api_group(obj) not in CERT_MANAGER_GROUPS or ctx.excluded_namespace(ns):
        return
    if kind == "Certificate" and get_path(obj, "spec.secretName"):
        ctx.certificate_secrets.add((ns, str(get_path(obj, "spec.secretName"))))
    key_name = get_path(obj, "spec.acme.privateKeySecretRef.name")
    if kind == "Issuer" and key_name:
        ctx.acme_key_secrets.add((ns, str(key_name)))
    if kind == "ClusterIssuer" and key_name:
        ctx.acme_key_secrets.add((CERT_MANAGER_NAMESPACE, str(key_name)))


def _slim_pv(pv: Obj) -> Obj:
    """What the rules read of a PV (W7, K17, the PVC facts): its annotations and spec, not its status."""
    return {"metadata": {"annotations": annotations_of(pv)}, "spec": pv.get("spec") or {}}


def _index(ctx: ClusterContext, obj: Obj) -> None:
    kind, key = obj.get("kind"), ns_name(obj)
    if kind == "Service":
        if get_path(obj, "spec.selector"):
            ctx.selector_services.add(key)
    elif kind == "Ingress" and api_group(obj) != "extensions":
        ctx.ingress_backends.update((key[0], svc) for svc in ingress_backend_services(obj))
    elif kind == "PersistentVolume":
        ctx.pvs[key[1]] = _slim_pv(obj)
    elif kind == "StorageClass":
        ctx.storage_classes[key[1]] = {"provisioner": obj.get("provisioner")}
    elif kind == "Secret" and generated_token_secret(obj):
        ctx.token_secrets.add(key)
    elif kind in ("ClusterRoleBinding", "RoleBinding") and get_path(obj, "roleRef.kind") == "ClusterRole":
        ctx.binding_refs.setdefault(str(get_path(obj, "roleRef.name")), []).append({"subjects": obj.get("subjects")})
    _index_cert_manager(ctx, obj)


class ContextBuilder:
    """The context built one object at a time, so an export can be indexed while it streams past.

    Only facts are kept (sets of names, the PVs' spec, the subjects of bindings), never the objects:
    a 50,000-object export indexes into a few megabytes.
    """

    def __init__(self, options: CleanOptions) -> None:
        self.ctx = ClusterContext(options=options)
        self._nodes = set(options.source_node_names)

    def add(self, obj: Obj) -> None:
        """Index one exported object."""
        self._nodes.update(_node_names_of(obj))
        _index(self.ctx, obj)

    def finish(self) -> ClusterContext:
        """The context, once every object was added."""
        ctx = self.ctx
        ctx.node_names = frozenset(self._nodes)
        ctx.kept_pv_names = frozenset(name for name, pv in ctx.pvs.items() if not is_dynamic_pv(pv))
        return ctx


def build_context(objects: Iterable[Obj], options: CleanOptions) -> ClusterContext:
    """Index the export for the cross-object rules.

    Args:
        objects: every exported object, as ``kubectl get -o yaml`` returns them.
        options: the cleaning options (namespaces, node names).

    Returns:
        The context every rule reads; it is never modified while cleaning.
    """
    builder = ContextBuilder(options)
    for obj in objects:
        builder.add(obj)
    return builder.finish()


def key_path(base: str, key: str) -> str:
    """Path of ``key`` under ``base``: dotted for plain keys, bracketed for ``a.b/c`` keys.

    Examples:
        >>> key_path("metadata.annotations", "deployment.kubernetes.io/revision")
        "metadata.annotations['deployment.kubernetes.io/revision']"
    """
    if any(ch in key for ch in "./") or not key:
        return f"{base}['{key}']"
    return f"{base}.{key}" if base else key


def summarize(value: Any) -> Any:
    """A report-sized form of a removed value: small values as is, large ones described."""
    try:
        size = len(json.dumps(value, default=str))
    except (TypeError, ValueError):  # pragma: no cover - objects are JSON-like
        size = 10**6
    if size <= 160:
        return value
    if isinstance(value, str):
        return f"<{len(value.encode())} bytes>"
    if isinstance(value, list):
        return f"<{len(value)} entries>"
    if isinstance(value, dict):
        return f"<{len(value)} keys: {', '.join(sorted(map(str, value))[:8])}>"
    return f"<{size} bytes of JSON>"


@dataclass
class Work:
    """The object being cleaned, plus what the rules recorded about it so far."""

    obj: Obj
    ref: ObjRef
    ctx: ClusterContext
    changes: list[Change] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> CleanOptions:
        """The cleaning options."""
        return self.ctx.options

    @property
    def kind(self) -> str:
        """Kind of a built-in object; ``""`` for a CR, so per-kind rules never match one."""
        return self.ref.kind if api_group(self.obj) in BUILTIN_GROUPS else ""

    def record(
        self, rule_id: str, path: str, action: Action, before: Any = None, after: Any = None, note: str = ""
    ) -> None:
        """Append a change made by ``rule_id``."""
        self.changes.append(Change(rule_id, path, action, before, after, note))

    def pop(self, rule_id: str, container: Any, key: str, base: str, note: str = "") -> bool:
        """Remove ``container[key]`` if present and record it; return whether it was there."""
        if not isinstance(container, dict) or key not in container:
            return False
        value = container.pop(key)
        self.record(rule_id, key_path(base, key), "remove", before=summarize(value), note=note)
        return True

    def set(self, rule_id: str, container: Obj, key: str, value: Any, base: str, note: str = "") -> bool:
        """Set ``container[key] = value`` when it differs, record a rewrite, return whether it changed."""
        before = container.get(key)
        if before == value:
            return False
        container[key] = value
        self.record(rule_id, key_path(base, key), "rewrite", before=summarize(before), after=value, note=note)
        return True
