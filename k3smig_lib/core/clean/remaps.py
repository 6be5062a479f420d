"""K3s target remaps (T1, T2, T2b, T4, T5, T6): rewrite what the target does differently (§1 step 6).

Unlike the strip rules these *change* values: storage class, access modes, ingress class, image
registry, external-dns target. T3 (total PVC size against the VM disk) needs the VM size and lives
in :mod:`k3smig_lib.core.lint`. T2b is carried out by the deploy phase once a PVC is bound (the PV
does not exist before); the cleaner records it on each PVC so the report shows it, and applies it
directly to static PVs it keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k3smig_lib.core.clean.context import Work, key_path
from k3smig_lib.core.clean.pods import locate
from k3smig_lib.core.objects import Obj, get_path

RWO = "ReadWriteOnce"
_NODE_LOCAL_DOWNGRADE = frozenset({"ReadWriteMany", "ReadOnlyMany"})
TRAEFIK_ANNOTATION_PREFIX = "traefik.ingress.kubernetes.io/"
EXTERNAL_DNS_HOSTNAME = "external-dns.alpha.kubernetes.io/hostname"
EXTERNAL_DNS_TARGET = "external-dns.alpha.kubernetes.io/target"


def normalize_image(image: str) -> str:
    """Spell out Docker Hub defaults: ``nginx:1.27`` → ``docker.io/library/nginx:1.27``.

    Examples:
        >>> normalize_image("grafana/grafana:11.1.0")
        'docker.io/grafana/grafana:11.1.0'
    """
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if "/" in image else f"docker.io/library/{image}"


def rewrite_image(image: str, rewrites: Mapping[str, str]) -> str | None:
    """The image under the longest matching prefix of ``rewrites`` (T5), or ``None``.

    A prefix matches at a path boundary only (``docker.io/grafana`` does not match
    ``docker.io/grafanalabs/x``); it is tried against the image as written, then normalised.

    Examples:
        >>> rewrite_image("grafana/grafana:11.1.0", {"docker.io/": "rg.fr-par.scw.cloud/mirror/"})
        'rg.fr-par.scw.cloud/mirror/grafana/grafana:11.1.0'
    """
    for candidate in dict.fromkeys((image, normalize_image(image))):
        matches = [p for p in rewrites if candidate.startswith(p) and _boundary(candidate, p)]
        if matches:
            prefix = max(matches, key=len)
            return rewrites[prefix] + candidate[len(prefix):]
    return None


def _boundary(image: str, prefix: str) -> bool:
    return prefix.endswith("/") or len(image) == len(prefix) or image[len(prefix)] in "/:@"


def _storage(work: Work, spec: Obj, base: str) -> None:
    if spec.get("volumeName") and spec["volumeName"] in work.ctx.kept_pv_names:
        return
    target = work.options.storage_class
    work.set("T1", spec, "storageClassName", target, base, note=f"K3s ships {target} as the default class")
    modes = list(spec.get("accessModes") or [])
    if _NODE_LOCAL_DOWNGRADE & set(modes):
        new = list(dict.fromkeys(RWO if m in _NODE_LOCAL_DOWNGRADE else m for m in modes))
        work.set("T2", spec, "accessModes", new, base, note="local-path volumes are node-local")
        work.record("T2", key_path(base, "accessModes"), "warn", before=modes, after=new,
                    note="shared access downgraded: every pod using it must run on the one VM node")


def _volumes(work: Work) -> None:
    if work.kind == "PersistentVolumeClaim":
        spec = work.obj.setdefault("spec", {})
        _storage(work, spec, "spec")
        if spec.get("volumeName") not in work.ctx.kept_pv_names:
            work.record("T2b", "boundPV.spec.persistentVolumeReclaimPolicy", "rewrite", before="Delete",
                        after="Retain", note="deferred: the deploy phase patches the PV once it is bound")
    for i, template in enumerate(get_path(work.obj, "spec.volumeClaimTemplates", []) or []):
        if work.kind == "StatefulSet":
            _storage(work, template.setdefault("spec", {}), f"spec.volumeClaimTemplates[{i}].spec")


def _ingress_class(work: Work) -> None:
    annots: dict[str, Any] = (work.obj.get("metadata") or {}).get("annotations") or {}
    traefik = sorted(k for k in annots if k.startswith(TRAEFIK_ANNOTATION_PREFIX))
    for key in traefik:
        work.pop("T4", annots, key, "metadata.annotations",
                 note="the target serves Ingresses of class nginx, not Traefik annotations")
    if traefik:
        work.record("T4", "metadata.annotations", "warn", before=traefik,
                    note="Traefik middlewares/entrypoints must be redone with ingress-nginx annotations")
    if work.kind == "Ingress":
        spec = work.obj.setdefault("spec", {})
        work.set("T4", spec, "ingressClassName", work.options.ingress_class, "spec",
                 note="class nginx on the target (Traefik's NGINX provider or ingress-nginx)")


def _external_dns(work: Work) -> None:
    annots: dict[str, Any] = (work.obj.get("metadata") or {}).setdefault("annotations", {})
    hostnames = annots.get(EXTERNAL_DNS_HOSTNAME)
    if work.kind == "Service" and not hostnames:
        return
    if hostnames:
        work.record("T6", key_path("metadata.annotations", EXTERNAL_DNS_HOSTNAME), "keep", after=hostnames)
    target = work.options.external_dns_target
    if target:
        work.set("T6", annots, EXTERNAL_DNS_TARGET, target, "metadata.annotations",
                 note="ServiceLB publishes the node internal IP; the VM public address is published instead")
    elif EXTERNAL_DNS_TARGET in annots:
        work.record("T6", key_path("metadata.annotations", EXTERNAL_DNS_TARGET), "warn",
                    before=annots[EXTERNAL_DNS_TARGET],
                    note="target still points at the source; set external_dns_target to the VM public IP")


def _images(work: Work) -> None:
    found = locate(work.obj)
    if found is None or not work.options.registry_rewrites:
        return
    spec, base = found
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            image = str(container.get("image") or "")
            new = rewrite_image(image, work.options.registry_rewrites)
            if new and new != image:
                work.set("T5", container, "image", new, f"{base}.{key}[{container.get('name')}]",
                         note="mirrored to the Scaleway Container Registry")


def apply(work: Work) -> None:
    """Apply the K3s remaps.

    Args:
        work: the object after the strip and per-kind rules.
    """
    _volumes(work)
    if work.kind in ("Ingress", "Service"):
        _ingress_class(work)
        _external_dns(work)
    _images(work)
