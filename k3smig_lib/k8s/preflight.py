"""Facts preflight needs from a live cluster: version, identity, K3s-ness, permissions, capacity.

Each function makes a few read-only calls (a SelfSubjectAccessReview creates nothing: the server
answers and forgets it), so preflight can run every check before the run changes anything.
Identity is the ``kube-system`` namespace UID: two kubeconfig contexts that point at the same
cluster — through different names, users or addresses — share it, which is how "source = target"
is caught.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from k3smig_lib.core.quantity import parse_quantity
from k3smig_lib.k8s.client import Kube
from k3smig_lib.k8s.discovery import ApiResource

K3S_INSTANCE_LABEL = "node.kubernetes.io/instance-type"
K3S_VERSION_MARK = "+k3s"
LOCAL_PATH_PROVISIONER = "rancher.io/local-path"


@dataclass(frozen=True)
class ServerVersion:
    """What ``/version`` says (``gitVersion`` ``v1.33.4+k3s1``, ``major`` ``1``, ``minor`` ``33``)."""

    git_version: str
    major: str
    minor: str
    platform: str = ""

    @property
    def minor_number(self) -> int:
        """Minor version as a number (``"33+"`` on some providers → 33; 0 when unknown)."""
        digits = "".join(c for c in self.minor if c.isdigit())
        return int(digits) if digits else 0


def server_version(kube: Kube) -> ServerVersion:
    """The API server's version (``GET /version``).

    Raises:
        SourceError | TargetError: the server cannot be reached or refuses (after retries).

    Examples:
        >>> server_version(kube).git_version  # doctest: +SKIP
        'v1.36.3'
    """
    doc = kube.json("GET", "/version", counter="gets")
    return ServerVersion(str(doc.get("gitVersion", "")), str(doc.get("major", "")), str(doc.get("minor", "")),
                         str(doc.get("platform", "")))


def kube_system_uid(kube: Kube) -> str:
    """UID of the ``kube-system`` namespace: a cluster's identity, stable for its lifetime.

    Raises:
        SourceError | TargetError: the namespace cannot be read (403 names the missing permission).
    """
    doc = kube.json("GET", "/api/v1/namespaces/kube-system", counter="gets")
    return str((doc.get("metadata") or {}).get("uid", ""))


def _items(kube: Kube, path: str) -> list[Any]:
    """Items of one small list (nodes, StorageClasses: a handful, never paged in practice)."""
    return list(kube.json("GET", path, counter="lists").get("items") or [])


@dataclass(frozen=True)
class K3sEvidence:
    """Why a cluster does or does not look like K3s; truthy when it does.

    The server version carries ``+k3s`` on real K3s; nodes carry ``instance-type=k3s`` and a
    ``+k3s`` kubelet version. A ``local-path`` StorageClass alone proves nothing (kind ships one).
    """

    version: bool
    node_label: bool
    kubelet: bool
    local_path: bool
    details: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.version or self.node_label or self.kubelet


def looks_like_k3s(kube: Kube) -> K3sEvidence:
    """Collect the K3s evidence of the cluster behind ``kube``.

    Raises:
        SourceError | TargetError: nodes or StorageClasses cannot be listed.

    Examples:
        >>> bool(looks_like_k3s(target_kube))  # doctest: +SKIP
        True
    """
    version = server_version(kube).git_version
    nodes = _items(kube, "/api/v1/nodes")
    classes = _items(kube, "/apis/storage.k8s.io/v1/storageclasses")
    labelled = [n["metadata"]["name"] for n in nodes
                if ((n.get("metadata") or {}).get("labels") or {}).get(K3S_INSTANCE_LABEL) == "k3s"]
    kubelets = [n["metadata"]["name"] for n in nodes
                if K3S_VERSION_MARK in str(((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion"))]
    local = [c["metadata"]["name"] for c in classes if c.get("provisioner") == LOCAL_PATH_PROVISIONER]
    details = (f"server version {version}", f"nodes labelled {K3S_INSTANCE_LABEL}=k3s: {labelled or 'none'}",
               f"nodes with a +k3s kubelet: {kubelets or 'none'}", f"local-path StorageClasses: {local or 'none'}")
    return K3sEvidence(K3S_VERSION_MARK in version, bool(labelled), bool(kubelets), bool(local), details)


@dataclass(frozen=True)
class PermissionCheck:
    """One permission the run needs: ``verb`` on ``resource.group`` (in ``namespace``, or everywhere)."""

    verb: str
    resource: str
    group: str = ""
    namespace: str = ""
    subresource: str = ""

    @property
    def label(self) -> str:
        """``list secrets (all namespaces)`` / ``create leases.coordination.k8s.io in ns k3smig``."""
        res = f"{self.resource}.{self.group}" if self.group else self.resource
        res += f"/{self.subresource}" if self.subresource else ""
        return f"{self.verb} {res} " + (f"in ns {self.namespace}" if self.namespace else "(all namespaces)")

    @property
    def fix(self) -> str:
        """The RBAC rule that grants it."""
        res = self.resource + (f"/{self.subresource}" if self.subresource else "")
        kind = f"a Role in ns {self.namespace}" if self.namespace else "a ClusterRole"
        return f'{kind} rule {{apiGroups: ["{self.group}"], resources: ["{res}"], verbs: ["{self.verb}"]}}'


def can_i(kube: Kube, verb: str, resource: str, group: str = "", namespace: str = "", *,
          subresource: str = "") -> bool:
    """Whether the kubeconfig's user may ``verb`` the ``resource`` (a SelfSubjectAccessReview).

    Raises:
        SourceError | TargetError: the review itself failed (unreachable server, bad credentials).

    Examples:
        >>> can_i(kube, "list", "secrets")  # doctest: +SKIP
        True
    """
    attrs = {"verb": verb, "resource": resource, "group": group, "namespace": namespace, "subresource": subresource}
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {k: v for k, v in attrs.items() if v}}}
    # a review stores nothing: it counts as a read
    doc = kube.json("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", counter="gets", body=body)
    return bool((doc.get("status") or {}).get("allowed"))


def missing_permissions(kube: Kube, checks: Sequence[PermissionCheck], *, workers: int = 4) -> list[PermissionCheck]:
    """The ``checks`` the user is *not* allowed, in the order given (reviews run in parallel).

    Examples:
        >>> missing_permissions(kube, [PermissionCheck("list", "secrets")])  # doctest: +SKIP
        []
    """

    def allowed(c: PermissionCheck) -> bool:
        return can_i(kube, c.verb, c.resource, c.group, c.namespace, subresource=c.subresource)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="k3smig-ssar") as pool:
        verdicts = list(pool.map(allowed, checks))
    return [c for c, ok in zip(checks, verdicts, strict=True) if not ok]


def read_checks(resources: Sequence[ApiResource]) -> list[PermissionCheck]:
    """``list`` on every resource an export reads (cluster-wide)."""
    return [PermissionCheck("list", r.name, r.group) for r in resources]


def write_checks(
    resources: Sequence[ApiResource], verbs: Sequence[str] = ("get", "list", "create", "patch")
) -> list[PermissionCheck]:
    """Every ``verb`` on every resource a deploy writes (server-side apply needs get/create/patch)."""
    return [PermissionCheck(v, r.name, r.group) for r in resources for v in verbs]


@dataclass(frozen=True)
class NodeCapacity:
    """Allocatable resources of one node (what the scheduler can hand out)."""

    name: str
    cpu: float
    memory: float
    ephemeral_storage: float
    pods: int
    ready: bool


@dataclass(frozen=True)
class Capacity:
    """All nodes of a cluster, with totals in cores and bytes."""

    nodes: tuple[NodeCapacity, ...]

    @property
    def cpu(self) -> float:
        """Allocatable cores of the Ready nodes."""
        return sum(n.cpu for n in self.nodes if n.ready)

    @property
    def memory(self) -> float:
        """Allocatable memory bytes of the Ready nodes."""
        return sum(n.memory for n in self.nodes if n.ready)

    @property
    def ephemeral_storage(self) -> float:
        """Allocatable ephemeral-storage bytes of the Ready nodes (local-path volumes share this disk)."""
        return sum(n.ephemeral_storage for n in self.nodes if n.ready)


def _node_capacity(node: dict[str, Any]) -> NodeCapacity:
    status = node.get("status") or {}
    alloc = status.get("allocatable") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return NodeCapacity(str(node["metadata"]["name"]), parse_quantity(alloc.get("cpu")),
                        parse_quantity(alloc.get("memory")), parse_quantity(alloc.get("ephemeral-storage")),
                        int(parse_quantity(alloc.get("pods"))), ready)


def node_capacity(kube: Kube) -> Capacity:
    """Allocatable CPU, memory, disk and pods of every node.

    Raises:
        SourceError | TargetError: nodes cannot be listed.

    Examples:
        >>> node_capacity(target_kube).cpu  # doctest: +SKIP
        4.0
    """
    nodes = _items(kube, "/api/v1/nodes")
    return Capacity(tuple(sorted((_node_capacity(n) for n in nodes), key=lambda n: n.name)))
