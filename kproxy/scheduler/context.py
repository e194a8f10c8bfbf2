"""One scheduling attempt's view of the pod and the cluster: what filters and scores read,
computed once per attempt (the PreFilter/PreScore state of kube-scheduler's framework)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping

from kproxy.scheduler.affinity import selector_matches
from kproxy.scheduler.snapshot import NodeInfo, Snapshot, host_ports, nonzero_requests, pod_requests
from kproxy.scheduler.spread import SpreadConstraint, domain_counts, matching_pods_per_node, spread_constraints


@dataclass(frozen=True)
class PodContext:
    pod: Mapping[str, Any]
    snapshot: Snapshot
    namespace: str
    labels: Mapping[str, str]
    requests: Mapping[str, int]
    nonzero: tuple[int, int]
    tolerations: tuple[Mapping[str, Any], ...]
    node_selector: Mapping[str, str]
    required_terms: tuple[Mapping[str, Any], ...] | None
    preferred_terms: tuple[Mapping[str, Any], ...]
    host_ports: frozenset[tuple[str, str, int]]
    spread: tuple[SpreadConstraint, ...]
    explicit_spread: bool  # the pod's own constraints, not the system defaults

    @classmethod
    def of(cls, pod: Mapping[str, Any], snapshot: Snapshot) -> "PodContext":
        spec = pod.get("spec") or {}
        meta = pod.get("metadata") or {}
        affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        spread, explicit = spread_constraints(pod)
        return cls(pod=pod, snapshot=snapshot, namespace=meta.get("namespace") or "default",
                   labels=dict(meta.get("labels") or {}), requests=pod_requests(pod),
                   nonzero=nonzero_requests(pod), tolerations=tuple(spec.get("tolerations") or ()),
                   node_selector=dict(spec.get("nodeSelector") or {}),
                   required_terms=None if required is None else tuple(required.get("nodeSelectorTerms") or ()),
                   preferred_terms=tuple(affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ()),
                   host_ports=frozenset(host_ports(pod)), spread=spread, explicit_spread=explicit)

    def matches_node_affinity(self, node: NodeInfo) -> bool:
        return selector_matches(self.node_selector, self.required_terms, node.labels, node.name)

    @cached_property
    def spread_counts(self) -> dict[SpreadConstraint, dict[str, int]]:
        """Per constraint, matching pods per topology domain over the nodes the pod could
        use by node affinity (nodeAffinityPolicy Honor) that carry every constraint's key."""
        if not self.spread:
            return {}
        hard_keys = [c.topology_key for c in self.spread if c.hard or self.explicit_spread]
        eligible = [n for n in self.snapshot.nodes.values()
                    if self.matches_node_affinity(n) and all(k in n.labels for k in hard_keys)]
        per_node: dict[object, dict[str, int]] = {}  # constraints sharing a selector count once
        out = {}
        for c in self.spread:
            if c.counts not in per_node:
                per_node[c.counts] = matching_pods_per_node(c, eligible)
            out[c] = domain_counts(c, eligible, per_node[c.counts])
        return out

    @cached_property
    def spread_weights(self) -> dict[SpreadConstraint, float]:
        """log(domains + 2) per constraint: kube-scheduler's weight for a topology's size."""
        return {c: math.log(len(counts) + 2) for c, counts in self.spread_counts.items()}
