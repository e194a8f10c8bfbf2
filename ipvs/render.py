"""Pure rendering of a ProxyState into an IpvsRuleset (the kube-proxy IPVS model).

Per ServicePort (protocol P, port N), IPv4 only:
- every ClusterIP: a virtual server IP:N/P whose real servers are the internal endpoints
  (internalTrafficPolicy), and the IP bound to the dummy interface;
- every external IP and load-balancer IP: a virtual server with the external endpoints
  (externalTrafficPolicy), IP bound to the dummy interface;
- a NodePort: a virtual server on every node address selected by node_port_addresses.
Which endpoints each virtual server gets is kproxy.agent.policy's categorize() (traffic policies,
topology hints, the terminating fallback).
An LB IP of a ServicePort with loadBalancerSourceRanges (IPv4 ranges; one of /0 allows all, so
no firewall) is firewalled: its (IP, port) and each range go into the plan's lb_* fields.
Real servers are masqueraded (IPVS NAT) with weight 1. sessionAffinity ClientIP becomes
persistence (flag + timeout). The scheduler comes from the config (default rr); "mh" takes the
kube-proxy flags mh-fallback,mh-port (IP_VS_SVC_F_SCHED1|SCHED2).
Guarantee: equal inputs give equal rulesets; a key held by two ServicePorts keeps the first in
key order (the apiserver's allocators make that impossible for ClusterIPs and NodePorts).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from kproxy.agent.addresses import ipv4, local_traffic, nodeport_listen_ips
from kproxy.agent.policy import categorize
from kproxy.agent.protocols import BackendConfig
from kproxy.agent.state import Changes, Endpoint, ProxyState, ServicePort

from .model import (MEMBER_FIELDS, IP_VS_SVC_F_PERSISTENT, IP_VS_SVC_F_SCHED1, IP_VS_SVC_F_SCHED2, IpvsRuleset,
                    NetfilterPlan, RealServer, ServiceEntry, VirtualServer, VSKey)

SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos")


@dataclass(frozen=True)
class RenderOptions:
    scheduler: str = "rr"
    scheduler_flags: int = 0


def options_from_config(config: BackendConfig) -> RenderOptions:
    """The scheduler settings of an AgentConfig (ipvs.scheduler; "" means rr). Raises ValueError
    for a scheduler the kernel does not ship."""
    name = (config.ipvs.scheduler or "rr").strip()
    if name not in SCHEDULERS:
        raise ValueError(f"unknown ipvs.scheduler {name!r} (one of {', '.join(SCHEDULERS)})")
    flags = IP_VS_SVC_F_SCHED1 | IP_VS_SVC_F_SCHED2 if name == "mh" else 0
    return RenderOptions(scheduler=name, scheduler_flags=flags)


def nodeport_addresses(state: ProxyState) -> list[str]:
    """Local addresses a NodePort listens on (IPVS needs each spelled out; never loopback)."""
    return nodeport_listen_ips(state)


def _reals(endpoints: tuple[Endpoint, ...]) -> tuple[RealServer, ...]:
    return tuple(sorted({RealServer(e.ip, e.port) for e in endpoints if ":" not in e.ip}))


@dataclass(frozen=True)
class EntryPlan:
    """One virtual server a ServicePort asks for, and what it adds to the ruleset if its key is
    still free when the ServicePort's turn comes (`items`: NetfilterPlan field -> items)."""
    entry: ServiceEntry
    address: str | None  # bound to the dummy interface (ClusterIPs, external and LB IPs)
    items: tuple[tuple[str, frozenset], ...]


@dataclass(frozen=True)
class Fragment:
    """Everything one ServicePort contributes; reused by the next render while the ServicePort
    and the render context (options, NodePort addresses) are unchanged."""
    sp: ServicePort
    entries: tuple[EntryPlan, ...]
    port_items: tuple[tuple[str, frozenset], ...]  # NodePort set members, whatever the entries


def source_ranges(sp: ServicePort) -> tuple[ipaddress.IPv4Network, ...]:
    """The IPv4 loadBalancerSourceRanges of `sp` (translate has cleaned them to network/prefix;
    the IPv6 ones are the other family's rules, not ours)."""
    return tuple(ipaddress.IPv4Network(r) for r in sp.load_balancer_source_ranges if ":" not in r)


def _firewall_items(ip: str, proto: str, port: int, ranges: tuple[ipaddress.IPv4Network, ...],
                    node_ips: tuple[str, ...]) -> list[tuple[str, frozenset]]:
    """The lb_* plan items of one firewalled LB IP (none when a range allows every source: the
    kernel's hash:ip,port,net cannot hold a /0, and it would let everything pass anyway)."""
    if not ranges or any(net.prefixlen == 0 for net in ranges):
        return []
    items = [("lb_firewall", frozenset(((ip, proto, port),))),
             ("lb_source_cidrs", frozenset((ip, proto, port, str(net)) for net in ranges))]
    nodes = [ipaddress.IPv4Address(a) for a in ipv4(node_ips)]
    if any(a in net for a in nodes for net in ranges):
        items.append(("lb_source_ips", frozenset(((ip, proto, port, ip),))))
    return items


