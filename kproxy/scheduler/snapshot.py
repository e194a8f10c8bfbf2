"""What the scheduler knows of each node, built from plain Node and Pod objects.

Quantities are integers: cpu in millicores, everything else in units (bytes, pods). A pod's
request is kube-scheduler's: the larger of the sum of its containers' requests and any one
init container's, plus the pod overhead; a container with limits but no requests requests its
limits (the API's defaulting). Scoring uses the "non-zero" requests: a container that asks for
no cpu or memory counts as 100m and 200Mi, so empty pods still spread.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

from kproxy.api.validation.common import parse_quantity

CPU, MEMORY, PODS = "cpu", "memory", "pods"
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


def quantity(name: str, value: Any) -> int:
    """An integer amount of resource `name` (millicores for cpu, rounded up as Go's
    MilliValue/Value do); 0 for a value that is not a quantity."""
    q = parse_quantity(value)
    if q is None:
        return 0
    return math.ceil(q * 1000) if name == CPU else math.ceil(q)


def _resource_map(d: Mapping[str, Any] | None) -> dict[str, int]:
    return {name: quantity(name, v) for name, v in (d or {}).items()}


def container_requests(container: Mapping[str, Any]) -> dict[str, int]:
    resources = container.get("resources") or {}
    requests = _resource_map(resources.get("limits"))
    requests.update(_resource_map(resources.get("requests")))
    return requests


def pod_requests(pod: Mapping[str, Any]) -> dict[str, int]:
    spec = pod.get("spec") or {}
    total: dict[str, int] = {}
    for c in spec.get("containers") or ():
        for name, v in container_requests(c).items():
            total[name] = total.get(name, 0) + v
    for c in spec.get("initContainers") or ():
        for name, v in container_requests(c).items():
            total[name] = max(total.get(name, 0), v)
    for name, v in _resource_map(spec.get("overhead")).items():
        total[name] = total.get(name, 0) + v
    return total


def nonzero_requests(pod: Mapping[str, Any]) -> tuple[int, int]:
    """(millicores, bytes) as scoring counts them."""
    spec = pod.get("spec") or {}
    cpu = mem = 0
    for c in spec.get("containers") or ():
        r = container_requests(c)
        cpu += r.get(CPU) or DEFAULT_MILLI_CPU
        mem += r.get(MEMORY) or DEFAULT_MEMORY
    for c in spec.get("initContainers") or ():
        r = container_requests(c)
        cpu = max(cpu, r.get(CPU) or DEFAULT_MILLI_CPU)
        mem = max(mem, r.get(MEMORY) or DEFAULT_MEMORY)
    overhead = _resource_map(spec.get("overhead"))
    return cpu + overhead.get(CPU, 0), mem + overhead.get(MEMORY, 0)


def host_ports(pod: Mapping[str, Any]) -> set[tuple[str, str, int]]:
    """(hostIP, protocol, hostPort) of every container port that asks for a host port."""
    ports = set()
    for c in (pod.get("spec") or {}).get("containers") or ():
        for p in c.get("ports") or ():
            if p.get("hostPort"):
                ports.add((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(p["hostPort"])))
    return ports


def ports_conflict(wanted: set[tuple[str, str, int]], used: set[tuple[str, str, int]]) -> bool:
    """0.0.0.0 conflicts with every address on the same protocol and port."""
    for ip, proto, port in wanted:
        for uip, uproto, uport in used:
            if port == uport and proto == uproto and (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _ready_condition(node: Mapping[str, Any]) -> str:
    for c in (node.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return c.get("status") or "Unknown"
    return "Unknown"


def effective_taints(node: Mapping[str, Any]) -> tuple[dict, ...]:
    """The node's taints, plus the ones the node lifecycle controller would add for a node that
    is not Ready (not-ready when Ready is False, unreachable when it is Unknown) or cordoned, so
    the scheduler does not depend on that controller having run yet."""
    spec = node.get("spec") or {}
    taints = [t for t in spec.get("taints") or () if isinstance(t, dict)]
    keys = {(t.get("key"), t.get("effect")) for t in taints}
    ready = _ready_condition(node)
    if ready != "True":
        key = NOT_READY_TAINT if ready == "False" else UNREACHABLE_TAINT
        if (key, "NoSchedule") not in keys:
            taints.append({"key": key, "effect": "NoSchedule"})
    return tuple(taints)


@dataclass(frozen=True)
class Footprint:
    """What one pod takes from its node."""

    requests: Mapping[str, int]
    nonzero: tuple[int, int]
    ports: frozenset[tuple[str, str, int]]

    @classmethod
    def of(cls, pod: Mapping[str, Any]) -> "Footprint":
        return cls(pod_requests(pod), nonzero_requests(pod), frozenset(host_ports(pod)))


@dataclass(frozen=True)
class NodeInfo:
    """One node and the pods bound to it, reduced to what filters and scores read."""

    name: str
    labels: Mapping[str, str]
    taints: tuple[dict, ...]
    unschedulable: bool
    allocatable: Mapping[str, int]
    requested: Mapping[str, int] = field(default_factory=dict)
    nonzero_requested: tuple[int, int] = (0, 0)
    pods: tuple[Mapping[str, Any], ...] = ()
    used_ports: frozenset[tuple[str, str, int]] = frozenset()

    @classmethod
    def of(cls, node: Mapping[str, Any], pods: Iterable[Mapping[str, Any]] = (),
           footprint: Callable[[Mapping[str, Any]], Footprint] = Footprint.of) -> "NodeInfo":
        """`footprint` lets a caller that sees the same pods again and again cache them."""
        meta = node.get("metadata") or {}
        status = node.get("status") or {}
        pods = tuple(pods)
        requested: dict[str, int] = {PODS: len(pods)} if pods else {}
        cpu = mem = 0
        ports: set[tuple[str, str, int]] = set()
        for pod in pods:
            fp = footprint(pod)
            for name, v in fp.requests.items():
                requested[name] = requested.get(name, 0) + v
            cpu, mem = cpu + fp.nonzero[0], mem + fp.nonzero[1]
            ports |= fp.ports
        return cls(name=meta.get("name", ""), labels=dict(meta.get("labels") or {}),
                   taints=effective_taints(node), unschedulable=bool((node.get("spec") or {}).get("unschedulable")),
                   allocatable=_resource_map(status.get("allocatable") or status.get("capacity")),
                   requested=requested, nonzero_requested=(cpu, mem), pods=pods, used_ports=frozenset(ports))

    def with_pod(self, pod: Mapping[str, Any]) -> "NodeInfo":
        """This node with `pod` on it too (an assumed pod, or one the informer reports)."""
        fp = Footprint.of(pod)
        requested = dict(self.requested)
        for name, v in fp.requests.items():
            requested[name] = requested.get(name, 0) + v
        requested[PODS] = requested.get(PODS, 0) + 1
        return replace(self, requested=requested,
                       nonzero_requested=(self.nonzero_requested[0] + fp.nonzero[0],
                                          self.nonzero_requested[1] + fp.nonzero[1]),
                       pods=self.pods + (pod,), used_ports=self.used_ports | fp.ports)


@dataclass(frozen=True)
class Snapshot:
    """Every node the scheduler may choose, by name, in a stable order."""

    nodes: Mapping[str, NodeInfo]

    @classmethod
    def build(cls, nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> "Snapshot":
        by_node: dict[str, list[Mapping[str, Any]]] = {}
        for pod in pods:
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name and not is_terminal(pod):
                by_node.setdefault(node_name, []).append(pod)
        infos = {}
        for node in nodes:
            name = (node.get("metadata") or {}).get("name", "")
            infos[name] = NodeInfo.of(node, by_node.get(name, ()))
        return cls(dict(sorted(infos.items())))

    def with_pod(self, node_name: str, pod: Mapping[str, Any]) -> "Snapshot":
        nodes = dict(self.nodes)
        nodes[node_name] = nodes[node_name].with_pod(pod)
        return Snapshot(nodes)
