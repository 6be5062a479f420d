"""The two Kapsule nodes of ``prod-k8s`` and the addresses the cluster hands out."""

from __future__ import annotations

from dataclasses import dataclass

from _gen.common import ZONE, det_bytes, uid


@dataclass(frozen=True)
class Node:
    """One worker of the ``pool-prod`` pool."""

    index: int
    name: str
    internal_ip: str
    external_ip: str
    instance_type: str

    @property
    def pod_cidr(self) -> str:
        """The node's slice of the Cilium pod range 100.64.0.0/15."""
        return f"100.64.{self.index}.0/24"

    @property
    def instance_id(self) -> str:
        """Scaleway instance UUID behind the node."""
        return uid("scw-instance", self.name)

    @property
    def provider_id(self) -> str:
        """``spec.providerID`` as the Scaleway cloud controller sets it."""
        return f"scaleway://instance/{ZONE}/{self.instance_id}"


POOL = "pool-prod"
NODES = (
    Node(0, "scw-prod-k8s-pool-prod-3c1a9e0f5b7d4e2a8f", "172.16.4.2", "51.15.212.41", "PRO2-S"),
    Node(1, "scw-prod-k8s-pool-prod-b84d2c6e1f0a4b9c97", "172.16.4.3", "51.15.198.77", "PRO2-S"),
)
#: The API server endpoint of the managed control plane (the ``kubernetes`` Service's Endpoints).
API_SERVER_IP = "172.16.4.254"


def pod_ip(node: Node, label: str) -> str:
    """A pod address in ``node``'s pod CIDR, stable per pod."""
    return f"100.64.{node.index}.{10 + det_bytes('podip:' + label, 1)[0] % 240}"
