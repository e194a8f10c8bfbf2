"""Pure rendering of a ProxyState into an IpvsRuleset (the kube-proxy IPVS model).

Per ServicePort (protocol P, port N), IPv4 only:
- every ClusterIP: a virtual server IP:N/P whose real servers are the internal endpoints
  (internalTrafficPolicy), and the IP bound to the dummy interface;
- every external IP and load-balancer IP: a virtual server with the external endpoints
  (externalTrafficPolicy), IP bound to the dummy interface;
- a NodePort: a virtual server on every node address selected by node_port_addresses.
Real servers are masqueraded (IPVS NAT) with weight 1. sessionAffinity ClientIP becomes
persistence (flag + timeout). The scheduler comes from the config (default rr); "mh" takes the
kube-proxy flags mh-fallback,mh-port (IP_VS_SVC_F_SCHED1|SCHED2).
Guarantee: equal inputs give equal rulesets; a key held by two ServicePorts keeps the first in
key order (the apiserver's allocators make that impossible for ClusterIPs and NodePorts).
"""
from __future__ import annotations

from dataclasses import dataclass

from kproxy.agent.addresses import ipv4, local_pod_cidr, nodeport_ips
from kproxy.agent.state import Endpoint, ProxyState, ServicePort

from .model import (IP_VS_SVC_F_PERSISTENT, IP_VS_SVC_F_SCHED1, IP_VS_SVC_F_SCHED2, IpvsRuleset,
                    NetfilterPlan, RealServer, ServiceEntry, VirtualServer, VSKey)

SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos")


@dataclass(frozen=True)
class RenderOptions:
    scheduler: str = "rr"
    scheduler_flags: int = 0


def options_from_config(config: object) -> RenderOptions:
    """The scheduler settings of an AgentConfig (ipvs.scheduler; "" means rr). Raises ValueError
    for a scheduler the kernel does not ship."""
    section = getattr(config, "ipvs", None)
    name = (getattr(section, "scheduler", "") or "rr").strip()
    if name not in SCHEDULERS:
        raise ValueError(f"unknown ipvs.scheduler {name!r} (one of {', '.join(SCHEDULERS)})")
    flags = IP_VS_SVC_F_SCHED1 | IP_VS_SVC_F_SCHED2 if name == "mh" else 0
    return RenderOptions(scheduler=name, scheduler_flags=flags)


def nodeport_addresses(state: ProxyState) -> list[str]:
    """Node IPs a NodePort listens on: all IPv4 node IPs, or those inside node_port_addresses
    (IPVS needs each address spelled out, so "every local address" means every node IP)."""
    selected = nodeport_ips(state)
    return ipv4(state.node_ips) if selected is None else selected


def _reals(endpoints: tuple[Endpoint, ...]) -> tuple[RealServer, ...]:
    return tuple(sorted({RealServer(e.ip, e.port) for e in endpoints if ":" not in e.ip}))


def render(state: ProxyState, options: RenderOptions = RenderOptions()) -> IpvsRuleset:
    services: dict[VSKey, ServiceEntry] = {}
    addresses: set[str] = set()
    cluster_ips: set = set()
    external_ips: set = set()
    node_ports: set = set()
    local_node_ports: set = set()
    loopback: set = set()
    no_endpoints: set = set()
    no_local: set = set()
    owners: set = set()
    node_addrs = nodeport_addresses(state)

    for key in sorted(state.services):
        sp: ServicePort = state.services[key]
        flags = options.scheduler_flags
        timeout = 0
        if sp.session_affinity_timeout is not None:
            flags |= IP_VS_SVC_F_PERSISTENT
            timeout = sp.session_affinity_timeout
        internal = _reals(sp.internal_endpoints())
        external = _reals(sp.external_endpoints())
        proto = sp.protocol

        def add(ip: str, port: int, reals: tuple[RealServer, ...], kind: str) -> bool:
            vs = VirtualServer(ip, port, proto, options.scheduler, flags, timeout)
            if vs.key in services:
                return False
            services[vs.key] = ServiceEntry(vs, reals, sp.key, kind)
            owners.add((ip, proto, port, kind, sp.key))
            if not reals:
                local_only = kind != "clusterIP" and sp.external_policy_local and sp.cluster_endpoints()
                (no_local if local_only else no_endpoints).add((ip, proto, port))
            for r in reals:
                loopback.add((r.address, proto, r.port))
            return True

        for ip in ipv4(sp.cluster_ips):
            if add(ip, sp.port, internal, "clusterIP"):
                addresses.add(ip)
                cluster_ips.add((ip, proto, sp.port))
        externals = [(ip, "externalIP") for ip in ipv4(sp.external_ips)]
        externals += [(ip, "loadBalancerIP") for ip in ipv4(sp.load_balancer_ips)]
        for ip, kind in externals:
            if add(ip, sp.port, external, kind):
                addresses.add(ip)
                if not sp.external_policy_local:
                    external_ips.add((ip, proto, sp.port))
        if sp.node_port:
            for ip in node_addrs:
                add(ip, sp.node_port, external, "nodePort")
            (local_node_ports if sp.external_policy_local else node_ports).add((proto, sp.node_port))

    plan = NetfilterPlan(
        cluster_ips=frozenset(cluster_ips), external_ips=frozenset(external_ips),
        node_ports=frozenset(node_ports), local_node_ports=frozenset(local_node_ports),
        loopback=frozenset(loopback), no_endpoints=frozenset(no_endpoints), no_local=frozenset(no_local), owners=frozenset(owners),
        cluster_cidr=local_pod_cidr(state.cluster_cidr), masquerade_all=state.masquerade_all,
        masquerade_bit=state.masquerade_bit)
    return IpvsRuleset(services=services, addresses=frozenset(addresses), netfilter=plan)
