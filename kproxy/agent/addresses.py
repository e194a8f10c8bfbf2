"""Address questions every backend asks of a ProxyState, answered once.

Pure functions; the IPv4-only answers reflect that the kernel backends program IPv4 tables
(ProxyState holds validated IPs, so an address with ":" is IPv6).
"""
from __future__ import annotations

import ipaddress
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


def nodeport_ips(state: ProxyState, include_loopback: bool = False) -> list[str] | None:
    """Where NodePorts listen. None: on every local address (node_port_addresses is empty);
    else the node's IPv4 addresses inside node_port_addresses ("primary" selects all of them).
    With include_loopback, an explicit CIDR holding 127.0.0.1 selects it too (node_ips never
    lists it); modes that cannot serve NodePorts on loopback leave it out, as kube-proxy does."""
    if not state.node_port_addresses:
        return None
    nets = []
    want_primary = False
    for cidr in state.node_port_addresses:
        if cidr == "primary":
            want_primary = True
            continue
        try:
            nets.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue
    nets4 = [n for n in nets if n.version == 4]
    ips = [ip for ip in ipv4(state.node_ips)
           if want_primary or any(ipaddress.ip_address(ip) in n for n in nets4)]
    if include_loopback and LOOPBACK not in ips and any(ipaddress.ip_address(LOOPBACK) in n for n in nets4):
        ips.append(LOOPBACK)
    return ips
