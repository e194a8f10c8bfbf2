"""kube-scheduler's default filter plugins, as pure functions of (pod context, node).

Each filter returns the reasons the node cannot run the pod, worded as kube-scheduler words
them (they end up counted in the FailedScheduling message); an empty tuple means it fits.
Filters run in kube-scheduler's order and the first that fails decides, as its framework does.
"""
from __future__ import annotations

from typing import Callable

from kproxy.scheduler.affinity import tolerated
from kproxy.scheduler.context import PodContext
from kproxy.scheduler.snapshot import CPU, PODS, UNSCHEDULABLE_TAINT, NodeInfo, ports_conflict
from kproxy.scheduler.spread import skew_violations

REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_PORTS = "node(s) didn't have free ports for the requested pod ports"
REASON_TOO_MANY_PODS = "Too many pods"


def node_unschedulable(ctx: PodContext, node: NodeInfo) -> tuple[str, ...]:
    if node.unschedulable and not tolerated(ctx.tolerations, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}):
        return (REASON_UNSCHEDULABLE,)
    return ()


def taint_toleration(ctx: PodContext, node: NodeInfo) -> tuple[str, ...]:
    for taint in node.taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerated(ctx.tolerations, taint):
            return (f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}",)
    return ()


def node_affinity(ctx: PodContext, node: NodeInfo) -> tuple[str, ...]:
    return () if ctx.matches_node_affinity(node) else (REASON_AFFINITY,)


def node_ports(ctx: PodContext, node: NodeInfo) -> tuple[str, ...]:
    return (REASON_PORTS,) if ctx.host_ports and ports_conflict(set(ctx.host_ports), set(node.used_ports)) else ()


def resources_fit(ctx: PodContext, node: NodeInfo) -> tuple[str, ...]:
    """NodeResourcesFit: the pod count, then every resource the pod requests (cpu, memory,
    ephemeral-storage, extended resources) against what is left of the node's allocatable."""
    reasons = []
    if node.requested.get(PODS, 0) + 1 > node.allocatable.get(PODS, 0):
        reasons.append(REASON_TOO_MANY_PODS)
    for name in sorted(ctx.requests, key=lambda n: (n != CPU, n)):
        want = ctx.requests[name]
        if want > 0 and want > node.allocatable.get(name, 0) - node.requested.get(name, 0):
            reasons.append(f"Insufficient {name}")
    return tuple(reasons)


def topology_spread(ctx: PodContext, node: NodeInfo) -> tuple[str, ...]:
    return skew_violations(ctx, node)


# kube-scheduler's default profile order (NodeName is moot: pods with a node are not scheduled).
FILTERS: tuple[Callable[[PodContext, NodeInfo], tuple[str, ...]], ...] = (
    node_unschedulable, taint_toleration, node_affinity, node_ports, resources_fit, topology_spread)


def reasons_against(ctx: PodContext, node: NodeInfo) -> tuple[str, ...]:
    """Why `node` cannot run the pod: the first failing filter's reasons, or () if it fits."""
    for f in FILTERS:
        reasons = f(ctx, node)
        if reasons:
            return reasons
    return ()
