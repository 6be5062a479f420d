"""``kube-system``'s add-ons on Kapsule: CoreDNS, metrics-server, Cilium and the Scaleway CSI node plugin.

K3s ships its own CoreDNS and metrics-server and uses flannel and local-path, so none of this moves.
"""

from __future__ import annotations

from _gen import basics, networking
from _gen.addon_common import pods_of
from _gen.common import CLUSTER_CREATED, Obj, ts_add
from _gen.server import Cluster
from _gen.topology import NODES
from _gen.workloads import Placement, daemonset, deployment

NS = "kube-system"
#: Label Kapsule puts on the add-ons it manages.
ADDON = {"k8s.scaleway.com/managed": "true"}
_CLUSTER_CRITICAL = 2_000_000_000
_COREFILE = (
    ".:53 {\n    errors\n    health {\n        lameduck 5s\n    }\n    ready\n"
    "    kubernetes cluster.local in-addr.arpa ip6.arpa {\n        pods insecure\n"
    "        fallthrough in-addr.arpa ip6.arpa\n        ttl 30\n    }\n    prometheus :9153\n"
    "    forward . /etc/resolv.conf {\n        max_concurrent 1000\n    }\n    cache 30\n    loop\n"
    "    reload\n    loadbalance\n}\n"
)


def _deployment(name: str, labels: dict[str, str], pod_spec: Obj, replicas: int | None = None) -> Obj:
    spec: Obj = {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": pod_spec}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {**labels, **ADDON}},
        "spec": spec,
    }


def _coredns_container() -> Obj:
    return {
        "name": "coredns",
        "image": "registry.k8s.io/coredns/coredns:v1.11.3",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53},
            {"name": "metrics", "containerPort": 9153},
        ],
        "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
    }


def coredns(c: Cluster) -> None:
    """CoreDNS with its Corefile, two replicas (one per node) and the ``kube-dns`` Service."""
    created = ts_add(CLUSTER_CREATED, 100)
    basics.config_map(c, NS, "coredns", created, {"Corefile": _COREFILE}, labels=dict(ADDON))
    basics.service_account(c, NS, "coredns", created, labels=dict(ADDON))
    labels = {"k8s-app": "kube-dns"}
    pod_spec = {
        "priorityClassName": "system-cluster-critical",
        "serviceAccountName": "coredns",
        "dnsPolicy": "Default",
        "containers": [_coredns_container()],
        "volumes": [{"name": "config-volume", "configMap": {"name": "coredns"}}],
    }
    placements = [Placement(n, "2025-01-06T10:58:40Z") for n in NODES]
    deployment(c, _deployment("coredns", labels, pod_spec, 2), created, placements, priority=_CLUSTER_CRITICAL)
    ports = [
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
        {"name": "dns-tcp", "port": 53, "targetPort": 53},
        {"name": "metrics", "port": 9153, "targetPort": 9153},
    ]
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": NS, "labels": {**labels, **ADDON}},
        "spec": {"clusterIP": "10.32.0.10", "selector": labels, "ports": ports},
    }
    networking.service(c, svc, created, pods=pods_of(c.objects, NS, labels))


def metrics_server(c: Cluster) -> None:
    """metrics-server (what the ``v1beta1.metrics.k8s.io`` APIService points at) and its Service."""
    created = ts_add(CLUSTER_CREATED, 120)
    labels = {"k8s-app": "metrics-server"}
    basics.service_account(c, NS, "metrics-server", created, labels={**labels, **ADDON})
    args = ["--cert-dir=/tmp", "--secure-port=10250", "--kubelet-preferred-address-types=InternalIP"]
    container: Obj = {
        "name": "metrics-server",
        "image": "registry.k8s.io/metrics-server/metrics-server:v0.7.2",
        "args": args + ["--kubelet-use-node-status-port", "--metric-resolution=15s"],
        "ports": [{"name": "https", "containerPort": 10250}],
        "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}},
        "securityContext": {"readOnlyRootFilesystem": True, "runAsNonRoot": True, "runAsUser": 1000},
    }
    pod_spec = {
        "priorityClassName": "system-cluster-critical",
        "serviceAccountName": "metrics-server",
        "containers": [container],
    }
    placements = [Placement(NODES[1], "2025-01-06T10:58:52Z")]
    deployment(c, _deployment("metrics-server", labels, pod_spec), created, placements, priority=_CLUSTER_CRITICAL)
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "metrics-server", "namespace": NS, "labels": {**labels, **ADDON}},
        "spec": {"selector": labels, "ports": [{"name": "https", "port": 443, "targetPort": "https"}]},
    }
    networking.service(c, svc, created, pods=pods_of(c.objects, NS, labels))


def node_daemonsets(c: Cluster) -> None:
    """Cilium and the Scaleway CSI node plugin: privileged host-network DaemonSets on every node."""
    for name, image, created in (
        ("cilium", "quay.io/cilium/cilium:v1.15.11", ts_add(CLUSTER_CREATED, 90)),
        ("csi-node", "rg.fr-par.scw.cloud/scaleway/scaleway-csi:v0.3.1", ts_add(CLUSTER_CREATED, 95)),
    ):
        labels = {"k8s-app": name}
        basics.service_account(c, NS, name, created, labels={**labels, **ADDON})
        container: Obj = {
            "name": name.replace("csi-node", "scaleway-csi-plugin"),
            "image": image,
            "securityContext": {"privileged": True},
            "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}},
        }
        pod_spec = {
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "serviceAccountName": name,
            "containers": [container],
        }
        manifest = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": NS, "labels": {**labels, **ADDON}},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        }
        daemonset(c, manifest, created, priority=2_000_001_000)
