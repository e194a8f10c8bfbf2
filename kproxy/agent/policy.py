"""Endpoint categorisation: which endpoints each kind of traffic to a ServicePort may reach.

The one home of the traffic-policy arithmetic every backend (iptables, nftables, ipvs,
userspace) and the agent's bookkeeping (conntrack cleanup, metrics, health-check ports) use,
after kube-proxy's CategorizeEndpoints (pkg/proxy/topology.go):

- A ServicePort uses Cluster endpoints unless its internal policy is Local and nothing external
  reaches it (an external Local policy still needs them, for pod and node traffic that
  short-circuits); it uses Local endpoints when either policy that applies is Local.
- Cluster endpoints are the ready ones, narrowed by topology (below); if none is ready anywhere,
  the serving-and-terminating ones. Local endpoints are this node's ready ones, else this
  node's serving-and-terminating ones: the fallback is decided for each list on its own.
- Topology: the EndpointSlice hints decide (kube-proxy reads neither the Service's
  trafficDistribution nor its topology-mode annotation: the EndpointSlice controller turns
  those into hints). If every ready endpoint has a node hint and one names this node, Cluster
  traffic goes to the endpoints hinted for this node (PreferSameNode); else if every ready
  endpoint has a zone hint and one names this node's zone (its topology.kubernetes.io/zone
  label), to those hinted for the zone (PreferSameZone); otherwise hints are ignored. Local
  endpoints never look at hints.
- `has_any`: some endpoint is usable somewhere in the cluster (ready, or serving and
  terminating), which tells "no endpoints" (REJECT) from "none for this policy here" (DROP).

Endpoints are unique by (ip, port) within a ServicePort (kproxy.agent.translate guarantees it),
so the lists below never repeat an address. Every function is pure.
"""
from __future__ import annotations

from typing import NamedTuple

from kproxy.agent.state import Endpoint, ProxyState, ServicePort

SAME_NODE = "PreferSameNode"
SAME_ZONE = "PreferSameZone"


class Categories(NamedTuple):
    """The endpoints of one ServicePort by use, each sorted as ServicePort.endpoints is.
    `cluster` is () when the ServicePort never uses Cluster endpoints, `local` likewise."""

    cluster: tuple[Endpoint, ...]
    local: tuple[Endpoint, ...]
    reachable: tuple[Endpoint, ...]  # cluster | local: every endpoint this node may send to
    has_any: bool
    internal: tuple[Endpoint, ...]  # for ClusterIP traffic (internalTrafficPolicy)
    external: tuple[Endpoint, ...]  # for NodePort / external IP / LB traffic (externalTrafficPolicy)


def uses_cluster(sp: ServicePort) -> bool:
    return not sp.internal_policy_local or sp.has_external


def uses_local(sp: ServicePort) -> bool:
    return sp.internal_policy_local or (sp.external_policy_local and sp.has_external)


def topology_mode(endpoints: tuple[Endpoint, ...], node_name: str, zone: str) -> str:
    """SAME_NODE, SAME_ZONE or "" (hints ignored) for these endpoints on this node."""
    any_ready = False
    all_node_hints = all_zone_hints = True
    for_node = for_zone = False
    for e in endpoints:
        if not e.ready:
            continue
        any_ready = True
        if not e.node_hints:
            all_node_hints = False
        elif node_name in e.node_hints:
            for_node = True
        if not e.zone_hints:
            all_zone_hints = False
        elif zone in e.zone_hints:
            for_zone = True
    if not any_ready:
        return ""
    if all_node_hints and for_node:
        return SAME_NODE
    if all_zone_hints and for_zone and zone:
        return SAME_ZONE
    return ""


def _cluster(endpoints: tuple[Endpoint, ...], node_name: str, zone: str) -> tuple[Endpoint, ...]:
    mode = topology_mode(endpoints, node_name, zone) if endpoints else ""
    if mode == SAME_NODE:
        ready = tuple(e for e in endpoints if e.ready and node_name in e.node_hints)
    elif mode == SAME_ZONE:
        ready = tuple(e for e in endpoints if e.ready and zone in e.zone_hints)
    else:
        ready = tuple(e for e in endpoints if e.ready)
    if ready:
        return ready
    # a topology mode is only chosen when some ready endpoint fits it, so none is ready anywhere
    return tuple(e for e in endpoints if e.serving and e.terminating)


def local_endpoints(sp: ServicePort) -> tuple[Endpoint, ...]:
    """This node's ready endpoints, else its serving-and-terminating ones (hints play no part)."""
    local = tuple(e for e in sp.endpoints if e.is_local)
    ready = tuple(e for e in local if e.ready)
    return ready or tuple(e for e in local if e.serving and e.terminating)


def local_ready_count(sp: ServicePort) -> int:
    """This node's ready endpoints (what a health-check node port reports; a terminating
    endpoint does not count, so a draining node fails the check)."""
    return sum(1 for e in sp.endpoints if e.is_local and e.ready)


def categorize(sp: ServicePort, node_name: str = "", zone: str = "") -> Categories:
    """`sp`'s endpoints by use on node `node_name` in zone `zone` ("": the node has no zone)."""
    eps = sp.endpoints
    cluster = _cluster(eps, node_name, zone) if uses_cluster(sp) else ()
    local = local_endpoints(sp) if uses_local(sp) else ()
    has_any = bool(cluster) or any(e.ready or (e.serving and e.terminating) for e in eps)
    if not local:
        reachable = cluster
    elif not cluster or set(local) <= set(cluster):
        reachable = cluster or local
    else:
        reachable = tuple(sorted(set(cluster) | set(local)))
    internal = local if sp.internal_policy_local else cluster
    external = local if sp.external_policy_local else cluster
    return Categories(cluster, local, reachable, has_any, internal, external)


def categorize_in(sp: ServicePort, state: ProxyState) -> Categories:
    """categorize() for a ServicePort of `state`, on the state's node and zone."""
    return categorize(sp, state.node_name, state.node_zone)

