"""Services with allocated ClusterIPs and NodePorts, their Endpoints/EndpointSlices, and Ingress status.

Selector Services get the Endpoints and EndpointSlice the endpoints controllers derive from the ready
Pods; a selectorless Service keeps hand-written Endpoints, which the mirroring controller copies
into an EndpointSlice. LoadBalancer Services get the address the Scaleway cloud controller wrote.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from _gen.common import ZONE, Obj, node_port, service_ip, suffix, ts_add
from _gen.server import KCM, KUBECTL, Cluster, Write, applied, owner_ref

_TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"


@dataclass(frozen=True)
class LoadBalancer:
    """The external address a cloud controller gave a LoadBalancer Service."""

    ip: str
    manager: str = "cloud-controller-manager"
    annotations: tuple[tuple[str, str], ...] = ()


def _allocated(manifest: Obj) -> Obj:
    ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    spec = copy.deepcopy(manifest["spec"])
    svc_type = spec.get("type", "ClusterIP")
    ip = spec.get("clusterIP") or service_ip(ns, name)
    spec.update(
        {
            "clusterIP": ip,
            "clusterIPs": [ip],
            "internalTrafficPolicy": "Cluster",
            "ipFamilyPolicy": spec.get("ipFamilyPolicy", "SingleStack"),
            "sessionAffinity": "None",
            "type": svc_type,
        }
    )
    spec["ipFamilies"] = ["IPv4"]
    for port in spec["ports"]:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port["port"])
        if svc_type in ("NodePort", "LoadBalancer"):
            port.setdefault("nodePort", node_port(ns, name, port["port"]))
    if svc_type in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if svc_type == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    return {"spec": spec}


def service(
    c: Cluster,
    manifest: Obj,
    created: str,
    *,
    pods: list[Obj] | None = None,
    manager: str = KUBECTL,
    lb: LoadBalancer | None = None,
) -> Obj:
    """Create a Service (and, for a selector Service with ``pods``, its Endpoints and EndpointSlice)."""
    writes: tuple[Write, ...] = ()
    if lb is not None:
        ready = ts_add(created, 75)
        lb_status = {"loadBalancer": {"ingress": [{"ip": lb.ip, "ipMode": "VIP"}]}}
        if lb.annotations:
            writes = (Write(lb.manager, ready, {"metadata": {"annotations": dict(lb.annotations)}}),)
        writes = (*writes, Write(lb.manager, ready, {"status": lb_status}, "status"))
    svc = applied(c, manifest, created, manager=manager, admitted=_allocated(manifest), writes=writes)
    svc.setdefault("status", {"loadBalancer": {}})
    if pods is not None:
        endpoints(c, svc, pods, ts_add(created, 2))
    return svc


def _target_port(port: Obj, pod: Obj) -> int:
    target = port["targetPort"]
    if isinstance(target, int):
        return target
    for container in pod["spec"]["containers"]:
        for cport in container.get("ports", []):
            if cport.get("name") == target:
                return int(cport["containerPort"])
    raise KeyError(f"named port {target} not found in pod {pod['metadata']['name']}")


def _target_ref(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {"kind": "Pod", "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]}


def endpoints(c: Cluster, svc: Obj, pods: list[Obj], created: str) -> None:
    """Create the Endpoints and EndpointSlice of a selector Service backed by ``pods``."""
    meta = svc["metadata"]
    ns, name = meta["namespace"], meta["name"]
    labels = dict(meta.get("labels", {}))
    if svc["spec"]["clusterIP"] == "None":
        labels["service.kubernetes.io/headless"] = ""
    ports = (
        [
            {
                **({"name": p["name"]} if "name" in p else {}),
                "port": _target_port(p, pods[0]),
                "protocol": p["protocol"],
            }
            for p in svc["spec"]["ports"]
        ]
        if pods
        else []
    )
    trigger = max(p["status"]["conditions"][2]["lastTransitionTime"] for p in pods) if pods else created
    addresses = [
        {"ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"], "targetRef": _target_ref(p)} for p in pods
    ]
    ep_meta: Obj = {"name": name, "namespace": ns, "annotations": {_TRIGGER: trigger}}
    if labels:
        ep_meta["labels"] = labels
    ep: Obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": ep_meta}
    if pods:
        ep["subsets"] = [{"addresses": sorted(addresses, key=lambda a: a["ip"]), "ports": ports}]
    applied(c, ep, created, manager=KCM)
    slice_endpoints = [
        {
            "addresses": [a["ip"]],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "nodeName": a["nodeName"],
            "targetRef": a["targetRef"],
            "zone": ZONE,
        }
        for a in addresses
    ]
    slice_labels = {
        **labels,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        "kubernetes.io/service-name": name,
    }
    _endpoint_slice(c, svc, slice_labels, slice_endpoints, ports, created, trigger)


def _endpoint_slice(
    c: Cluster,
    svc: Obj,
    labels: dict[str, str],
    items: list[Obj],
    ports: list[Obj],
    created: str,
    trigger: str,
) -> Obj:
    name = svc["metadata"]["name"]
    manifest: Obj = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "addressType": "IPv4",
        "endpoints": sorted(items, key=lambda e: e["addresses"][0]),
        "ports": ports or None,
        "metadata": {
            "name": f"{name}-{suffix('eps:' + svc['metadata']['uid'])}",
            "generateName": f"{name}-",
            "namespace": svc["metadata"]["namespace"],
            "labels": labels,
            "annotations": {_TRIGGER: trigger},
            "ownerReferences": [owner_ref(svc)],
        },
    }
    return applied(c, manifest, created, manager=KCM, generation=1)


def manual_endpoints(c: Cluster, svc: Obj, ips: list[str], ports: list[Obj], created: str) -> Obj:
    """Hand-written Endpoints of a selectorless Service, plus the EndpointSlice the mirroring controller makes."""
    meta = svc["metadata"]
    manifest: Obj = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": dict(meta.get("labels", {})),
        },
        "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": ports}],
    }
    ep = applied(c, manifest, created)
    labels = {
        **meta.get("labels", {}),
        "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io",
        "kubernetes.io/service-name": meta["name"],
    }
    items = [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]
    _endpoint_slice(c, svc, labels, items, ports, ts_add(created, 1), created)
    return ep


def ingress(c: Cluster, manifest: Obj, created: str, lb_ip: str, *, manager: str = KUBECTL) -> Obj:
    """Create an Ingress whose status the ingress-nginx controller has filled in."""
    status = {"loadBalancer": {"ingress": [{"ip": lb_ip}]}}
    write = Write("nginx-ingress-controller", ts_add(created, 30), {"status": status}, "status")
    return applied(c, manifest, created, manager=manager, writes=(write,))
