"""The pure part of the DaemonSet controller (no I/O), following
kubernetes/pkg/controller/daemon: which nodes should run a daemon pod, the pod for a node,
what to create and delete on each node, the rolling-update step, and the status.

Eligibility is the scheduler's own: the daemon pod (with the node affinity and tolerations
the controller adds) is checked against each node with kproxy.scheduler's node-affinity and
taint filters. A node whose untolerated taint is only NoSchedule keeps a pod it already runs;
an untolerated NoExecute taint, a selector or affinity mismatch removes it.

Rolling update (maxSurge 0): old pods are deleted only while fewer than maxUnavailable nodes
lack an available pod, so at most maxUnavailable nodes are ever without one; an old pod that
is not available anyway is replaced at once. With maxSurge, a new pod starts beside the old
one on at most maxSurge nodes, and the old one goes once the new one is available.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable

from kproxy.api.resources import DAEMON_SETS
from kproxy.controllers.ownership import Obj, is_deleting, meta, owner_reference
from kproxy.controllers.podutil import is_pod_ready, is_terminal
from kproxy.controllers.replicaset import is_available
from kproxy.controllers.revisions import HASH_LABEL
from kproxy.controllers.rollout import scaled_value
from kproxy.scheduler.affinity import tolerated
from kproxy.scheduler.context import PodContext
from kproxy.scheduler.filters import node_affinity, taint_toleration
from kproxy.scheduler.snapshot import NodeInfo, Snapshot

# the tolerations every daemon pod gets (util.AddOrUpdateDaemonPodTolerations)
DAEMON_TOLERATIONS: tuple[dict[str, str], ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
HOST_NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                           "effect": "NoSchedule"}
_NO_NODES = Snapshot({})


def _with_tolerations(spec: dict[str, Any]) -> None:
    tolerations = list(spec.get("tolerations") or [])
    extra = list(DAEMON_TOLERATIONS) + ([HOST_NETWORK_TOLERATION] if spec.get("hostNetwork") else [])
    for tol in extra:
        if not any(t.get("key") == tol["key"] and t.get("effect") == tol["effect"] for t in tolerations):
            tolerations.append(dict(tol))
    spec["tolerations"] = tolerations


def _pinned_to(spec: dict[str, Any], node_name: str) -> None:
    """Required node affinity for exactly this node, as matchFields on metadata.name
    (ReplaceDaemonSetPodNodeNameNodeAffinity); preferred terms are kept."""
    affinity = spec.setdefault("affinity", {})
    node_aff = affinity.setdefault("nodeAffinity", {})
    node_aff["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}


def daemon_pod(ds: Obj, node_name: str, revision_hash: str) -> Obj:
    """The daemon pod for `node_name`: the template, the hash label, the controller
    reference, the default tolerations and node affinity pinning it to the node."""
    template = (ds.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    labels[HASH_LABEL] = revision_hash
    md: dict[str, Any] = {"generateName": f"{meta(ds)['name']}-", "namespace": meta(ds)["namespace"],
                          "labels": labels,
                          "ownerReferences": [owner_reference(ds, DAEMON_SETS.group_version, DAEMON_SETS.kind)]}
    if tmeta.get("annotations"):
        md["annotations"] = dict(tmeta["annotations"])
    spec = copy.deepcopy(template.get("spec") or {})
    _with_tolerations(spec)
    _pinned_to(spec, node_name)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec}


@dataclass(frozen=True)
class Placement:
    should_run: bool  # a daemon pod belongs on this node
    should_continue: bool  # a daemon pod already there may stay


def placement(ds: Obj, node: Obj) -> Placement:
    """NodeShouldRunDaemonPod: the template (with the daemon tolerations) against the node's
    name, node selector and required affinity, and taints, through the scheduler's filters."""
    name = meta(node).get("name", "")
    spec = copy.deepcopy(((ds.get("spec") or {}).get("template") or {}).get("spec") or {})
    if spec.get("nodeName") and spec["nodeName"] != name:
        return Placement(False, False)
    _with_tolerations(spec)
    ctx = PodContext.of({"metadata": {"namespace": meta(ds).get("namespace")}, "spec": spec}, _NO_NODES)
    info = NodeInfo.of(node)
    if node_affinity(ctx, info):
        return Placement(False, False)
    if taint_toleration(ctx, info):
        survives = all(tolerated(ctx.tolerations, t) for t in info.taints if t.get("effect") == "NoExecute")
        return Placement(False, survives)
    return Placement(True, True)


def target_node(pod: Obj) -> str | None:
    """The node a daemon pod is for: its nodeName, else its pinning matchFields term."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(f.get("values") or []) == 1:
                return f["values"][0]
    return None


def pods_by_node(pods: Iterable[Obj]) -> dict[str, list[Obj]]:
    """The daemon pods per target node, oldest first (pods without a node are left out)."""
    out: dict[str, list[Obj]] = {}
    for pod in pods:
        node = target_node(pod)
        if node:
            out.setdefault(node, []).append(pod)
    for group in out.values():
        group.sort(key=lambda p: (meta(p).get("creationTimestamp") or "", meta(p).get("name", "")))
    return out


def is_updated(pod: Obj, revision_hash: str) -> bool:
    return (meta(pod).get("labels") or {}).get(HASH_LABEL) == revision_hash


def surge_and_unavailable(ds: Obj, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in nodes; percentages of the desired count round up, and
    both 0 (only from a percentage of a small count) would deadlock, so unavailable becomes 1."""
    strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    surge = scaled_value(rolling.get("maxSurge", 0), desired, True)
    unavailable = scaled_value(rolling.get("maxUnavailable", 1), desired, True)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


