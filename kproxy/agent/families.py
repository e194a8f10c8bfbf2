"""One IP family's view of a ProxyState: what kube-proxy's per-family proxiers see behind its
MetaProxier, so every backend renders a family as one more pass through its own code.

Guarantees (pure functions):
- `family_view(state, family)` holds only `family`'s addresses: each ServicePort keeps its
  ClusterIPs, external IPs, LoadBalancer IPs, source ranges and endpoints of that family, and is
  left out when it has no ClusterIP of it (a single-stack Service of the other family); the
  node's addresses, local addresses, cluster/Service/pod CIDRs and nodePortAddresses CIDRs are
  narrowed the same way ("primary" stays: it means the node's addresses of the family).
  nodePortAddresses without a CIDR of the family means every local address of it, as
  upstream's NewNodePortAddresses falls back to the zero CIDR.
- A ServicePort already entirely of `family` is returned as the same object, so a backend's
  reuse of what it rendered for unchanged ServicePorts still holds.
- The view's `ip_family` says which family it is; the view of a view is the view itself
  (no second narrowing: a backend pass may narrow what the dual-stack backend narrowed).
"""
from __future__ import annotations

import weakref
from dataclasses import replace
from typing import Iterable

from kproxy.agent.state import Changes, ProxyState, ServicePort, join_host_port

__all__ = ["FAMILIES", "IPV4", "IPV6", "families_in", "family_of", "family_view", "join_host_port", "of_family",
           "service_view", "split_host_port"]

IPV4, IPV6 = 4, 6
FAMILIES = (IPV4, IPV6)
NAMES = {IPV4: "IPv4", IPV6: "IPv6"}
_VIEWS: "weakref.WeakValueDictionary[int, ProxyState]" = weakref.WeakValueDictionary()  # id -> a view made here


def family_of(address: str) -> int:
    """4 or 6 for a validated address or CIDR (ProxyState holds only those: ":" means IPv6)."""
    return IPV6 if ":" in address else IPV4


def of_family(addresses: Iterable[str], family: int) -> tuple[str, ...]:
    """The addresses (or CIDRs) of `family` among `addresses`, in order; empty strings dropped."""
    v6 = family == IPV6
    return tuple(a for a in addresses if a and (":" in a) == v6)


def service_view(sp: ServicePort, family: int) -> ServicePort | None:
    """`sp` narrowed to `family`; None when it has no ClusterIP of the family; `sp` itself when
    nothing of it is of the other family."""
    cluster_ips = of_family(sp.cluster_ips, family)
    if not cluster_ips:
        return None
    endpoints = tuple(e for e in sp.endpoints if family_of(e.ip) == family)
    external_ips = of_family(sp.external_ips, family)
    lb_ips = of_family(sp.load_balancer_ips, family)
    ranges = of_family(sp.load_balancer_source_ranges, family)
    if (len(cluster_ips) == len(sp.cluster_ips) and len(endpoints) == len(sp.endpoints)
            and len(external_ips) == len(sp.external_ips) and len(lb_ips) == len(sp.load_balancer_ips)
            and len(ranges) == len(sp.load_balancer_source_ranges)):
        return sp
    return replace(sp, cluster_ips=cluster_ips, endpoints=endpoints, external_ips=external_ips,
                   load_balancer_ips=lb_ips, load_balancer_source_ranges=ranges)


def _cidrs(text: str | None, family: int) -> str | None:
    """The comma-separated CIDRs of `family` in `text` (None when there is none)."""
    parts = of_family((p.strip() for p in (text or "").split(",")), family)
    return ",".join(parts) or None


def family_view(state: ProxyState, family: int, base: ProxyState | None = None,
                changes: Changes | None = None) -> ProxyState:
    """The state `family`'s pass of a backend renders (see the module doc). With `base` (the
    view of the state `changes` are relative to) and partial `changes`, only the ServicePorts
    `changes` names are narrowed again: O(changes) narrowing, the rest is `base`'s (a partial
    change leaves every node-wide field as it was)."""
    if state.ip_family == family and _VIEWS.get(id(state)) is state:
        return state
    view = _narrowed(state, family, base, changes)
    _VIEWS[id(view)] = view
    return view


def _narrowed(state: ProxyState, family: int, base: ProxyState | None, changes: Changes | None) -> ProxyState:
    if base is not None and changes is not None and not changes.full and base.ip_family == family:
        services = dict(base.services)
        for key in changes.services:
            sp = state.services.get(key)
            view = service_view(sp, family) if sp is not None else None
            if view is None:
                services.pop(key, None)
            else:
                services[key] = view
        return replace(base, services=services, revision=state.revision)
    services = {}
    for key, sp in state.services.items():
        view = service_view(sp, family)
        if view is not None:
            services[key] = view
    node_port_addresses = tuple(a for a in state.node_port_addresses
                                if a == "primary" or family_of(a) == family)
    return replace(
        state, ip_family=family, services=services,
        node_ips=of_family(state.node_ips, family),
        local_ips=None if state.local_ips is None else of_family(state.local_ips, family),
        cluster_cidr=_cidrs(state.cluster_cidr, family),
        service_cidrs=of_family(state.service_cidrs, family),
        node_pod_cidrs=of_family(state.node_pod_cidrs, family),
        node_port_addresses=node_port_addresses)


def families_in(state: ProxyState) -> tuple[int, ...]:
    """The families some ServicePort of `state` has a ClusterIP of, in FAMILIES order."""
    seen = {family_of(ip) for sp in state.services.values() for ip in sp.cluster_ips}
    return tuple(f for f in FAMILIES if f in seen)


def split_host_port(text: str) -> tuple[str, str]:
    """(ip, port) of "ip:port" or "[ip]:port"; the port is "" when there is none."""
    host, sep, port = text.rpartition(":")
    if text.startswith("[") and "]" in text:
        host, _, rest = text[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else ""
    return (host, port) if sep and ":" not in host else (text, "")
