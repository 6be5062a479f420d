"""Service rules (K1-K6): addresses and ports the source allocated, and ServiceLB on K3s.

K6 runs before K3 because a Service that becomes ClusterIP may not keep any nodePort, whatever
KEEP2 says. A LoadBalancer Service that no Ingress fronts stays LoadBalancer: ServiceLB serves it
with host ports on the VM, and a ``warn`` change says which ports it will take (80/443 collide with
ingress-nginx, k3s-io/k3s#1969).
"""

from __future__ import annotations

from typing import Any

from k3smig_lib.core.clean import keep
from k3smig_lib.core.clean.context import Work

#: Fields only valid for externally reachable Services, removed when K6 makes one ClusterIP.
_EXTERNAL_ONLY = ("externalTrafficPolicy", "allocateLoadBalancerNodePorts", "loadBalancerSourceRanges")


def _cluster_ips(work: Work, spec: dict[str, Any]) -> None:
    if spec.get("clusterIP") not in (None, "None"):
        work.pop("K1", spec, "clusterIP", "spec", note="allocated from the source service CIDR")
    ips = spec.get("clusterIPs")
    if ips is not None and (not ips or ips[0] != "None"):
        work.pop("K2", spec, "clusterIPs", "spec", note="dual-stack form of the source clusterIP")


def _load_balancer(work: Work, spec: dict[str, Any]) -> None:
    if spec.get("type") != "LoadBalancer":
        return
    if work.facts.get("fronted_by_ingress"):
        work.set("K6", spec, "type", "ClusterIP", "spec",
                 note="an Ingress fronts it; ServiceLB would fight the ingress controller for host ports")
        for key in _EXTERNAL_ONLY:
            work.pop("K6", spec, key, "spec", note="only valid for NodePort/LoadBalancer Services")
        return
    ports = [p.get("port") for p in spec.get("ports") or []]
    clash = " — 80/443 collide with the ingress controller" if {80, 443} & set(ports) else ""
    work.record("K6", "spec.type", "warn", before="LoadBalancer",
                note=f"kept LoadBalancer: ServiceLB binds host ports {ports} on the VM{clash}")


def _node_ports(work: Work, spec: dict[str, Any]) -> None:
    external = spec.get("type") in ("NodePort", "LoadBalancer")
    for i, port in enumerate(spec.get("ports") or []):
        if "nodePort" not in port:
            continue
        if external and keep.keeps_node_port(work, port):
            continue
        if not external:
            note = "a ClusterIP Service has no nodePorts"
        elif port["nodePort"] in (work.facts.get("explicit_node_ports") or []):
            note = "set explicitly, but expose_node_ports is false"
        else:
            note = "auto-assigned: would collide or fall out of range"
        work.pop("K3", port, "nodePort", f"spec.ports[{i}]", note=note)


def apply(work: Work) -> None:
    """Apply the Service rules.

    Args:
        work: the object being cleaned; non-Services are left alone.
    """
    if work.kind != "Service":
        return
    spec = work.obj.get("spec") or {}
    _cluster_ips(work, spec)
    _load_balancer(work, spec)
    _node_ports(work, spec)
    work.pop("K4", spec, "healthCheckNodePort", "spec", note="auto-assigned")
    for key in ("externalIPs", "loadBalancerIP", "loadBalancerClass"):
        work.pop("K5", spec, key, "spec", note="address or class of the source cloud")
