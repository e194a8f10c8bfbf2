"""Address questions every backend asks of a ProxyState, answered once.

Pure functions. Each answers for the state's `ip_family` (a backend renders one family's view
at a time, kproxy.agent.families); ProxyState holds validated IPs, so ":" means IPv6. Loopback
stands in for a local address only in IPv4: localhost NodePorts are IPv4-only, as upstream's.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from kproxy.agent.families import IPV4, of_family
from kproxy.agent.state import ProxyState

LOOPBACK = "127.0.0.1"


def ipv4(addresses: Iterable[str]) -> list[str]:
    """The IPv4 addresses among `addresses`, in order."""
    return list(of_family(addresses, IPV4))


def local_pod_cidr(cluster_cidr: str | None, family: int = IPV4) -> str | None:
    """The pod CIDR of `family` that tells pod traffic from off-cluster traffic: the first CIDR
    of the family in a comma-separated list (kube-proxy's ClusterCIDR detector uses one per family)."""
    for part in (cluster_cidr or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            net = ipaddress.ip_network(part, strict=False)
        except ValueError:
            continue
        if net.version == family:
            return str(net)
    return None


@dataclass(frozen=True)
class LocalTraffic:
    """What tells traffic from this node's pods (kube-proxy's local-traffic detector): a source
    address inside `cidr`, or arrival on interface `interface` (with `prefix`, on any interface
    whose name starts with it). Exactly one of cidr and interface is set."""

    cidr: str | None = None
    interface: str | None = None
    prefix: bool = False

    def iptables_match(self, negate: bool = False) -> str:
        """The iptables match for "is local" (or, with negate, "is not local")."""
        bang = "! " if negate else ""
        if self.cidr is not None:
            return f"{bang}-s {self.cidr}"
        return f"{bang}-i {self.interface}{'+' if self.prefix else ''}"


def local_traffic(state: ProxyState) -> LocalTraffic | None:
    """The detector for state.detect_local_mode; None when its input is missing (no cluster
    CIDR, a Node without podCIDRs): then no traffic counts as local, as upstream's no-op detector."""
    mode = state.detect_local_mode
    if mode == "NodeCIDR":
        cidr = local_pod_cidr(",".join(state.node_pod_cidrs), state.ip_family)
        return LocalTraffic(cidr=cidr) if cidr else None
    if mode in ("BridgeInterface", "InterfaceNamePrefix"):
        if not state.detect_local_interface:
            return None
        return LocalTraffic(interface=state.detect_local_interface, prefix=mode == "InterfaceNamePrefix")
    cidr = local_pod_cidr(state.cluster_cidr, state.ip_family)
    return LocalTraffic(cidr=cidr) if cidr else None


def _is_loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_loopback


def local_ips(state: ProxyState) -> list[str]:
    """The node's local addresses of the state's family: those read from its interfaces, or,
    when they were not read (offline rendering), the Node object's addresses (and 127.0.0.1)."""
    family = state.ip_family
    if state.local_ips is not None:
        return list(of_family(state.local_ips, family))
    return [*of_family(state.node_ips, family), *([LOOPBACK] if family == IPV4 else [])]


def nodeport_ips(state: ProxyState, include_loopback: bool = False) -> list[str] | None:
    """Where NodePorts listen, as kube-proxy chooses. None: on every local address
    (node_port_addresses is empty); else the node's local addresses of the state's family inside
    one of the node_port_addresses CIDRs, plus, for "primary", those that are the Node object's addresses.
    Loopback addresses are selected only with include_loopback (modes that cannot serve NodePorts
    on loopback leave them out, as kube-proxy does)."""
    if not state.node_port_addresses:
        return None
    nets = []
    primary: set[str] = set()
    for cidr in state.node_port_addresses:
        if cidr == "primary":
            primary = set(of_family(state.node_ips, state.ip_family))
            continue
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue
        if net.version == state.ip_family:
            nets.append(net)
    selected = []
    for ip in local_ips(state):
        if ip in selected or (not include_loopback and _is_loopback(ip)):
            continue
        if ip in primary or any(ipaddress.ip_address(ip) in n for n in nets):
            selected.append(ip)
    return selected


def nodeport_listen_ips(state: ProxyState, include_loopback: bool = False) -> list[str]:
    """nodeport_ips spelled out for modes that need each address (IPVS): "every local address"
    becomes the node's local addresses of the family (loopback only with include_loopback)."""
    selected = nodeport_ips(state, include_loopback)
    if selected is not None:
        return selected
    return [ip for ip in dict.fromkeys(local_ips(state)) if include_loopback or not _is_loopback(ip)]
