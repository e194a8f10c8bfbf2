"""Chain names: the static chains kproxy owns and the stable per-service chain names.

Per-service chain names are computed exactly as kube-proxy computes them (prefix + the first 16
characters of base32(sha256(servicePortName + protocol [+ endpoint]))), so a node moved from
kube-proxy to kproxy keeps the same chain names. Guarantee: the same ServicePort (and endpoint)
always maps to the same name, whatever else is in the state.
"""
from __future__ import annotations

import hashlib

from kproxy.agent.state import Endpoint, ServicePort

NAT = "nat"
FILTER = "filter"
TABLES = (FILTER, NAT)  # restore order: filter first, so REJECTs exist before nat changes

# Static chains (the same in every ruleset).
KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_FIREWALL = "KUBE-FIREWALL"  # blocks martian localnet traffic when localhost NodePorts are on
# Written only by full syncs and never jumped to: when it or its one rule is gone, someone
# flushed (-F) or deleted (-X) the table, and the next sync must be full (kube-proxy's canary,
# which holds no rule and so sees only -X).
KUBE_PROXY_CANARY = "KUBE-PROXY-CANARY"
CANARY_RULE = '-m comment --comment "kproxy canary: gone means this table was flushed" -j RETURN'

STATIC_NAT_CHAINS = (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ)
STATIC_FILTER_CHAINS = (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_NODEPORTS, KUBE_FORWARD,
                        KUBE_PROXY_FIREWALL, KUBE_FIREWALL)

# Prefixes of per-service chains. KUBE-XLB- is the pre-1.24 name of KUBE-SVL-; it is listed
# so that a full sync or cleanup also removes chains an older kube-proxy left behind.
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-", "KUBE-XLB-")


def is_service_chain(name: str) -> bool:
    """True for a per-service chain name (one kproxy may delete when no Service needs it)."""
    return name.startswith(SERVICE_CHAIN_PREFIXES)


# What a chain may jump to decides when a sectioned restore (restore.py) may write it: after
# every chain of a lower depth. KUBE-SEP- jumps to KUBE-MARK-MASQ; KUBE-SVC-/SVL- to SEP-;
# KUBE-EXT- to SVC-/SVL-; KUBE-FW- to EXT-; KUBE-NODEPORTS to EXT-; the dispatch chains to all.
_JUMP_DEPTH = (("KUBE-SEP-", 1), ("KUBE-SVC-", 2), ("KUBE-SVL-", 2), ("KUBE-XLB-", 2), ("KUBE-EXT-", 3),
               ("KUBE-FW-", 4), (KUBE_NODEPORTS, 5), (KUBE_SERVICES, 6), (KUBE_EXTERNAL_SERVICES, 6),
               (KUBE_PROXY_FIREWALL, 6))


def jump_depth(name: str) -> int:
    """0 for chains that jump to none of ours (KUBE-MARK-MASQ, KUBE-POSTROUTING, ...), else a
    rank above that of every chain of ours it may jump to."""
    for prefix, depth in _JUMP_DEPTH:
        if name.startswith(prefix) and (prefix.endswith("-") or name == prefix):
            return depth
    return 0


def is_owned_chain(table: str, name: str) -> bool:
    """True for every chain kproxy creates in `table` (static or per-service)."""
    static = STATIC_NAT_CHAINS if table == NAT else STATIC_FILTER_CHAINS
    return name in static or name == KUBE_PROXY_CANARY or is_service_chain(name)


def service_port_name(sp: ServicePort) -> str:
    """kube-proxy's ServicePortName string: "ns/name" or "ns/name:port" (port name only when set)."""
    base = f"{sp.namespace}/{sp.name}"
    return f"{base}:{sp.port_name}" if sp.port_name else base


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_PAIRS = tuple(_B32[i >> 5] + _B32[i & 31] for i in range(1024))  # 10 bits -> 2 characters


def _hash16(text: str) -> str:
    """The first 16 characters of base32(sha256(text)), i.e. of its first 80 bits, two
    characters per 10 bits (the same result as base64.b32encode, several times faster; chain
    naming is the hottest part of a full render)."""
    bits = int.from_bytes(hashlib.sha256(text.encode()).digest()[:10], "big")
    t = _B32_PAIRS
    return (t[bits >> 70] + t[(bits >> 60) & 1023] + t[(bits >> 50) & 1023] + t[(bits >> 40) & 1023]
            + t[(bits >> 30) & 1023] + t[(bits >> 20) & 1023] + t[(bits >> 10) & 1023] + t[bits & 1023])


def port_proto_hash(sp: ServicePort) -> str:
    """The 16-character suffix shared by a ServicePort's SVC/SVL/EXT/FW chains."""
    return _hash16(service_port_name(sp) + sp.protocol.lower())


def cluster_chain(sp: ServicePort) -> str:
    """KUBE-SVC-: load-balances over the Cluster-policy endpoints."""
    return "KUBE-SVC-" + port_proto_hash(sp)


def local_chain(sp: ServicePort) -> str:
    """KUBE-SVL-: load-balances over this node's endpoints (Local policy)."""
    return "KUBE-SVL-" + port_proto_hash(sp)


def external_chain(sp: ServicePort) -> str:
    """KUBE-EXT-: entry for NodePort / externalIP / LB traffic, applies externalTrafficPolicy."""
    return "KUBE-EXT-" + port_proto_hash(sp)


def firewall_chain(sp: ServicePort) -> str:
    """KUBE-FW-: loadBalancerSourceRanges filter in front of KUBE-EXT-."""
    return "KUBE-FW-" + port_proto_hash(sp)


def endpoint_chain(sp: ServicePort, ep: Endpoint) -> str:
    """KUBE-SEP-: DNAT to one endpoint (and hairpin mark, affinity --set)."""
    return endpoint_chain_name(service_port_name(sp) + sp.protocol.lower(), ep.address)


def endpoint_chain_name(name_and_protocol: str, address: str) -> str:
    """endpoint_chain() from precomputed parts (service_port_name + lowercase protocol, "ip:port"),
    for renderers naming many endpoints of one ServicePort."""
    return "KUBE-SEP-" + _hash16(name_and_protocol + address)
