"""Address questions every backend asks of a ProxyState, answered once.

Pure functions; the IPv4-only answers reflect that the kernel backends program IPv4 tables
(ProxyState holds validated IPs, so an address with ":" is IPv6).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from kproxy.agent.state import ProxyState

LOOPBACK = "127.0.0.1"


def ipv4(addresses: Iterable[str]) -> list[str]:
    """The IPv4 addresses among `addresses`, in order."""
    return [a for a in addresses if a and ":" not in a]


def local_pod_cidr(cluster_cidr: str | None) -> str | None:
    """The IPv4 pod CIDR that tells pod traffic from off-cluster traffic: the first IPv4 CIDR of
    a comma-separated list (kube-proxy's ClusterCIDR local detector uses one per family)."""
    for part in (cluster_cidr or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            net = ipaddress.ip_network(part, strict=False)
        except ValueError:
            continue
        if net.version == 4:
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
        cidr = local_pod_cidr(",".join(state.node_pod_cidrs))
        return LocalTraffic(cidr=cidr) if cidr else None
    if mode in ("BridgeInterface", "InterfaceNamePrefix"):
        if not state.detect_local_interface:
            return None
        return LocalTraffic(interface=state.detect_local_interface, prefix=mode == "InterfaceNamePrefix")
    cidr = local_pod_cidr(state.cluster_cidr)
    return LocalTraffic(cidr=cidr) if cidr else None


def _is_loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_loopback


def local_ipv4(state: ProxyState) -> list[str]:
    """The node's local IPv4 addresses: those read from its interfaces, or, when they were not
    read (offline rendering), the Node object's addresses and 127.0.0.1."""
    if state.local_ips is not None:
        return ipv4(state.local_ips)
    return [*ipv4(state.node_ips), LOOPBACK]


def nodeport_ips(state: ProxyState, include_loopback: bool = False) -> list[str] | None:
    """Where NodePorts listen, as kube-proxy chooses. None: on every local address
    (node_port_addresses is empty); else the node's local IPv4 addresses inside one of the
    node_port_addresses CIDRs, plus, for "primary", those that are the Node object's addresses.
    Loopback addresses are selected only with include_loopback (modes that cannot serve NodePorts
    on loopback leave them out, as kube-proxy does)."""
    if not state.node_port_addresses:
        return None
    nets = []
    primary: set[str] = set()
    for cidr in state.node_port_addresses:
        if cidr == "primary":
            primary = set(ipv4(state.node_ips))
            continue
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue
        if net.version == 4:
            nets.append(net)
    selected = []
    for ip in local_ipv4(state):
        if ip in selected or (not include_loopback and _is_loopback(ip)):
            continue
        if ip in primary or any(ipaddress.ip_address(ip) in n for n in nets):
            selected.append(ip)
    return selected


def nodeport_listen_ips(state: ProxyState, include_loopback: bool = False) -> list[str]:
    """nodeport_ips spelled out for modes that need each address (IPVS): "every local address"
    becomes the node's local IPv4 addresses (loopback only with include_loopback)."""
    selected = nodeport_ips(state, include_loopback)
    if selected is not None:
        return selected
    return [ip for ip in dict.fromkeys(local_ipv4(state)) if include_loopback or not _is_loopback(ip)]
