"""ProxyState: the one desired-state model every backend receives.

It is this node's view of every proxied Service port and its endpoints, already filtered
(headless, ExternalName and service-proxy-name-labelled Services are absent) and resolved
(named target ports turned into numbers, endpoints merged from all slices). Backends never see
API objects. Everything here is frozen and hashable, so a backend can cache what it rendered
for a ServicePort and reuse it while the ServicePort compares equal.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Mapping


def join_host_port(ip: str, port: int | str) -> str:
    """"ip:port", "[ip]:port" for IPv6 (Go's net.JoinHostPort, as upstream writes endpoints)."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str | None = None
    zone: str | None = None
    is_local: bool = False  # node_name == this node
    # the EndpointSlice's hints.forZones / hints.forNodes names, sorted (kproxy.agent.policy)
    zone_hints: tuple[str, ...] = ()
    node_hints: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        """"ip:port", "[ip]:port" for IPv6 (Go's net.JoinHostPort, as upstream names endpoints)."""
        return join_host_port(self.ip, self.port)


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, the unit every backend programs ("ns/name:portname")."""

    namespace: str
    name: str
    port_name: str  # "" when the Service has one unnamed port
    protocol: str  # TCP | UDP | SCTP
    port: int
    cluster_ips: tuple[str, ...] = ()
    node_port: int = 0  # 0: none
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    session_affinity_timeout: int | None = None  # seconds; None: no ClientIP affinity
    external_policy_local: bool = False  # externalTrafficPolicy: Local
    internal_policy_local: bool = False  # internalTrafficPolicy: Local
    health_check_node_port: int = 0
    endpoints: tuple[Endpoint, ...] = ()  # sorted; every endpoint of every slice, any state

    @property
    def key(self) -> str:
        """Stable identity, "namespace/name:port_name" (kube-proxy's ServicePortName)."""
        return f"{self.namespace}/{self.name}:{self.port_name}"

    @property
    def service_key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def has_external(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)


@dataclass(frozen=True)
class ProxyState:
    """Everything a backend needs for one sync. `services` maps ServicePort.key to ServicePort.

    `revision` increases whenever anything in the state changes; equal revisions mean equal
    states. `node_ips` are the Node object's addresses (its primary IPs), `local_ips` the
    addresses of the node's interfaces read from the kernel (NodePorts are served on them; None:
    not read, as when rendering offline, and node_ips stand in), `cluster_cidr` the pod
    range (traffic from outside it to a ClusterIP is masqueraded), `service_cidrs` the ClusterIP
    ranges (nftables drops traffic to their unallocated addresses), `masquerade_all` forces SNAT.
    Which endpoints each kind of traffic reaches is kproxy.agent.policy's to say.
    """

    node_name: str
    node_ips: tuple[str, ...] = ()
    cluster_cidr: str | None = None
    service_cidrs: tuple[str, ...] = ()  # the ClusterIP ranges; empty: unknown
    masquerade_all: bool = False
    masquerade_bit: int = 14
    node_port_addresses: tuple[str, ...] = ()  # CIDRs or "primary"; empty: all local addresses
    local_ips: tuple[str, ...] | None = None
    # how pod traffic is told (kproxy.agent.addresses.local_traffic): the KubeProxyConfiguration
    # detectLocalMode, the bridge name or interface prefix it uses, the Node's spec.podCIDRs
    detect_local_mode: str = "ClusterCIDR"
    detect_local_interface: str = ""
    node_pod_cidrs: tuple[str, ...] = ()
    node_zone: str = ""  # the Node's topology.kubernetes.io/zone label ("": none)
    # the family a backend's pass renders (kproxy.agent.families.family_view narrows to it)
    ip_family: int = 4
    services: Mapping[str, ServicePort] = field(default_factory=lambda: MappingProxyType({}))
    revision: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.services, MappingProxyType):
            object.__setattr__(self, "services", MappingProxyType(dict(self.services)))

    def __hash__(self) -> int:  # services is a read-only mapping; hash by revision and node
        return hash((self.node_name, self.revision))


@dataclass(frozen=True)
class Changes:
    """What changed since the previous successful sync. `full` asks the backend to rewrite
    everything it owns (first sync, periodic resync, after a failed apply); otherwise only the
    ServicePort keys in `services` differ (added, removed or modified) from the previous state."""

    full: bool
    services: frozenset[str] = frozenset()


FULL = Changes(full=True)


def changes_between(old: ProxyState | None, new: ProxyState) -> Changes:
    """What changed from `old` to `new`, found by comparing values: full when there is no `old`
    or a node-wide field differs, else the ServicePort keys that differ. For the callers that
    have no tracker to ask (tests, benchmarks, the quarantine's trial states); O(ServicePorts)."""
    if old is None or any(getattr(old, f.name) != getattr(new, f.name) for f in fields(ProxyState)
                          if f.name not in ("services", "revision")):
        return FULL
    return Changes(full=False, services=differing_keys(old.services, new.services))


def differing_keys(a: Mapping[str, ServicePort], b: Mapping[str, ServicePort]) -> frozenset[str]:
    """The keys whose ServicePort differs between `a` and `b` (added, removed or modified)."""
    return frozenset(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
