"""The K3s compatibility lint: what will not work on a single K3s VM as is, and how it is fixed.

Run in preflight and inventory on the *source* objects (docs/cleaning-rules.md §9).
The lint cleans the export first with the same options as the export phase, so it judges exactly
the objects that will be applied (owned Pods, kube-system and platform add-ons are not counted
twice or at all), reads their *original* form for what the cleaner rewrites, and reuses the
cleaner's changes where it already decided (node pinning, Traefik routes).

Severities: ``error`` blocks the run (it cannot work: the VM lacks the CPU or memory the workloads
request, ServiceLB cannot bind 80/443 next to ingress-nginx, a block volume on local-path);
``warning`` needs a human decision (PVC requests beyond the disk are one: local-path ignores
requests, and the data phase checks the bytes actually used); ``info`` says what the migration will
change. Every risk carries the fix.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from k3smig_lib.core.clean import CleanedObject, CleanOptions, CleanReport, clean_objects
from k3smig_lib.core.clean.context import BUILTIN_GROUPS, CERT_MANAGER_GROUPS
from k3smig_lib.core.clean.pods import locate
from k3smig_lib.core.clean.remaps import TRAEFIK_ANNOTATION_PREFIX, normalize_image, rewrite_image
from k3smig_lib.core.clean.routes import is_route, route_to_ingress
from k3smig_lib.core.objects import Obj, get_path

Severity = Literal["info", "warning", "error"]
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
_RWX = ("ReadWriteMany", "ReadOnlyMany")
#: Annotation prefixes of other ingress controllers, which ingress-nginx ignores.
FOREIGN_INGRESS_ANNOTATIONS = (
    TRAEFIK_ANNOTATION_PREFIX, "alb.ingress.kubernetes.io/", "nginx.org/", "haproxy.org/",
    "ingress.kubernetes.io/", "kubernetes.io/ingress.global-static-ip-name", "appgw.ingress.kubernetes.io/",
)
#: Registries that need cloud credentials the VM does not have.
PRIVATE_REGISTRY_MARKERS = (".dkr.ecr.", ".azurecr.io", "-docker.pkg.dev", "gcr.io/")


@dataclass(frozen=True)
class Risk:
    """One compatibility finding.

    Attributes:
        id: check identifier (``rwx-volume``, ``loadbalancer-port-clash``…), stable across runs.
        severity: ``error`` blocks the run, ``warning`` needs a decision, ``info`` explains a change.
        ref_id: the object concerned (``Kind/namespace/name``, as :attr:`ObjRef.id`), or a group of
            them: ``cluster/<resource>`` for totals, ``HelmRelease/<ns>/<release>``, ``<Kind>/*/*``.
        message: what is wrong, for the operator.
        fix: how to fix it (rendered "to fix this, …").
        rule_id: the cleaning rule involved, when there is one (docs/cleaning-rules.md).
    """

    id: str
    severity: Severity
    ref_id: str
    message: str
    fix: str
    rule_id: str = ""


@dataclass(frozen=True)
class Capacity:
    """The planned VM.

    Attributes:
        disk_gb: root volume size in GB (10^9 bytes, as Scaleway sells volumes); default 80.
        cpu: vCPUs; default 4.
        memory_gib: memory in GiB; default 8.
    """

    disk_gb: int = 80
    cpu: float = 4.0
    memory_gib: float = 8.0


@dataclass(frozen=True)
class LintInput:
    """What every check reads: the cleaned export, the VM and the options."""

    report: CleanReport
    capacity: Capacity
    options: CleanOptions

    def kept(self, *kinds: str) -> Iterator[CleanedObject]:
        """Kept objects, optionally of the given kinds."""
        return (o for o in self.report.kept() if not kinds or o.ref.kind in kinds)


def _rwx(inp: LintInput) -> Iterator[Risk]:
    for item in inp.kept("PersistentVolumeClaim", "StatefulSet"):
        modes = item.facts.get("access_modes") or []
        for template in item.facts.get("volume_claim_templates") or []:
            modes = modes + template["access_modes"]
        if set(modes) & set(_RWX):
            yield Risk("rwx-volume", "warning", item.ref.id,
                       f"{item.ref} asks for {sorted(set(modes) & set(_RWX))}; local-path volumes are "
                       "node-local and become ReadWriteOnce (T2)",
                       "nothing on a single VM (every pod runs on its one node); share wider with an NFS PV",
                       "T2")


def _storage_classes(inp: LintInput) -> Iterator[Risk]:
    users: dict[str, list[CleanedObject]] = defaultdict(list)
    for item in inp.kept("PersistentVolumeClaim", "StatefulSet"):
        classes = [item.facts.get("storage_class", "")] + [
            t["storage_class"] for t in item.facts.get("volume_claim_templates") or []]
        for klass in classes:
            if klass and klass != inp.options.storage_class and not _bound_static(item):
                users[klass].append(item)
        if item.facts.get("volume_mode") == "Block":
            yield Risk("block-volume", "error", item.ref.id, f"{item.ref} is a raw block volume",
                       "local-path only provides filesystems: convert the app to a filesystem volume", "T1")
    for klass, items in sorted(users.items()):
        yield Risk("storage-class", "info", f"StorageClass/_cluster/{klass}",
                   f"StorageClass {klass} does not exist on K3s: {len(items)} claim(s) are mapped to "
                   f"{inp.options.storage_class} (T1)",
                   f"nothing, unless the volume needs features of {klass} (encryption, snapshots)", "T1")
    for item in inp.kept("PersistentVolume"):
        yield Risk("static-volume", "warning", item.ref.id,
                   f"static {item.ref} is kept and bound as on the source (not copied by the data phase)",
                   "make sure its server (NFS, iSCSI…) is reachable from the VM, or drop it and copy data",
                   "K20")


def _bound_static(item: CleanedObject) -> bool:
    return bool(item.cleaned and get_path(item.cleaned, "spec.volumeName"))


def _load_balancers(inp: LintInput) -> Iterator[Risk]:
    taken: dict[int, list[str]] = defaultdict(list)
    for item in inp.kept("Service"):
        if item.facts.get("service_type") != "LoadBalancer":
            continue
        if item.facts.get("fronted_by_ingress"):
            yield Risk("loadbalancer-behind-ingress", "info", item.ref.id,
                       f"{item.ref} is a LoadBalancer fronted by an Ingress: it becomes ClusterIP (K6)",
                       "nothing: traffic reaches it through ingress-nginx", "K6")
            continue
        ports = [int(p.get("port", 0)) for p in get_path(item.original, "spec.ports", []) or []]
        for port in ports:
            taken[port].append(item.ref.id)
        yield Risk("loadbalancer-servicelb", "warning", item.ref.id,
                   f"{item.ref} stays LoadBalancer: ServiceLB binds host ports {ports} on the VM (K6)",
                   "open these ports in the VM security group, or put the app behind an Ingress", "K6")
    for port, refs in sorted(taken.items()):
        if port in (80, 443):
            yield Risk("loadbalancer-port-clash", "error", refs[0],
                       f"port {port} of {', '.join(refs)} collides with ingress-nginx on the VM",
                       "serve it through an Ingress (it then becomes ClusterIP) or change its port", "K6")
        elif len(refs) > 1:
            yield Risk("loadbalancer-port-clash", "error", refs[1],
                       f"{len(refs)} LoadBalancer Services want host port {port}: {', '.join(refs)}",
                       "give each a distinct port or route them through an Ingress", "K6")


def _ingresses(inp: LintInput) -> Iterator[Risk]:
    for item in inp.kept("Ingress"):
        annots = get_path(item.original, "metadata.annotations") or {}
        klass = get_path(item.original, "spec.ingressClassName")
        legacy = annots.get("kubernetes.io/ingress.class")
        if klass and klass != inp.options.ingress_class:
            yield Risk("ingress-class", "warning", item.ref.id,
                       f"{item.ref} uses ingress class {klass!r}; it is rewritten to "
                       f"{inp.options.ingress_class!r} (T4)",
                       "check that its routing works on ingress-nginx (paths, TLS, redirects)", "T4")
        if legacy is not None:
            yield Risk("ingress-class-annotation", "info", item.ref.id,
                       f"{item.ref} uses the deprecated kubernetes.io/ingress.class={legacy!r} annotation",
                       f"nothing: it becomes spec.ingressClassName: {inp.options.ingress_class} (K24)", "K24")
        foreign = sorted(k for k in annots if k.startswith(FOREIGN_INGRESS_ANNOTATIONS))
        if foreign:
            yield Risk("ingress-annotations", "warning", item.ref.id,
                       f"{item.ref} has annotations ingress-nginx ignores: {', '.join(foreign)}",
                       "translate them to nginx.ingress.kubernetes.io/* annotations", "T4")


def _traefik(inp: LintInput) -> Iterator[Risk]:
    for item in inp.report.dropped():
        if item.changes[0].rule_id != "T4":
            continue
        if item.ref.kind == "CustomResourceDefinition":
            yield Risk("traefik-crd", "info", item.ref.id, f"Traefik CRD {item.ref.name} is not applied",
                       "nothing: the target serves Ingresses of class nginx only", "T4")
        else:
            yield Risk("traefik-route", "warning", item.ref.id,
                       f"Traefik {item.ref.kind} {item.ref} is dropped: its routing is lost on the target",
                       "rewrite it as an Ingress (class nginx) with nginx.ingress.kubernetes.io annotations",
                       "T4")


def _node_pinning(inp: LintInput) -> Iterator[Risk]:
    for item in inp.report.kept():
        pins = [c for c in item.changes if c.rule_id in ("K7", "K9") or "node-selector" in c.path]
        if not pins:
            continue
        labels = [str(c.after) for c in pins if c.action == "warn"]
        fix = f"label the K3s node with {', '.join(labels)}" if labels else "nothing: the pinning is removed"
        severity: Severity = "warning" if labels else "info"
        yield Risk("node-pinning", severity, item.ref.id,
                   f"{item.ref} is pinned to source nodes ({', '.join(sorted({c.path for c in pins}))})",
                   fix, pins[0].rule_id)


def _host_paths(inp: LintInput) -> Iterator[Risk]:
    for item in inp.report.kept():
        found = locate(item.original)
        paths = [get_path(v, "hostPath.path") for v in (found[0].get("volumes") or [])] if found else []
        for path in [p for p in paths if p]:
            yield Risk("host-path", "warning", item.ref.id,
                       f"{item.ref} mounts hostPath {path}: data on the source node is not migrated",
                       f"create {path} on the VM (Ansible) and copy its content, or move the data to a PVC")


def _images(inp: LintInput) -> Iterator[Risk]:
    users: dict[str, list[CleanedObject]] = defaultdict(list)
    for item in inp.report.kept():
        for image in item.facts.get("images") or []:
            if not rewrite_image(image, inp.options.registry_rewrites) and ".scw.cloud/" not in image:
                users[image].append(item)
    for image, items in sorted(users.items()):
        private = any(m in normalize_image(image) for m in PRIVATE_REGISTRY_MARKERS)
        yield Risk("image-registry", "warning" if private else "info", items[0].ref.id,
                   f"{image} ({len(items)} object(s)) is pulled from "
                   f"{normalize_image(image).split('/')[0]}, not the Scaleway registry",
                   "mirror it to the Scaleway Container Registry and add a registry_rewrites entry (T5)"
                   + ("; the VM has no credentials for this cloud registry" if private else ""), "T5")


def _crds(inp: LintInput) -> Iterator[Risk]:
    crs = Counter(o.ref.kind for o in inp.kept() if _custom(o.ref.group))
    defined = set()
    for item in inp.kept("CustomResourceDefinition"):
        kind = str(get_path(item.original, "spec.names.kind") or "")
        defined.add(kind)
        yield Risk("crd-operator", "warning", item.ref.id,
                   f"CRD {item.ref.name} is applied ({crs.get(kind, 0)} {kind} object(s)), but no planned "
                   "platform component runs its operator",
                   "install the operator on K3s (Helm, before stage 99) or drop the CRD and its objects")
    for kind, count in sorted(crs.items()):
        if kind not in defined:
            yield Risk("missing-crd", "warning", f"{kind}/*/*",
                       f"{count} {kind} object(s) have no CRD in the export: applying them will fail",
                       "export the CRD too, or install the operator that ships it before applying")


