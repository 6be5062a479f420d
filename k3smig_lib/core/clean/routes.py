"""OpenShift Routes → the Ingress that does the same job on K3s (ingress-nginx).

K3s does not serve ``route.openshift.io``: a Route is applied as an unknown kind (refused without its
CRD, ignored with it). The cleaner keeps it (it is the operator's to delete) and the lint warns; the
reports show the equivalent Ingress so the operator can review and apply it instead. The mapping:
``spec.host`` → rule host, ``spec.path`` → a ``Prefix`` path, ``spec.to`` → the backend Service,
``spec.port.targetPort`` → the Service port that targets it (looked up in the export's Services, else
the name or number as given), TLS ``edge``/``reencrypt`` → a TLS section with a ``<route>-tls``
Secret for cert-manager to fill, ``reencrypt`` → ``backend-protocol: HTTPS``, ``passthrough`` →
``ssl-passthrough``. Weighted ``alternateBackends`` have no Ingress equivalent and are reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from k3smig_lib.core.objects import Obj, get_path, ref

ROUTE_GROUP = "route.openshift.io"
_NGINX = "nginx.ingress.kubernetes.io/"


def is_route(obj: Obj) -> bool:
    """True for an OpenShift Route."""
    return obj.get("kind") == "Route" and str(obj.get("apiVersion", "")).startswith(f"{ROUTE_GROUP}/")


def _service_port(route: Obj, services: Iterable[Obj]) -> dict[str, Any]:
    """The backend port: the Service port whose name or targetPort is the Route's targetPort."""
    target = get_path(route, "spec.port.targetPort")
    name = str(get_path(route, "spec.to.name") or "")
    for svc in services:
        if svc.get("kind") != "Service" or ref(svc).name != name or ref(svc).namespace != ref(route).namespace:
            continue
        ports = get_path(svc, "spec.ports", []) or []
        for port in ports:
            if target in (port.get("name"), port.get("targetPort"), port.get("port")):
                return {"number": int(port["port"])}
        if target is None and len(ports) == 1:
            return {"number": int(ports[0]["port"])}
    if isinstance(target, int):
        return {"number": target}
    return {"name": str(target)} if target else {"number": 80}


def _tls(route: Obj, host: str, annotations: dict[str, str]) -> list[dict[str, Any]]:
    termination = get_path(route, "spec.tls.termination")
    if not termination:
        return []
    if termination == "passthrough":
        annotations[f"{_NGINX}ssl-passthrough"] = "true"
        return []
    if termination == "reencrypt":
        annotations[f"{_NGINX}backend-protocol"] = "HTTPS"
    if get_path(route, "spec.tls.insecureEdgeTerminationPolicy") == "Allow":
        annotations[f"{_NGINX}ssl-redirect"] = "false"
    return [{"hosts": [host], "secretName": f"{ref(route).name}-tls"}] if host else []


def route_to_ingress(
    route: Obj, *, ingress_class: str = "nginx", services: Iterable[Obj] = ()
) -> tuple[Obj, list[str]]:
    """The Ingress equivalent to ``route``, and notes on what did not carry over.

    Examples:
        >>> route = {"apiVersion": "route.openshift.io/v1", "kind": "Route",
        ...          "metadata": {"name": "web", "namespace": "shop"},
        ...          "spec": {"host": "shop.example.org", "to": {"kind": "Service", "name": "web"},
        ...                   "port": {"targetPort": 8080}}}
        >>> ingress, notes = route_to_ingress(route)
        >>> ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]
        {'service': {'name': 'web', 'port': {'number': 8080}}}
    """
    r = ref(route)
    host = str(get_path(route, "spec.host") or "")
    annotations: dict[str, str] = {}
    notes: list[str] = []
    path = {"path": str(get_path(route, "spec.path") or "/"), "pathType": "Prefix",
            "backend": {"service": {"name": str(get_path(route, "spec.to.name") or ""),
                                    "port": _service_port(route, services)}}}
    rule: dict[str, Any] = {"http": {"paths": [path]}}
    if host:
        rule = {"host": host, **rule}
    else:
        notes.append("the Route has no host (OpenShift generated one): set the host of the Ingress")
    spec: dict[str, Any] = {"ingressClassName": ingress_class, "rules": [rule]}
    tls = _tls(route, host, annotations)
    if tls:
        spec["tls"] = tls
        notes.append(f"TLS: the Secret {tls[0]['secretName']} must exist (cert-manager issues it with an annotation)")
    if get_path(route, "spec.alternateBackends"):
        notes.append("alternateBackends (weighted traffic split) have no Ingress equivalent and were left out")
    meta: dict[str, Any] = {"name": r.name, "namespace": r.namespace}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}, notes
