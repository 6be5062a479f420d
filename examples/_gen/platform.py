"""The cluster itself: system namespaces, the ``kubernetes`` Service, storage and priority classes,
aggregated APIs and bootstrap RBAC, plus kube-system's add-ons (see ``kube_system``).

None of this should travel to K3s (it has its own), which is what makes it useful in the example.
"""

from __future__ import annotations

from _gen import basics, kube_system, networking
from _gen.common import CLUSTER_CREATED, Obj, ts_add
from _gen.kube_system import ADDON
from _gen.server import KUBECTL, Cluster, applied
from _gen.topology import API_SERVER_IP

APISERVER = "kube-apiserver"
_RBAC = "rbac.authorization.k8s.io"
_READ = ["get", "list", "watch"]
#: Bootstrap ClusterRoles (trimmed rules): name → rules.
_BOOTSTRAP_ROLES: dict[str, list[Obj]] = {
    "cluster-admin": [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ],
    "view": [
        {
            "apiGroups": [""],
            "resources": ["configmaps", "endpoints", "persistentvolumeclaims", "pods", "services"],
            "verbs": _READ,
        }
    ],
}
_COREDNS_RULES: list[Obj] = [
    {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
]
_SYSTEM_PRIORITIES = {
    "system-cluster-critical": (
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
    "system-node-critical": (
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
}


def _available(when: str, reason: str, message: str) -> Obj:
    return {
        "conditions": [
            {"lastTransitionTime": when, "message": message, "reason": reason, "status": "True", "type": "Available"}
        ]
    }


def _kubernetes_service(c: Cluster) -> None:
    labels = {"component": "apiserver", "provider": "kubernetes"}
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
        "spec": {"clusterIP": "10.32.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]},
    }
    networking.service(c, svc, CLUSTER_CREATED, manager=APISERVER)
    ports = [{"name": "https", "port": 6443, "protocol": "TCP"}]
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{"addresses": [{"ip": API_SERVER_IP}], "ports": ports}],
    }
    applied(c, endpoints, CLUSTER_CREATED, manager=APISERVER)
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "addressType": "IPv4",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "kubernetes"},
        },
        "endpoints": [{"addresses": [API_SERVER_IP], "conditions": {"ready": True}}],
        "ports": ports,
    }
    applied(c, endpoint_slice, CLUSTER_CREATED, manager=APISERVER)


def _classes(c: Cluster) -> None:
    for name, reclaim, default in (("scw-bssd", "Delete", True), ("scw-bssd-retain", "Retain", False)):
        meta: Obj = {"name": name, "labels": dict(ADDON)}
        if default:
            meta["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
        storage_class = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": meta,
            "provisioner": "csi.scaleway.com",
            "reclaimPolicy": reclaim,
            "allowVolumeExpansion": True,
            "volumeBindingMode": "WaitForFirstConsumer",
            "parameters": {"type": "b_ssd"},
        }
        applied(c, storage_class, ts_add(CLUSTER_CREATED, 95))
    scheduling = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass"}
    for name, (value, description) in _SYSTEM_PRIORITIES.items():
        system = {**scheduling, "metadata": {"name": name}, "value": value, "description": description}
        applied(c, system, CLUSTER_CREATED, manager=APISERVER)
    description = "Stateful production services that must not be preempted by CI jobs."
    prod = {**scheduling, "metadata": {"name": "prod-critical"}, "value": 1_000_000, "globalDefault": False}
    applied(c, {**prod, "description": description}, "2024-03-02T19:20:41Z")


def _api_services(c: Cluster) -> None:
    local = _available(CLUSTER_CREATED, "Local", "Local APIServices are always available")
    for group, name, minimum, priority in (("", "v1.", 18000, 1), ("apps", "v1.apps", 17800, 15)):
        spec: Obj = {"groupPriorityMinimum": minimum, "version": "v1", "versionPriority": priority}
        if group:
            spec["group"] = group
        labels = {"kube-aggregator.kubernetes.io/automanaged": "onstart"}
        service = {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
        }
        applied(c, service, CLUSTER_CREATED, manager=APISERVER, status=local)
    metrics = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": "v1beta1.metrics.k8s.io", "labels": {"k8s-app": "metrics-server", **ADDON}},
        "spec": {
            "group": "metrics.k8s.io",
            "groupPriorityMinimum": 100,
            "insecureSkipTLSVerify": True,
            "service": {"name": "metrics-server", "namespace": "kube-system", "port": 443},
            "version": "v1beta1",
            "versionPriority": 100,
        },
    }
    passed = _available(ts_add(CLUSTER_CREATED, 190), "Passed", "all checks passed")
    applied(c, metrics, ts_add(CLUSTER_CREATED, 120), status=passed)


def _bootstrap_rbac(c: Cluster) -> None:
    for name, rules in _BOOTSTRAP_ROLES.items():
        meta = {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        }
        role = {"apiVersion": f"{_RBAC}/v1", "kind": "ClusterRole", "metadata": meta, "rules": rules}
        applied(c, role, CLUSTER_CREATED, manager=APISERVER)
    labels = {"k8s-app": "kube-dns", **ADDON}
    coredns_role = {
        "apiVersion": f"{_RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:coredns", "labels": labels},
        "rules": _COREDNS_RULES,
    }
    applied(c, coredns_role, CLUSTER_CREATED, manager=KUBECTL)
    binding = {
        "apiVersion": f"{_RBAC}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "system:coredns", "labels": dict(labels)},
        "roleRef": {"apiGroup": _RBAC, "kind": "ClusterRole", "name": "system:coredns"},
        "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
    }
    applied(c, binding, ts_add(CLUSTER_CREATED, 100))


def build(c: Cluster) -> None:
    """Create the cluster-level and kube-system objects."""
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        basics.namespace(c, name, CLUSTER_CREATED, manager=APISERVER)
    _kubernetes_service(c)
    _classes(c)
    _api_services(c)
    _bootstrap_rbac(c)
    kube_system.coredns(c)
    kube_system.metrics_server(c)
    kube_system.node_daemonsets(c)
