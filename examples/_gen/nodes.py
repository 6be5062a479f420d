"""Node objects (with the volumes attached to them) and coordination Leases.

Nodes are built last because their ``status.volumesInUse`` lists the CSI volumes of the Pods that
run on them; their creation time is still the cluster's.
"""

from __future__ import annotations

from _gen.common import CLUSTER_CREATED, EXPORTED_AT, K8S_VERSION, REGION, ZONE, Obj, hex_id, ts_add, uid
from _gen.server import KCM, Cluster, Write, applied, owner_ref
from _gen.storage import volume_handle
from _gen.topology import NODES, POOL, Node

_HEARTBEAT = ts_add(EXPORTED_AT, -37)


def _labels(node: Node) -> dict[str, str]:
    return {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": node.instance_type,
        "beta.kubernetes.io/os": "linux",
        "failure-domain.beta.kubernetes.io/region": REGION,
        "failure-domain.beta.kubernetes.io/zone": ZONE,
        "k8s.scaleway.com/kapsule": uid("kapsule", "prod-k8s"),
        "k8s.scaleway.com/managed": "true",
        "k8s.scaleway.com/node": uid("kapsule-node", node.name),
        "k8s.scaleway.com/pool": uid("kapsule-pool", POOL),
        "k8s.scaleway.com/pool-name": POOL,
        "k8s.scaleway.com/runtime": "containerd",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": node.instance_type,
        "topology.csi.scaleway.com/zone": ZONE,
        "topology.kubernetes.io/region": REGION,
        "topology.kubernetes.io/zone": ZONE,
    }


def _conditions() -> list[Obj]:
    checks = [
        ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ]
    items: list[Obj] = [
        {
            "lastHeartbeatTime": _HEARTBEAT,
            "lastTransitionTime": "2025-01-06T10:57:31Z",
            "message": msg,
            "reason": reason,
            "status": "False",
            "type": kind,
        }
        for kind, reason, msg in checks
    ]
    items.append(
        {
            "lastHeartbeatTime": _HEARTBEAT,
            "lastTransitionTime": "2025-01-06T10:57:52Z",
            "message": "kubelet is posting ready status",
            "reason": "KubeletReady",
            "status": "True",
            "type": "Ready",
        }
    )
    return items


def _volumes_on(c: Cluster, node: Node) -> list[str]:
    handles = []
    for pod in c.objects:
        if pod["kind"] != "Pod" or pod["spec"].get("nodeName") != node.name or pod["status"]["phase"] != "Running":
            continue
        for vol in pod["spec"].get("volumes", []):
            claim = vol.get("persistentVolumeClaim", {}).get("claimName")
            if claim:
                handles.append(
                    f"kubernetes.io/csi/csi.scaleway.com^{volume_handle(pod['metadata']['namespace'], claim)}"
                )
    return sorted(handles)


def _status(c: Cluster, node: Node) -> Obj:
    resources = {
        "cpu": "2",
        "ephemeral-storage": "40910588Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": "8131328Ki",
        "pods": "110",
    }
    in_use = _volumes_on(c, node)
    images = [
        [
            "registry.k8s.io/coredns/coredns@sha256:" + hex_id("img-coredns"),
            "registry.k8s.io/coredns/coredns:v1.11.3",
        ],
        ["quay.io/cilium/cilium:v1.15.11"],
    ]
    return {
        "addresses": [
            {"address": node.internal_ip, "type": "InternalIP"},
            {"address": node.name, "type": "Hostname"},
            {"address": node.external_ip, "type": "ExternalIP"},
        ],
        "allocatable": {**resources, "cpu": "1900m", "memory": "6649856Ki"},
        "capacity": resources,
        "conditions": _conditions(),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "images": [{"names": names, "sizeBytes": 18_562_039 + 1_000_003 * i} for i, names in enumerate(images)],
        "nodeInfo": {
            "architecture": "amd64",
            "bootID": uid("boot", node.name, "2025-01-06"),
            "containerRuntimeVersion": "containerd://1.7.22",
            "kernelVersion": "5.15.0-127-generic",
            "kubeProxyVersion": "",
            "kubeletVersion": K8S_VERSION,
            "machineID": hex_id("mid:" + node.name, 32),
            "operatingSystem": "linux",
            "osImage": "Ubuntu 22.04.5 LTS",
            "systemUUID": node.instance_id,
        },
        "runtimeHandlers": [
            {"features": {"recursiveReadOnlyMounts": True, "userNamespaces": True}, "name": "runc"},
            {"features": {"recursiveReadOnlyMounts": True, "userNamespaces": True}, "name": ""},
        ],
        "volumesAttached": [{"devicePath": "", "name": h} for h in in_use],
        "volumesInUse": in_use,
    }


def build_nodes(c: Cluster) -> list[Obj]:
    """Create both Nodes and their heartbeat Leases."""
    nodes = []
    for node in NODES:
        manifest = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node.name,
                "labels": _labels(node),
                "annotations": {
                    "csi.volume.kubernetes.io/nodeid": '{"csi.scaleway.com":"' + node.instance_id + '"}',
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            },
            "spec": {"providerID": node.provider_id},
        }
        cidr = Write(
            KCM,
            ts_add(CLUSTER_CREATED, 70),
            {"spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]}},
        )
        status = Write("kubelet", _HEARTBEAT, {"status": _status(c, node)}, "status")
        obj = applied(c, manifest, ts_add(CLUSTER_CREATED, 60 + node.index), manager="kubelet", writes=(cidr, status))
        nodes.append(obj)
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": node.name,
                "namespace": "kube-node-lease",
                "ownerReferences": [
                    {k: v for k, v in owner_ref(obj).items() if k not in ("controller", "blockOwnerDeletion")}
                ],
            },
            "spec": {
                "holderIdentity": node.name,
                "leaseDurationSeconds": 40,
                "renewTime": ts_add(EXPORTED_AT, -4).replace("Z", ".412877Z"),
            },
        }
        applied(c, lease, ts_add(CLUSTER_CREATED, 61), manager="kubelet")
    return nodes


def leader_lease(
    c: Cluster, namespace: str, name: str, holder: str, created: str, manager: str, duration: int = 60
) -> Obj:
    """A leader-election Lease held by ``holder`` and renewed seconds before the export."""
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "acquireTime": "2025-01-06T11:01:09.000000Z",
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "leaseTransitions": 7,
            "renewTime": ts_add(EXPORTED_AT, -9).replace("Z", ".118203Z"),
        },
    }
    return applied(c, lease, created, manager=manager)
