"""kube-scheduler's default score plugins. Each gives a raw score per feasible node; its
normaliser turns the raw scores into 0..100; the framework adds them up by weight (the
default profile's weights)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from kproxy.scheduler.affinity import term_matches, tolerated
from kproxy.scheduler.context import PodContext
from kproxy.scheduler.snapshot import CPU, MEMORY, NodeInfo
from kproxy.scheduler.spread import spread_raw_score

MAX_NODE_SCORE = 100


def _fractions(ctx: PodContext, node: NodeInfo) -> list[tuple[int, int]]:
    """(requested with the pod, allocatable) for cpu and memory, the non-zero way."""
    cpu, mem = node.nonzero_requested
    return [(cpu + ctx.nonzero[0], node.allocatable.get(CPU, 0)),
            (mem + ctx.nonzero[1], node.allocatable.get(MEMORY, 0))]


def least_allocated(ctx: PodContext, node: NodeInfo) -> float:
    """NodeResourcesFit's LeastAllocated: the free share of cpu and memory, equally weighted."""
    total = 0
    pairs = _fractions(ctx, node)
    for requested, allocatable in pairs:
        if allocatable and requested <= allocatable:
            total += (allocatable - requested) * MAX_NODE_SCORE // allocatable
    return total // len(pairs)


def balanced_allocation(ctx: PodContext, node: NodeInfo) -> float:
    """NodeResourcesBalancedAllocation: 100 * (1 - the standard deviation of the used shares)."""
    shares = [min(1.0, requested / allocatable) if allocatable else 1.0
              for requested, allocatable in _fractions(ctx, node)]
    mean = sum(shares) / len(shares)
    std = math.sqrt(sum((s - mean) ** 2 for s in shares) / len(shares))
    return int((1 - std) * MAX_NODE_SCORE)


def untolerated_prefer_no_schedule(ctx: PodContext, node: NodeInfo) -> float:
    prefer = [t for t in ctx.tolerations if not t.get("effect") or t.get("effect") == "PreferNoSchedule"]
    return sum(1 for t in node.taints if t.get("effect") == "PreferNoSchedule" and not tolerated(tuple(prefer), t))


def preferred_affinity(ctx: PodContext, node: NodeInfo) -> float:
    return sum(int(p.get("weight") or 0) for p in ctx.preferred_terms
               if term_matches(p.get("preference") or {}, node.labels, node.name))


def topology_spread(ctx: PodContext, node: NodeInfo) -> float | None:
    return spread_raw_score(ctx, node)


def keep(raw: Sequence[float | None]) -> list[int]:
    return [int(r or 0) for r in raw]


def normalize(raw: Sequence[float | None]) -> list[int]:
    """DefaultNormalizeScore: scale so the best node has 100."""
    top = max((r or 0 for r in raw), default=0)
    return [int((r or 0) * MAX_NODE_SCORE // top) if top else 0 for r in raw]


def normalize_reverse(raw: Sequence[float | None]) -> list[int]:
    """DefaultNormalizeScore reversed: fewest wins (0 everywhere gives 100 everywhere)."""
    top = max((r or 0 for r in raw), default=0)
    return [MAX_NODE_SCORE - int((r or 0) * MAX_NODE_SCORE // top) if top else MAX_NODE_SCORE for r in raw]


def normalize_spread(raw: Sequence[float | None]) -> list[int]:
    """PodTopologySpread's normaliser: lowest raw wins; a node it could not score gets 0."""
    known = [r for r in raw if r is not None]
    if not known:
        return [0 for _ in raw]
    lo, hi = min(known), max(known)
    if hi == 0:
        return [MAX_NODE_SCORE if r is not None else 0 for r in raw]
    return [int(MAX_NODE_SCORE * (hi + lo - r) / hi) if r is not None else 0 for r in raw]


@dataclass(frozen=True)
class Scorer:
    name: str
    weight: int
    raw: Callable[[PodContext, NodeInfo], float | None]
    normalize: Callable[[Sequence[float | None]], list[int]]


# The default profile's score plugins and weights.
SCORERS: tuple[Scorer, ...] = (
    Scorer("TaintToleration", 3, untolerated_prefer_no_schedule, normalize_reverse),
    Scorer("NodeAffinity", 2, preferred_affinity, normalize),
    Scorer("PodTopologySpread", 2, topology_spread, normalize_spread),
    Scorer("NodeResourcesFit", 1, least_allocated, keep),
    Scorer("NodeResourcesBalancedAllocation", 1, balanced_allocation, keep),
)


def score_nodes(ctx: PodContext, nodes: Sequence[NodeInfo]) -> dict[str, dict[str, int]]:
    """Per node, each plugin's weighted score and the "total"."""
    out: dict[str, dict[str, int]] = {n.name: {"total": 0} for n in nodes}
    for scorer in SCORERS:
        normalized = scorer.normalize([scorer.raw(ctx, n) for n in nodes])
        for n, s in zip(nodes, normalized):
            out[n.name][scorer.name] = s * scorer.weight
            out[n.name]["total"] += s * scorer.weight
    return out
