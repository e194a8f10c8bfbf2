"""Topology hints an EndpointSlice controller writes for a Service's spec.trafficDistribution
(the facts of upstream's endpointslice trafficdist package; kube-proxy reads only the hints,
kproxy.agent.policy).

- PreferClose and PreferSameZone: every ready endpoint with a zone is hinted for its own zone.
- PreferSameNode: also for its own node (hints.forNodes), so proxies prefer endpoints on the
  same node, then the zone.
- Anything else (unset, unknown values): no hints.
- A Service annotated service.kubernetes.io/topology-mode (or the older
  service.kubernetes.io/topology-aware-hints) "Auto"/"auto" is upstream's older topology-aware
  routing, whose controller heuristic allocates zones in proportion to their nodes' CPU and
  takes precedence over trafficDistribution. kproxy does not have that heuristic: such a
  Service gets no hints, so proxies route cluster-wide (what upstream falls back to whenever its
  heuristic cannot allocate safely).
Not-ready endpoints get no hints (proxies ignore their hints anyway).
"""
from __future__ import annotations

from typing import Any

PREFER_CLOSE = ("PreferClose", "PreferSameZone", "PreferSameNode")
TOPOLOGY_MODE_ANNOTATIONS = ("service.kubernetes.io/topology-mode", "service.kubernetes.io/topology-aware-hints")


def auto_topology_mode(service: dict) -> bool:
    """The Service asks for upstream's topology-mode Auto heuristic."""
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    for key in TOPOLOGY_MODE_ANNOTATIONS:
        if key in annotations:
            return annotations[key] in ("Auto", "auto")
    return False


def endpoint_hints(service: dict, endpoint: dict[str, Any]) -> dict | None:
    """The hints of one endpoint (its conditions, nodeName and zone set) of `service`; None: none."""
    distribution = (service.get("spec") or {}).get("trafficDistribution")
    if distribution not in PREFER_CLOSE or auto_topology_mode(service):
        return None
    if not (endpoint.get("conditions") or {}).get("ready"):
        return None
    hints: dict[str, list[dict]] = {}
    if endpoint.get("zone"):
        hints["forZones"] = [{"name": endpoint["zone"]}]
    if distribution == "PreferSameNode" and endpoint.get("nodeName"):
        hints["forNodes"] = [{"name": endpoint["nodeName"]}]
    return hints or None