def _routes(inp: LintInput) -> Iterator[Risk]:
    services = [o.original for o in inp.kept("Service")]
    for item in inp.kept("Route"):
        if not is_route(item.original):
            continue
        ingress, _ = route_to_ingress(item.original, ingress_class=inp.options.ingress_class, services=services)
        host = ingress["spec"]["rules"][0].get("host", "(no host)")
        yield Risk("openshift-route", "warning", item.ref.id,
                   f"{item.ref} is an OpenShift Route ({host}); K3s does not serve route.openshift.io, so it "
                   "routes nothing there",
                   "apply the equivalent Ingress shown in the export report (phase 40, or report.json of "
                   "`k3smig clean`) and delete the Route from the tree")


def _custom(group: str) -> bool:
    return group not in BUILTIN_GROUPS and group not in CERT_MANAGER_GROUPS


def _helm(inp: LintInput) -> Iterator[Risk]:
    releases: dict[tuple[str, str], int] = Counter()
    for item in inp.report.objects:
        release = item.facts.get("helm_release")
        if release and (not item.dropped or item.changes[0].rule_id == "KEEP5"):
            releases[(release["namespace"], release["name"])] += 1
    kept = inp.options.keep_helm_releases
    for (namespace, name), count in sorted(releases.items()):
        yield Risk("helm-managed", "info", f"HelmRelease/{namespace}/{name}",
                   f"Helm release {name} in ns {namespace} ({count} object(s)) "
                   + ("keeps its release record" if kept else "is applied as plain manifests"),
                   "nothing" + ("" if kept else "; helm upgrade --take-ownership (Helm ≥ 3.17) adopts them"),
                   "KEEP5")


