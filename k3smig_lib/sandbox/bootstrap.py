"""Objects every sandbox cluster starts with: fake Nodes, StorageClasses, and K3s's own objects.

The target imitates what a fresh K3s server shows the migration: nodes labelled and versioned like
K3s (``node.kubernetes.io/instance-type=k3s``, kubelet ``v1.36.3+k3s1``), the default ``local-path``
StorageClass exactly as K3s ships it, coredns and the local-path provisioner in ``kube-system``, and
an ``nginx`` IngressClass (the ingress-nginx role installs the controller later). The metrics-server
APIService is left out on purpose: an aggregated API without a backend breaks discovery for every
client.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from k3smig_lib.backends.snapshot import read_manifest_file
from k3smig_lib.core.config import BUNDLED_EXAMPLE
from k3smig_lib.core.objects import Obj
from k3smig_lib.k8s.errors import ApiError
from k3smig_lib.k8s.rawapi import ApiClient, dynamic_client
from k3smig_lib.sandbox.cluster import ClusterRuntime, ClusterSpec

K3S_VERSION_SUFFIX = "+k3s1"
SANDBOX_PROVISIONER = "sandbox.k3smig.io/hostpath"
_KUBE_VERSION = "v1.36.3"
_COREFILE = """\
.:53 {
    errors
    health
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    hosts /etc/coredns/NodeHosts {
      ttl 60
      reload 15s
      fallthrough
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
}
"""


def _meta(name: str, namespace: str = "", **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **extra}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _obj(
    api_version: str, kind: str, name: str, namespace: str = "", metadata: dict[str, Any] | None = None, **fields: Any
) -> Obj:
    return {"apiVersion": api_version, "kind": kind, "metadata": _meta(name, namespace, **(metadata or {})), **fields}


_K3S_NODE_LABELS = {
    "node.kubernetes.io/instance-type": "k3s",
    "node-role.kubernetes.io/control-plane": "true",
    "node-role.kubernetes.io/master": "true",
}


def node(spec: ClusterSpec, name: str, kube_version: str) -> Obj:
    """A fake Node kwok manages (annotation ``kwok.x-k8s.io/node=fake``), K3s-flavoured on the target."""
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "type": "kwok",
        "node.kubernetes.io/instance-type": "e2-standard-4",
    }
    annotations = {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}
    version, os_image, runtime = kube_version, "Debian GNU/Linux 12 (bookworm)", "containerd://1.7.24"
    if spec.k3s_like:
        labels |= _K3S_NODE_LABELS | {"k3s.io/hostname": name}
        annotations |= {"k3s.io/node-args": json.dumps(["server"]), "k3s.io/internal-ip": "127.0.0.1"}
        version, os_image, runtime = kube_version + K3S_VERSION_SUFFIX, "Ubuntu 22.04.5 LTS", "containerd://2.0.5-k3s1"
    info = {
        "kubeletVersion": version,
        "kubeProxyVersion": version,
        "architecture": "amd64",
        "operatingSystem": "linux",
        "osImage": os_image,
        "containerRuntimeVersion": runtime,
    }
    capacity = {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return _obj(
        "v1",
        "Node",
        name,
        metadata={"labels": labels, "annotations": annotations},
        spec={},
        status={"capacity": capacity, "allocatable": capacity, "nodeInfo": info},
    )


def storage_class(
    name: str,
    provisioner: str,
    wait_for_consumer: bool,
    default: bool = False,
    annotations: dict[str, str] | None = None,
) -> Obj:
    """A StorageClass; the sandbox provisioner serves every class whatever its provisioner name."""
    ann = dict(annotations or {})
    if default:
        ann["storageclass.kubernetes.io/is-default-class"] = "true"
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": _meta(name, annotations=ann),
        "provisioner": provisioner,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer" if wait_for_consumer else "Immediate",
    }


def _deployment(name: str, ns: str, app_label: dict[str, str], image: str, sa: str) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, ns, labels=app_label),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": app_label},
            "template": {
                "metadata": {"labels": app_label},
                "spec": {
                    "serviceAccountName": sa,
                    "priorityClassName": "system-cluster-critical",
                    "containers": [{"name": name.split("-")[0], "image": image}],
                },
            },
        },
    }


def _coredns() -> list[Obj]:
    ns, app = "kube-system", {"k8s-app": "kube-dns"}
    ports = [
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        {"name": "metrics", "port": 9153, "protocol": "TCP"},
    ]
    return [
        _obj("v1", "ServiceAccount", "coredns", ns),
        _obj("v1", "ConfigMap", "coredns", ns, data={"Corefile": _COREFILE, "NodeHosts": "127.0.0.1 k3s-vm\n"}),
        _deployment("coredns", ns, app, "rancher/mirrored-coredns-coredns:1.12.1", "coredns"),
        _obj(
            "v1",
            "Service",
            "kube-dns",
            ns,
            metadata={"labels": app},
            spec={"clusterIP": "10.43.0.10", "selector": app, "ports": ports},
        ),
    ]


def _local_path() -> list[Obj]:
    ns, sa = "kube-system", "local-path-provisioner-service-account"
    config = {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["/var/lib/rancher/k3s/storage"]}]}
    return [
        storage_class(
            "local-path",
            "rancher.io/local-path",
            wait_for_consumer=True,
            default=True,
            annotations={"defaultVolumeType": "local"},
        ),
        _obj("v1", "ServiceAccount", sa, ns),
        _obj("v1", "ConfigMap", "local-path-config", ns, data={"config.json": json.dumps(config, indent=2)}),
        _deployment(
            "local-path-provisioner",
            ns,
            {"app": "local-path-provisioner"},
            "rancher/local-path-provisioner:v0.0.31",
            sa,
        ),
    ]


_SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "annotations")


def platform_objects() -> list[Obj]:
    """The platform layer phase 20 installs on the VM, without its controllers.

    The cert-manager CRDs and the namespaces of ingress-nginx, cert-manager and external-dns, so issuers,
    certificates and their Secrets can be applied exactly as on a real target.
    """
    crd_file = BUNDLED_EXAMPLE / "manifests" / "_cluster" / "CustomResourceDefinition.yaml"
    crds = []
    for crd in read_manifest_file(crd_file):
        if not crd["spec"]["group"].endswith("cert-manager.io"):
            continue
        meta = {k: v for k, v in crd["metadata"].items() if k not in _SERVER_FIELDS}
        crds.append({"apiVersion": crd["apiVersion"], "kind": crd["kind"], "metadata": meta, "spec": crd["spec"]})
    namespaces = [_obj("v1", "Namespace", n) for n in ("cert-manager", "ingress-nginx", "external-dns")]
    return crds + namespaces


def k3s_system_objects() -> list[Obj]:
    """The objects of a fresh K3s server that matter to a migration, plus the ``nginx`` IngressClass."""
    nginx = _obj("networking.k8s.io/v1", "IngressClass", "nginx", spec={"controller": "k8s.io/ingress-nginx"})
    return _local_path() + _coredns() + [nginx] + platform_objects()


def initial_objects(rt: ClusterRuntime, crds: list[Obj], kube_version: str = _KUBE_VERSION) -> list[Obj]:
    """Everything a cluster gets before its controllers start, in apply order."""
    objs: list[Obj] = list(crds)
    objs += [node(rt.spec, n, kube_version) for n in rt.spec.nodes]
    if rt.spec.k3s_like:
        objs += k3s_system_objects()
    else:
        objs.append(storage_class("standard", SANDBOX_PROVISIONER, wait_for_consumer=False, default=True))
    return objs


def create_all(api: ApiClient, objs: list[Obj], cache_file: Path) -> int:
    """Create ``objs`` in order, leaving objects that already exist alone; return how many were created."""
    dyn = dynamic_client(api, cache_file)
    created = 0
    for obj in objs:
        res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        try:
            res.create(body=obj, namespace=obj["metadata"].get("namespace"))
            created += 1
        except ApiError as e:
            if e.status != 409:
                raise
    return created
