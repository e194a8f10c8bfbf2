"""The rendered IPVS model: frozen values for virtual servers, real servers and the ruleset.

A VirtualServer is identified by (address, port, protocol) — `key` — and carries the settings
the kernel stores for it (scheduler, flags, persistence timeout). The IpvsRuleset is the whole
desired state of one node: every virtual server with its real servers, the addresses bound to
the dummy interface, the ipset members and the node-level switches for the netfilter rules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

IP_VS_SVC_F_PERSISTENT = 0x1
IP_VS_SVC_F_SCHED1 = 0x8  # mh: fallback
IP_VS_SVC_F_SCHED2 = 0x10  # mh: port
IP_VS_SVC_F_SCHED3 = 0x20

VSKey = tuple[str, int, str]  # (address, port, protocol)


@dataclass(frozen=True, order=True)
class RealServer:
    address: str
    port: int
    weight: int = 1


@dataclass(frozen=True)
class VirtualServer:
    address: str
    port: int
    protocol: str  # TCP | UDP | SCTP
    scheduler: str = "rr"
    flags: int = 0
    timeout: int = 0  # persistence seconds (sessionAffinity ClientIP)

    @property
    def key(self) -> VSKey:
        return (self.address, self.port, self.protocol)

    def describe(self) -> str:
        return f"{self.protocol} {self.address}:{self.port}"


@dataclass(frozen=True)
class ServiceEntry:
    """One desired virtual server, its real servers (sorted, unique), the ServicePort it
    serves ("ns/name:port") and as what (a kproxy.rules Frontend kind: clusterIP, nodePort,
    externalIP, loadBalancerIP)."""

    server: VirtualServer
    reals: tuple[RealServer, ...]
    owner: str
    kind: str = "clusterIP"


@dataclass(frozen=True)
class NetfilterPlan:
    """What the small netfilter rule set needs (ipset members and node-level switches).

    cluster_ips:    (ip, proto, port) of every ClusterIP virtual server (masquerade off-cluster)
    external_ips:   (ip, proto, port) of external/LB IPs under the Cluster policy (masquerade)
    node_ports:     (proto, port) of NodePorts under the Cluster policy (masquerade)
    local_node_ports: (proto, port) of NodePorts under the Local policy (keep the client IP)
    loopback:       (endpoint ip, proto, port) for hairpin masquerade (a pod reaching itself)
    no_endpoints:   (ip, proto, port) of virtual servers with no real server: REJECT
    no_local:       (ip, proto, port) of external virtual servers whose Local policy leaves them
                    without real servers while the Service has endpoints elsewhere: DROP
                    (kube-proxy drops such traffic, it does not reject it)
    owners:         (ip, proto, port, kind, ServicePort key) of every virtual server: kept in
                    the kernel (ipset comments) so `kproxy rules` can attribute what it reads
    lb_firewall:    (ip, proto, port) of LB IPs with loadBalancerSourceRanges: new connections
                    from other sources are dropped
    lb_source_cidrs: (ip, proto, port, cidr) the sources each of those accepts
    lb_source_ips:  (ip, proto, port, source ip): the node's own traffic to the LB IP (its
                    source is the LB IP, bound here) when a range holds a node IP (as upstream)
    """

    cluster_ips: frozenset[tuple[str, str, int]] = frozenset()
    external_ips: frozenset[tuple[str, str, int]] = frozenset()
    node_ports: frozenset[tuple[str, int]] = frozenset()
    local_node_ports: frozenset[tuple[str, int]] = frozenset()
    loopback: frozenset[tuple[str, str, int]] = frozenset()
    no_endpoints: frozenset[tuple[str, str, int]] = frozenset()
    no_local: frozenset[tuple[str, str, int]] = frozenset()
    owners: frozenset[tuple[str, str, int, str, str]] = frozenset()
    lb_firewall: frozenset[tuple[str, str, int]] = frozenset()
    lb_source_cidrs: frozenset[tuple[str, str, int, str]] = frozenset()
    lb_source_ips: frozenset[tuple[str, str, int, str]] = frozenset()
    local_match: str | None = None  # iptables match for pod traffic (e.g. "-s 10.244.0.0/16"); None: unknown
    masquerade_all: bool = False
    masquerade_bit: int = 14


# the NetfilterPlan fields that are sets of members (each becomes one or more ipsets)
MEMBER_FIELDS = ("cluster_ips", "external_ips", "node_ports", "local_node_ports", "loopback", "no_endpoints",
                 "no_local", "owners", "lb_firewall", "lb_source_cidrs", "lb_source_ips")


@dataclass(frozen=True)
class IpvsRuleset:
    """The complete desired IPVS state. `services` maps VSKey -> ServiceEntry; `addresses` are
    the IPs bound to the dummy interface (ClusterIPs, external IPs, LB IPs)."""

    services: Mapping[VSKey, ServiceEntry] = field(default_factory=lambda: MappingProxyType({}))
    addresses: frozenset[str] = frozenset()
    netfilter: NetfilterPlan = field(default_factory=NetfilterPlan)
    # what the next render may reuse (ipvs.render.Fragment per ServicePort key, and the render
    # context they were made in); not part of the desired state, so not compared
    fragments: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    context: Any = field(default=None, compare=False, repr=False)
    # the IPv4 view of the state it was rendered from (kproxy.agent.families): the base of the
    # next render's narrowing, so a partial sync narrows only the ServicePorts that changed
    view: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.services, MappingProxyType):
            object.__setattr__(self, "services", MappingProxyType(dict(self.services)))

    def real_server_count(self) -> int:
        return sum(len(e.reals) for e in self.services.values())
