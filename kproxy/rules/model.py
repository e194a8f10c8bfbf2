"""The mode-independent model of "what implements a Service" on one node.

A NodeRules lists, per Service port, its frontends (the addresses and ports that catch its
traffic), its endpoints (with readiness and locality when known), and the kernel objects that
implement it (iptables rules, nft map elements, IPVS virtual/real servers, ipset entries,
userspace listeners), each with the packet and byte counters the kernel reports. Objects that
belong to no Service port are either `shared` (the mode's static scaffolding) or `unowned`
(leftovers nothing reaches: stale or hand-made).

Everything is frozen; `to_dict()` gives the JSON form described by docs/rules-schema.json.
"""
from __future__ import annotations

from dataclasses import dataclass, field

FRONTEND_KINDS = ("clusterIP", "nodePort", "externalIP", "loadBalancerIP", "healthCheckNodePort")


@dataclass(frozen=True, order=True)
class Frontend:
    """One place a Service port's traffic is caught: kind, IP ("" = every node address for
    node ports) and port."""

    kind: str  # one of FRONTEND_KINDS
    ip: str
    port: int
    protocol: str = "TCP"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "ip": self.ip, "port": self.port, "protocol": self.protocol}

    def __str__(self) -> str:
        return f"{self.ip or '*'}:{self.port}/{self.protocol.lower()} ({self.kind})"


@dataclass(frozen=True, order=True)
class EndpointInfo:
    """One endpoint. `ready`/`local` are None when the source (e.g. the kernel alone) cannot
    tell; `programmed` is False for an endpoint the apiserver lists but the kernel lacks.
    `packets` counts what the kernel sent to it (for iptables: connections DNATed to it).
    `weight` is its relative share of new connections where the mode weighs endpoints (nftables:
    the balancing slots it holds; IPVS: the real server's weight); None: an even share."""

    address: str  # "ip:port"
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None
    local: bool | None = None
    node: str | None = None
    programmed: bool = True
    packets: int = 0
    weight: int | None = None

    def to_dict(self) -> dict:
        return {"address": self.address, "ready": self.ready, "serving": self.serving,
                "terminating": self.terminating, "local": self.local, "node": self.node,
                "programmed": self.programmed, "packets": self.packets, "weight": self.weight}


@dataclass(frozen=True, order=True)
class KernelObject:
    """One kernel object. `kind`: rule | chain | map-element | virtual-server | real-server |
    ipset-entry | listener. `container` locates it ("nat/KUBE-SVC-X" for an iptables rule),
    `text` is the object as the kernel tool prints it. `key` identifies the object for diffs
    (text normalised so that equal meaning gives an equal key). `entry` marks the objects where
    a Service's new connections enter (dispatch rules, map elements, virtual servers): their
    counters, summed, are the Service port's traffic; the others count the same packets again
    further along the path. `allocated` marks an object whose place is the mode's own allocation
    (a slot of a shared map, one shard of it): its key names what it does, diff compares it by
    that key alone, and an allocated declaration (a shard map) is not compared at all."""

    kind: str
    container: str
    text: str
    packets: int = 0
    bytes: int = 0
    key: str = ""
    entry: bool = False
    allocated: bool = False

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.kind, "" if self.allocated else self.container, self.key or self.text)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "container": self.container, "text": self.text,
                "packets": self.packets, "bytes": self.bytes, "entry": self.entry}


@dataclass(frozen=True)
class ServiceRules:
    """One Service port: what a packet meets (frontends, endpoints, ClientIP affinity timeout in
    seconds or None) and the kernel objects that make it so."""

    namespace: str
    name: str
    port_name: str
    protocol: str
    frontends: tuple[Frontend, ...] = ()
    endpoints: tuple[EndpointInfo, ...] = ()
    objects: tuple[KernelObject, ...] = ()
    affinity: int | None = None

    @property
    def key(self) -> str:
        """"namespace/name:port_name", as ServicePort.key."""
        return f"{self.namespace}/{self.name}:{self.port_name}"

    @property
    def service(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def packets(self) -> int:
        """Traffic that entered this Service port (counters of its entry objects)."""
        return sum(o.packets for o in self.objects if o.entry)

    @property
    def bytes(self) -> int:
        return sum(o.bytes for o in self.objects if o.entry)

    def to_dict(self) -> dict:
        return {"namespace": self.namespace, "name": self.name, "portName": self.port_name,
                "protocol": self.protocol, "frontends": [f.to_dict() for f in self.frontends],
                "endpoints": [e.to_dict() for e in self.endpoints],
                "objects": [o.to_dict() for o in self.objects],
                "affinitySeconds": self.affinity, "packets": self.packets, "bytes": self.bytes}


@dataclass(frozen=True, order=True)
class SkippedPort:
    """A Service port the mode knows of but does not program (e.g. SCTP in userspace mode)."""

    key: str  # "namespace/name:port_name"
    reason: str

    def to_dict(self) -> dict:
        return {"service": self.key, "reason": self.reason}


@dataclass(frozen=True)
class NodeRules:
    """Everything one mode holds in one node's kernel, grouped by Service port (sorted by key)."""

    mode: str
    node: str  # node name or netns ("" = this host's own namespace)
    services: tuple[ServiceRules, ...] = ()
    shared: tuple[KernelObject, ...] = ()
    unowned: tuple[KernelObject, ...] = ()
    detail: dict = field(default_factory=dict, compare=False)  # e.g. {"variant": "nft"}
    skipped: tuple[SkippedPort, ...] = ()

    def service(self, key: str) -> ServiceRules | None:
        return next((s for s in self.services if s.key == key), None)

    def select(self, namespace: str, name: str) -> "NodeRules":
        """Only the ports of Service namespace/name (shared and unowned objects dropped)."""
        return NodeRules(self.mode, self.node,
                         tuple(s for s in self.services if s.namespace == namespace and s.name == name),
                         detail=self.detail,
                         skipped=tuple(s for s in self.skipped if s.key.startswith(f"{namespace}/{name}:")))

    def to_dict(self) -> dict:
        return {"apiVersion": "kproxy.io/v1alpha1", "kind": "NodeRules", "mode": self.mode,
                "node": self.node, "detail": dict(self.detail),
                "services": [s.to_dict() for s in self.services],
                "shared": [o.to_dict() for o in self.shared],
                "unowned": [o.to_dict() for o in self.unowned],
                "skipped": [s.to_dict() for s in self.skipped]}