def render_fragment(sp: ServicePort, options: RenderOptions, node_addrs: tuple[str, ...],
                    node_ips: tuple[str, ...] = (), node_name: str = "", zone: str = "") -> Fragment:
    flags = options.scheduler_flags
    timeout = 0
    if sp.session_affinity_timeout is not None:
        flags |= IP_VS_SVC_F_PERSISTENT
        timeout = sp.session_affinity_timeout
    categories = categorize(sp, node_name, zone)
    internal = _reals(categories.internal)
    external = _reals(categories.external)
    proto = sp.protocol
    ranges = source_ranges(sp)
    entries: list[EntryPlan] = []

    def add(ip: str, port: int, reals: tuple[RealServer, ...], kind: str, address: str | None,
            field: str | None) -> None:
        vs = VirtualServer(ip, port, proto, options.scheduler, flags, timeout)
        items: list[tuple[str, frozenset]] = [("owners", frozenset(((ip, proto, port, kind, sp.key),)))]
        if field:
            items.append((field, frozenset(((ip, proto, port),))))
        if not reals:
            # a Local policy that leaves no endpoint on this node drops; no endpoint at all rejects
            policy_local = sp.internal_policy_local if kind == "clusterIP" else sp.external_policy_local
            local_only = policy_local and categories.has_any
            items.append(("no_local" if local_only else "no_endpoints", frozenset(((ip, proto, port),))))
        else:
            items.append(("loopback", frozenset((r.address, proto, r.port) for r in reals)))
        if kind == "loadBalancerIP":
            items.extend(_firewall_items(ip, proto, port, ranges, node_ips))
        entries.append(EntryPlan(ServiceEntry(vs, reals, sp.key, kind), address, tuple(items)))

    for ip in ipv4(sp.cluster_ips):
        add(ip, sp.port, internal, "clusterIP", ip, "cluster_ips")
    externals = [(ip, "externalIP") for ip in ipv4(sp.external_ips)]
    externals += [(ip, "loadBalancerIP") for ip in ipv4(sp.load_balancer_ips)]
    for ip, kind in externals:
        add(ip, sp.port, external, kind, ip, None if sp.external_policy_local else "external_ips")
    port_items: tuple[tuple[str, frozenset], ...] = ()
    if sp.node_port:
        for ip in node_addrs:
            add(ip, sp.node_port, external, "nodePort", None, None)
        port_items = (("local_node_ports" if sp.external_policy_local else "node_ports",
                       frozenset(((proto, sp.node_port),))),)
    return Fragment(sp, tuple(entries), port_items)


def render(state: ProxyState, options: RenderOptions = RenderOptions(),
           previous: IpvsRuleset | None = None, changes: Changes | None = None) -> IpvsRuleset:
    """The ruleset of `state`. With `previous` (the render of the state before) and `changes`
    (what changed since that state), the fragments of the ServicePorts `changes` does not name
    are reused: a one-endpoint change at 10k Services re-renders one ServicePort and
    re-assembles the rest from sets (same result as a render from scratch)."""
    node_addrs = tuple(nodeport_addresses(state))
    node_ips = tuple(state.node_ips)
    context = (options, node_addrs, node_ips, state.node_name, state.node_zone)
    partial = previous is not None and changes is not None and not changes.full and previous.context == context
    reusable = previous.fragments if partial and previous is not None else {}
    rendered = changes.services if partial and changes is not None else frozenset()
    fragments: dict[str, Fragment] = {}
    services: dict[VSKey, ServiceEntry] = {}
    addresses: set[str] = set()
    fields: dict[str, set] = {name: set() for name in MEMBER_FIELDS}
    for key in sorted(state.services):
        sp: ServicePort = state.services[key]
        frag = reusable.get(key)
        if frag is None or key in rendered:
            frag = render_fragment(sp, options, node_addrs, node_ips, state.node_name, state.node_zone)
        fragments[key] = frag
        for plan in frag.entries:
            vs_key = plan.entry.server.key
            if vs_key in services:  # held by an earlier ServicePort in key order
                continue
            services[vs_key] = plan.entry
            if plan.address:
                addresses.add(plan.address)
            for field, items in plan.items:
                fields[field].update(items)
        for field, items in frag.port_items:
            fields[field].update(items)

    local = local_traffic(state)
    plan = NetfilterPlan(**{name: frozenset(items) for name, items in fields.items()},
                         local_match=local.iptables_match() if local else None, masquerade_all=state.masquerade_all,
                         masquerade_bit=state.masquerade_bit)
    return IpvsRuleset(services=services, addresses=frozenset(addresses), netfilter=plan,
                       fragments=fragments, context=context)