def _batch(inp: LintInput) -> Iterator[Risk]:
    for item in inp.kept("Job"):
        if any(c.rule_id == "K13" for c in item.changes):
            yield Risk("standalone-job", "warning", item.ref.id, f"{item.ref} is created suspended (K13)",
                       "unsuspend it after cutover if it must run again, or annotate it "
                       "k3smig.io/idempotent=true before the export",
                       "K13")
    for item in inp.kept("CronJob"):
        yield Risk("cronjob-suspended", "info", item.ref.id,
                   f"{item.ref} is created suspended until cutover (K14)",
                   "resume it at cutover (spec.suspend: false) and suspend it on the source", "K14")


def _fs_groups(inp: LintInput) -> Iterator[Risk]:
    for item in inp.report.kept():
        fs_group = (item.facts.get("pod_security") or {}).get("fsGroup")
        if fs_group is not None and item.facts.get("claims"):
            yield Risk("fsgroup-local-path", "warning", item.ref.id,
                       f"{item.ref} relies on fsGroup {fs_group}, which local-path volumes ignore",
                       f"let the data phase chown its volumes to the pod's runAsUser/fsGroup ({fs_group})",
                       "KEEP6")


def _network_policies(inp: LintInput) -> Iterator[Risk]:
    namespaces = Counter(item.ref.namespace for item in inp.kept("NetworkPolicy"))
    for namespace, count in sorted(namespaces.items()):
        yield Risk("network-policy", "warning", f"Namespace/_cluster/{namespace}",
                   f"{count} NetworkPolicy object(s) in ns {namespace} are enforced on K3s (kube-router)",
                   "they are applied after the data phase (stage 13); allow the loader pods if earlier")


