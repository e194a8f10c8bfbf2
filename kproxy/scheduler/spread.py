"""Pod topology spread: the pod's topologySpreadConstraints, or kube-scheduler's system
defaults (spread the pods of one owner over hosts, maxSkew 3, and zones, maxSkew 5, both
ScheduleAnyway), counted per topology domain."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from kproxy.api.selectors import LabelSelector, SelectorError
from kproxy.scheduler.snapshot import NodeInfo, is_terminal

if TYPE_CHECKING:
    from kproxy.scheduler.context import PodContext

HOSTNAME_KEY = "kubernetes.io/hostname"
ZONE_KEY = "topology.kubernetes.io/zone"

REASON_SPREAD = "node(s) didn't match pod topology spread constraints"
REASON_SPREAD_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"


@dataclass(frozen=True, eq=False)  # identity-hashed: a cache key per attempt
class SpreadConstraint:
    max_skew: int
    topology_key: str
    hard: bool  # DoNotSchedule; ScheduleAnyway only scores
    counts: Callable[[Mapping[str, Any]], bool]  # which pods count toward a domain
    min_domains: int = 1


def _controller_uid(pod: Mapping[str, Any]) -> str | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref.get("uid")
    return None


def _counted_by(ns: str, selector: LabelSelector) -> Callable[[Mapping[str, Any]], bool]:
    """Which pods count toward a constraint's domains: those of `ns` that `selector` matches."""
    return lambda p: _namespace(p) == ns and selector.matches((p.get("metadata") or {}).get("labels"))


def _namespace(pod: Mapping[str, Any]) -> str:
    return (pod.get("metadata") or {}).get("namespace") or "default"


def spread_constraints(pod: Mapping[str, Any]) -> tuple[tuple[SpreadConstraint, ...], bool]:
    """(constraints, whether they are the pod's own). A constraint whose selector does not
    parse counts no pod (the apiserver's validation normally refuses it)."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    ns = _namespace(pod)
    own = (pod.get("spec") or {}).get("topologySpreadConstraints") or []
    if own:
        out = []
        for c in own:
            selector_dict = dict(c.get("labelSelector") or {}) if c.get("labelSelector") is not None else None
            try:
                selector = LabelSelector.from_dict(selector_dict)
                for key in c.get("matchLabelKeys") or ():
                    if key in labels:  # matchLabelKeys: the pod's own value of each key
                        extra = LabelSelector.from_labels({key: labels[key]})
                        selector = LabelSelector(selector.requirements + extra.requirements)
            except SelectorError:
                selector = LabelSelector(nothing=True)
            out.append(SpreadConstraint(
                max_skew=int(c.get("maxSkew") or 1), topology_key=str(c.get("topologyKey") or ""),
                hard=(c.get("whenUnsatisfiable") or "DoNotSchedule") == "DoNotSchedule",
                counts=_counted_by(ns, selector),
                min_domains=int(c.get("minDomains") or 1)))
        return tuple(out), True
    owner = _controller_uid(pod)
    if owner is None:
        return (), False

    def same_owner(p: Mapping[str, Any]) -> bool:
        return _namespace(p) == ns and _controller_uid(p) == owner

    return (SpreadConstraint(3, HOSTNAME_KEY, False, same_owner),
            SpreadConstraint(5, ZONE_KEY, False, same_owner)), False


def matching_pods_per_node(c: SpreadConstraint, nodes: Iterable[NodeInfo]) -> dict[str, int]:
    return {node.name: sum(1 for p in node.pods if not is_terminal(p) and c.counts(p)) for node in nodes}


def domain_counts(c: SpreadConstraint, nodes: Iterable[NodeInfo], per_node: dict[str, int]) -> dict[str, int]:
    """Matching pods per domain; every domain of `nodes` is present, empty ones with 0."""
    counts: dict[str, int] = {}
    for node in nodes:
        domain = node.labels.get(c.topology_key)
        if domain is not None:
            counts[domain] = counts.get(domain, 0) + per_node.get(node.name, 0)
    return counts


def skew_violations(ctx: "PodContext", node: NodeInfo) -> tuple[str, ...]:
    """The PodTopologySpread filter: placing the pod on `node` must keep every DoNotSchedule
    constraint's skew (this domain's count + the pod itself - the smallest domain's) <= maxSkew."""
    hard = [c for c in ctx.spread if c.hard]
    if not hard:
        return ()
    if any(c.topology_key not in node.labels for c in hard):
        return (REASON_SPREAD_LABEL,)
    for c in hard:
        counts = ctx.spread_counts[c]
        smallest = min(counts.values()) if counts and len(counts) >= c.min_domains else 0
        self_match = 1 if c.counts(ctx.pod) else 0
        if counts.get(node.labels[c.topology_key], 0) + self_match - smallest > c.max_skew:
            return (REASON_SPREAD,)
    return ()


def spread_raw_score(ctx: "PodContext", node: NodeInfo) -> float | None:
    """The ScheduleAnyway constraints' raw score (lower is better): matching pods in the node's
    domain weighted by log(domains + 2), as kube-scheduler scores; None for a node missing a
    key of the pod's own constraints (it scores 0)."""
    total = 0.0
    for c in ctx.spread:
        if c.hard:
            continue
        domain = node.labels.get(c.topology_key)
        if domain is None:
            if ctx.explicit_spread:
                return None
            continue
        total += ctx.spread_counts[c].get(domain, 0) * ctx.spread_weights[c] + (c.max_skew - 1)
    return total
