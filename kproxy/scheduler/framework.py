"""One scheduling decision: filter every node, score the feasible ones, pick the best (ties
broken at random, as kube-scheduler does), or explain why no node fits."""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

from kproxy.scheduler.context import PodContext
from kproxy.scheduler.filters import reasons_against
from kproxy.scheduler.scores import score_nodes
from kproxy.scheduler.snapshot import Snapshot

NO_NODES = "no nodes available to schedule pods"


@dataclass(frozen=True)
class Scheduled:
    node: str
    scores: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Unschedulable:
    reasons: Mapping[str, tuple[str, ...]]  # node -> why it cannot run the pod
    message: str


def fit_error_message(num_nodes: int, reasons: Mapping[str, tuple[str, ...]]) -> str:
    """kube-scheduler's FitError text: "0/3 nodes are available: 1 Insufficient cpu, 2 node(s)
    had untolerated taint {k: v}." - each reason with the number of nodes it applies to,
    sorted as strings."""
    if num_nodes == 0:
        return NO_NODES
    histogram = Counter(r for node_reasons in reasons.values() for r in node_reasons)
    parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
    return f"0/{num_nodes} nodes are available: {', '.join(parts)}."


def schedule(pod: Mapping[str, Any], snapshot: Snapshot, rng: random.Random | None = None) -> Scheduled | Unschedulable:
    ctx = PodContext.of(pod, snapshot)
    feasible = []
    reasons: dict[str, tuple[str, ...]] = {}
    for node in snapshot.nodes.values():
        why = reasons_against(ctx, node)
        if why:
            reasons[node.name] = why
        else:
            feasible.append(node)
    if not feasible:
        return Unschedulable(reasons, fit_error_message(len(snapshot.nodes), reasons))
    if len(feasible) == 1:
        return Scheduled(feasible[0].name)
    scores = score_nodes(ctx, feasible)
    best = max(s["total"] for s in scores.values())
    ties = [name for name, s in scores.items() if s["total"] == best]
    return Scheduled((rng or random).choice(ties), scores)