def _cleaner_warnings(inp: LintInput) -> Iterator[Risk]:
    for ref, change in inp.report.warnings():
        if change.rule_id in ("M13", "T6"):
            yield Risk(f"cleaning-{change.rule_id.lower()}", "warning", ref.id, f"{ref}: {change.note}",
                       "review the cleaned object before applying", change.rule_id)


#: Disk kept free for the OS, K3s and container images (GB).
SYSTEM_DISK_RESERVE_GB = 10
#: CPU and memory taken by K3s, ingress-nginx, cert-manager, external-dns, CoreDNS, metrics-server.
PLATFORM_CPU_RESERVE = 0.5
PLATFORM_MEMORY_RESERVE_GIB = 1.5
_PODS_ALWAYS_ONE = ("DaemonSet", "Pod")
_RUNNING_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Pod")


def _volume_bytes(inp: LintInput) -> int:
    claims = {(o.ref.namespace, o.ref.name) for o in inp.kept("PersistentVolumeClaim")}
    total = sum(max(o.facts.get("requested_bytes", 0), o.facts.get("capacity_bytes", 0))
                for o in inp.kept("PersistentVolumeClaim") if not _bound_static(o))
    for sts in inp.kept("StatefulSet"):
        for template in sts.facts.get("volume_claim_templates") or []:
            names = {f"{template['name']}-{sts.ref.name}-{i}" for i in range(sts.facts.get("replicas", 1))}
            missing = [n for n in names if (sts.ref.namespace, n) not in claims]
            total += len(missing) * int(template["requested_bytes"])
    return int(total)


