"""Does the source fit one VM of the chosen type, and if not, how many nodes of which type would it take?

The inventory phase asks this of the *cleaned* export (what will be applied: kube-system, platform add-ons and
owned Pods are not counted), with the same per-pod requests the compatibility lint uses. A node's usable
share is its vCPUs and memory minus what K3s and the platform add-ons take (the lint's reserve), minus a
headroom kept free for rolling updates, jobs and growth. DaemonSets run once on every node.

Past one VM the proposal follows the Terraform module's shapes: 3 servers with embedded etcd (all three
schedulable), then agents of the same type. Pure: no file, process or network.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from k3smig_lib.core.clean import CleanedObject
from k3smig_lib.core.lint import PLATFORM_CPU_RESERVE, PLATFORM_MEMORY_RESERVE_GIB
from k3smig_lib.infra.render import INSTANCE_SIZES

#: Share of each node's usable CPU and memory kept free (rolling updates surge, CronJobs, growth).
HEADROOM = 0.2
#: Agents a proposal may add (the Terraform module accepts up to 10).
MAX_AGENTS = 10
_REPLICATED = ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController")
_PER_NODE = ("DaemonSet",)
_SINGLE = ("Pod",)


@dataclass(frozen=True)
class Demand:
    """What the workloads request.

    Attributes:
        cpu: cores requested by replicated workloads and standalone Pods (replicas × pod requests).
        memory_gib: memory they request, GiB.
        per_node_cpu: cores DaemonSets request on *every* node.
        per_node_memory_gib: memory DaemonSets request on every node, GiB.
        largest_cpu: cores of the largest single pod (a pod never spans nodes).
        largest_memory_gib: memory of the largest single pod, GiB.
        largest: which workload that pod belongs to (``Kind/namespace/name``).
    """

    cpu: float = 0.0
    memory_gib: float = 0.0
    per_node_cpu: float = 0.0
    per_node_memory_gib: float = 0.0
    largest_cpu: float = 0.0
    largest_memory_gib: float = 0.0
    largest: str = ""


@dataclass(frozen=True)
class Shape:
    """A cluster shape: how many servers and agents of one instance type."""

    instance_type: str
    vcpu: float
    ram_gib: float
    servers: int = 1
    agents: int = 0

    @property
    def nodes(self) -> int:
        """Servers plus agents."""
        return self.servers + self.agents

    def usable(self, demand: Demand) -> tuple[float, float]:
        """Cores and GiB left for the workloads on all nodes together, after reserve, DaemonSets and headroom."""
        cpu = (self.vcpu - PLATFORM_CPU_RESERVE) * (1 - HEADROOM) - demand.per_node_cpu
        mem = (self.ram_gib - PLATFORM_MEMORY_RESERVE_GIB) * (1 - HEADROOM) - demand.per_node_memory_gib
        return max(cpu, 0.0) * self.nodes, max(mem, 0.0) * self.nodes

    def holds(self, demand: Demand) -> bool:
        """True when the workloads fit, and the largest pod fits one node."""
        cpu, mem = self.usable(demand)
        one_cpu, one_mem = Shape(self.instance_type, self.vcpu, self.ram_gib).usable(demand)
        return (demand.cpu <= cpu and demand.memory_gib <= mem
                and demand.largest_cpu <= one_cpu and demand.largest_memory_gib <= one_mem)

    def label(self) -> str:
        """``1 × GP1-XS`` or ``3 servers + 2 agents × GP1-XS``."""
        if self.nodes == 1:
            return f"1 × {self.instance_type}"
        agents = f" + {self.agents} agents" if self.agents else ""
        return f"{self.servers} servers{agents} × {self.instance_type}"


def demand_of(kept: Iterable[CleanedObject]) -> Demand:
    """Sum the requests of the objects the migration will apply.

    Args:
        kept: the cleaned objects kept by the cleaner (``CleanReport.kept()``).

    Returns:
        The demand, in cores and GiB.
    """
    cpu = mem = node_cpu = node_mem = big_cpu = big_mem = 0.0
    largest = ""
    for item in kept:
        kind = item.ref.kind
        if kind not in (*_REPLICATED, *_PER_NODE, *_SINGLE):
            continue
        requests = item.facts.get("requests") or {}
        pod_cpu = float(requests.get("cpu", 0.0))
        pod_mem = float(requests.get("memory_bytes", 0.0)) / 2**30
        if kind in _PER_NODE:
            node_cpu += pod_cpu
            node_mem += pod_mem
        else:
            replicas = int(item.facts.get("replicas", 1)) if kind in _REPLICATED else 1
            cpu += replicas * pod_cpu
            mem += replicas * pod_mem
        if (pod_cpu, pod_mem) > (big_cpu, big_mem):
            big_cpu, big_mem, largest = pod_cpu, pod_mem, item.ref.id
    return Demand(cpu, mem, node_cpu, node_mem, big_cpu, big_mem, largest)


def _size(instance_type: str, vcpu: float | None, ram_gib: float | None) -> tuple[float, float]:
    for size in INSTANCE_SIZES:
        if size["type"] == instance_type:
            return float(size["vcpu"]), float(size["ram_gib"])
    if vcpu is None or ram_gib is None:
        raise ValueError(f"{instance_type} is not in INSTANCE_SIZES; give its vCPUs and memory")
    return vcpu, ram_gib


def cluster_for(demand: Demand, instance_type: str, vcpu: float, ram_gib: float) -> Shape | None:
    """The smallest cluster of this type that holds the demand: 1 VM, then 3 servers, then agents.

    Returns:
        The shape, or ``None`` when even 3 servers and :data:`MAX_AGENTS` agents, or one node for the
        largest pod, are not enough.
    """
    shapes = [Shape(instance_type, vcpu, ram_gib)]
    shapes += [Shape(instance_type, vcpu, ram_gib, 3, agents) for agents in range(MAX_AGENTS + 1)]
    return next((s for s in shapes if s.holds(demand)), None)


def sizing_rows(demand: Demand, instance_type: str, *, vcpu: float | None = None,
                ram_gib: float | None = None, sizes: Sequence[dict[str, Any]] = INSTANCE_SIZES) -> list[dict[str, Any]]:
    """The sizing table: the chosen VM, then (when it does not hold the source) the shapes that would.

    Args:
        demand: from :func:`demand_of`.
        instance_type: the chosen Scaleway type (parameter ``instance_type``).
        vcpu: its vCPUs when it is not in :data:`INSTANCE_SIZES` (parameter ``vm_cpu``).
        ram_gib: its memory when it is not in the list (parameter ``vm_memory_gib``).
        sizes: the candidate types, smallest first.

    Returns:
        Rows with ``option``, ``shape``, ``server_count``, ``agent_count``, the usable cores and GiB,
        the requested ones and ``holds``. The first row is the chosen VM.

    Examples:
        >>> rows = sizing_rows(Demand(cpu=1, memory_gib=2), "GP1-XS")
        >>> rows[0]["holds"], len(rows)
        (True, 1)
        >>> [r["shape"] for r in sizing_rows(Demand(cpu=6, memory_gib=20), "GP1-XS")]
        ['1 × GP1-XS', '3 servers × GP1-XS', '1 × GP1-S']
    """
    cpu, ram = _size(instance_type, vcpu, ram_gib)

    def row(option: str, shape: Shape) -> dict[str, Any]:
        usable_cpu, usable_mem = shape.usable(demand)
        return {"option": option, "shape": shape.label(), "server_count": shape.servers,
                "agent_count": shape.agents, "instance_type": shape.instance_type,
                "usable cores": round(usable_cpu, 2), "requested cores": round(demand.cpu, 2),
                "usable GiB": round(usable_mem, 2), "requested GiB": round(demand.memory_gib, 2),
                "holds": shape.holds(demand)}

    chosen = Shape(instance_type, cpu, ram)
    rows = [row("chosen VM", chosen)]
    if chosen.holds(demand):
        return rows
    same_type = cluster_for(demand, instance_type, cpu, ram)
    if same_type is not None:
        rows.append(row(f"more {instance_type} nodes", same_type))
    bigger = next((Shape(s["type"], float(s["vcpu"]), float(s["ram_gib"])) for s in sizes
                   if float(s["vcpu"]) >= cpu and float(s["ram_gib"]) >= ram
                   and Shape(s["type"], float(s["vcpu"]), float(s["ram_gib"])).holds(demand)), None)
    if bigger is not None:
        rows.append(row("one larger VM", bigger))
    return rows


def verdict(rows: Sequence[dict[str, Any]]) -> str:
    """One sentence for the report summary: fits, or what to choose instead.

    Examples:
        >>> verdict(sizing_rows(Demand(cpu=6, memory_gib=20), "GP1-XS"))[:45]
        'the source requests more than one GP1-XS hold'
    """
    chosen = rows[0]
    if chosen["holds"]:
        return f"fits on one {chosen['instance_type']} with {HEADROOM:.0%} headroom"
    options = [f"{r['shape']} (server_count: {r['server_count']}, agent_count: {r['agent_count']}, "
               f"instance_type: {r['instance_type']})" for r in rows[1:]]
    proposal = "; or ".join(options) if options else "no listed type holds it: lower requests or split the workloads"
    return (f"the source requests more than one {chosen['instance_type']} holds with {HEADROOM:.0%} headroom "
            f"({chosen['requested cores']} cores / {chosen['requested GiB']} GiB requested, "
            f"{chosen['usable cores']} / {chosen['usable GiB']} usable): propose {proposal}")