@dataclass
class Plan:
    create_on: list[str] = field(default_factory=list)  # node names that get a new pod
    delete: list[Obj] = field(default_factory=list)  # pods to delete


def manage(placements: dict[str, Placement], by_node: dict[str, list[Obj]], revision_hash: str,
           surging: bool, backing_off: frozenset[str] = frozenset()) -> Plan:
    """podsShouldBeOnNode over every node: a pod where one should run and none is (not even
    one being deleted), none where none may stay, finished pods deleted (failed ones not on
    `backing_off` nodes; the replacement comes once they are gone), duplicates removed (the
    oldest kept; while surging, the oldest of the old and of the new template)."""
    plan = Plan()
    for node in sorted(set(placements) | set(by_node)):
        where = placements.get(node, Placement(False, False))
        pods = [p for p in by_node.get(node, []) if not is_deleting(p)]
        if where.should_run:
            if not by_node.get(node):
                plan.create_on.append(node)
                continue
            plan.delete.extend(p for p in pods if is_terminal(p)
                               and not (node in backing_off and (p.get("status") or {}).get("phase") == "Failed"))
            live = [p for p in pods if not is_terminal(p)]
            if surging:
                new = [p for p in live if is_updated(p, revision_hash)]
                old = [p for p in live if not is_updated(p, revision_hash)]
                plan.delete.extend(new[1:] + old[1:])
            else:
                plan.delete.extend(live[1:])
        elif not where.should_continue:
            plan.delete.extend(pods)
    return plan


def failed_nodes(placements: dict[str, Placement], by_node: dict[str, list[Obj]]) -> list[str]:
    """Nodes that should run the daemon pod and hold a failed one."""
    return sorted(n for n, pods in by_node.items() if placements.get(n, Placement(False, False)).should_run
                  and any((p.get("status") or {}).get("phase") == "Failed" and not is_deleting(p) for p in pods))


def rolling_update(ds: Obj, placements: dict[str, Placement], by_node: dict[str, list[Obj]],
                   revision_hash: str, now: float) -> Plan:
    """One rolling-update step (upstream's rollingUpdate): old pods to delete and, with
    maxSurge, nodes that get their new pod beside the old one."""
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    nodes = sorted(n for n, p in placements.items() if p.should_run)
    max_surge, max_unavailable = surge_and_unavailable(ds, len(nodes))
    plan = Plan()
    if max_surge == 0:
        unavailable = 0
        replace: list[Obj] = []
        candidates: list[Obj] = []
        for node in nodes:
            live = [p for p in by_node.get(node, []) if not is_deleting(p) and not is_terminal(p)]
            new = next((p for p in live if is_updated(p, revision_hash)), None)
            old = next((p for p in live if not is_updated(p, revision_hash)), None)
            if (new is None) == (old is None):
                unavailable += 1  # missing, or both: the manage step handles it
            elif new is not None:
                unavailable += not is_available(new, min_ready, now)
            elif old is not None and not is_available(old, min_ready, now):
                replace.append(old)
            elif old is not None and unavailable < max_unavailable:
                candidates.append(old)
        budget = max(0, min(max_unavailable - unavailable, len(candidates)))
        plan.delete = replace + candidates[:budget]
        return plan
    surged, allowed, candidates_n = 0, [], []
    for node in nodes:
        live = [p for p in by_node.get(node, []) if not is_deleting(p) and not is_terminal(p)]
        new = next((p for p in live if is_updated(p, revision_hash)), None)
        old = next((p for p in live if not is_updated(p, revision_hash)), None)
        if old is None:
            continue
        if new is None:
            if not is_available(old, min_ready, now):
                allowed.append(node)
            elif surged < max_surge:
                candidates_n.append(node)
        elif not is_available(new, min_ready, now):
            surged += 1
        else:
            plan.delete.append(old)
    budget = max(0, min(max_surge - surged, len(candidates_n)))
    plan.create_on = allowed + candidates_n[:budget]
    return plan


def daemon_set_status(ds: Obj, placements: dict[str, Placement], by_node: dict[str, list[Obj]],
                      revision_hash: str, now: float, collision_count: int) -> dict[str, Any]:
    """updateDaemonSetStatus: counts per node, each node's pod preferring the updated one."""
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    desired = current = misscheduled = ready = available = updated = 0
    for node in set(placements) | set(by_node):
        pods = [p for p in by_node.get(node, []) if not is_terminal(p)]
        should_run = placements.get(node, Placement(False, False)).should_run
        if should_run:
            desired += 1
            if pods:
                current += 1
                pod = next((p for p in pods if is_updated(p, revision_hash)), pods[0])
                ready += is_pod_ready(pod)
                available += is_available(pod, min_ready, now)
                updated += is_updated(pod, revision_hash)
        elif pods:
            misscheduled += 1
    status: dict[str, Any] = {
        "currentNumberScheduled": current, "numberMisscheduled": misscheduled, "desiredNumberScheduled": desired,
        "numberReady": ready, "observedGeneration": meta(ds).get("generation", 1),
        "updatedNumberScheduled": updated, "numberAvailable": available,
        "numberUnavailable": max(0, desired - available)}
    if collision_count:
        status["collisionCount"] = collision_count
    conditions = (ds.get("status") or {}).get("conditions")
    if conditions:
        status["conditions"] = conditions
    return status