def _level(needed: float, available: float) -> Severity:
    if needed > available:
        return "error"
    return "warning" if needed > 0.8 * available else "info"


def _disk(inp: LintInput) -> Iterator[Risk]:
    """T3: requested PVC bytes against the disk; a warning, never an error.

    Requests are upper bounds (local-path ignores them); the data phase measures the bytes actually used.
    """
    needed = _volume_bytes(inp) / 1e9
    available = float(inp.capacity.disk_gb - SYSTEM_DISK_RESERVE_GB)
    severity: Severity = "warning" if needed > 0.8 * available else "info"
    yield Risk("disk-capacity", severity, "cluster/disk",
               f"PVCs request {needed:.1f} GB; the {inp.capacity.disk_gb} GB disk leaves {available:.0f} GB for "
               "volumes, and local-path does not enforce sizes (T3)",
               "choose a larger root volume (disk_gb) if the data used comes close, or leave behind data that "
               "need not move", "T3")


def requested(report: CleanReport) -> tuple[float, float, int]:
    """CPU (cores), memory (GiB) and volume bytes the *migrated* workloads request: the one sum every report shows.

    Preflight's capacity table, its lint and the capacity chart all read this, so they cannot disagree.
    """
    inp = LintInput(report, Capacity(), CleanOptions())
    cpu = memory = 0.0
    for item in inp.kept(*_RUNNING_KINDS):
        replicas = 1 if item.ref.kind in _PODS_ALWAYS_ONE else int(item.facts.get("replicas", 1))
        requests = item.facts.get("requests") or {}
        cpu += replicas * float(requests.get("cpu", 0.0))
        memory += replicas * float(requests.get("memory_bytes", 0.0)) / 2**30
    return cpu, memory, _volume_bytes(inp)


def _compute(inp: LintInput) -> Iterator[Risk]:
    cpu, memory, _ = requested(inp.report)
    rows = (("cpu", cpu, inp.capacity.cpu - PLATFORM_CPU_RESERVE, "cores", "vm_cpu"),
            ("memory", memory, inp.capacity.memory_gib - PLATFORM_MEMORY_RESERVE_GIB, "GiB", "vm_memory_gib"))
    for name, needed, available, unit, knob in rows:
        yield Risk(f"{name}-capacity", _level(needed, available), f"cluster/{name}",
                   f"workloads request {needed:.2f} {unit} of {name} (replicas × containers); the VM leaves "
                   f"{available:.2f} {unit} after K3s and the platform add-ons",
                   f"choose a larger instance ({knob}) or lower replicas/requests")


CHECKS: tuple[Callable[[LintInput], Iterator[Risk]], ...] = (
    _rwx, _storage_classes, _load_balancers, _ingresses, _traefik, _node_pinning, _host_paths, _images,
    _crds, _helm, _batch, _fs_groups, _network_policies, _cleaner_warnings, _disk, _compute, _routes,
)


def lint(
    objects: Sequence[Obj], capacity: Capacity | None = None, options: CleanOptions | None = None
) -> list[Risk]:
    """Check an export against a single-VM K3s target.

    Args:
        objects: the source objects, as exported.
        capacity: the planned VM (disk, vCPUs, memory).
        options: the cleaning options the export phase will use.

    Returns:
        Every risk found, errors first, then warnings, then infos.
    """
    inp = LintInput(clean_objects(objects, options), capacity or Capacity(), options or CleanOptions())
    risks = [risk for check in CHECKS for risk in check(inp)]
    return sorted(risks, key=lambda r: (_SEVERITY_ORDER[r.severity], r.id, r.ref_id))

