"""DaemonSet controller: one pod of each DaemonSet's template on every node that should run it,
as kube-controller-manager's daemonset controller. The decisions are daemonset_plan.py's.

Each reconcile finds (or creates) the ControllerRevision of the current template, claims the
DaemonSet's pods, then creates pods on eligible nodes that lack one and deletes pods where
none may stay, failed ones and duplicates; with the RollingUpdate strategy it then takes one
rolling-update step. Pods are created pinned to their node by node affinity and bound by the
scheduler. Expectations make it wait for its own writes to show in the informer. Nodes
joining, leaving or changing requeue every DaemonSet.
"""
from __future__ import annotations

import asyncio
from typing import Any

from kproxy.api.resources import DAEMON_SETS, NODES
from kproxy.controllers.base import Handlers, RequeueAfter
from kproxy.controllers.daemonset_plan import (
    Plan, daemon_pod, daemon_set_status, failed_nodes, manage, placement, pods_by_node, rolling_update,
    surge_and_unavailable,
)
from kproxy.controllers.ownership import Obj, is_deleting, meta
from kproxy.controllers.podowners import WARNING, PodOwnerController, key_of
from kproxy.controllers.replicaset import next_available_check
from kproxy.controllers.revisions import HASH_LABEL

FAILURE_RETRY = 5.0  # seconds before a DaemonSet whose pod writes failed is tried again
# a node's failed daemon pods are replaced after 1 s, then 2, 4, ... up to this (upstream: 15 min)
MAX_FAILED_POD_BACKOFF = 300.0


def _node_changed(old: Obj, new: Obj) -> bool:
    """A change that can move a node in or out of a DaemonSet: labels, taints, cordon, Ready."""
    def view(node: Obj) -> tuple:
        spec = node.get("spec") or {}
        ready = [c.get("status") for c in (node.get("status") or {}).get("conditions") or []
                 if c.get("type") == "Ready"]
        return meta(node).get("labels"), spec.get("taints"), spec.get("unschedulable"), ready
    return view(old) != view(new)


class DaemonSetController(PodOwnerController):
    name = "daemonset"
    owner = DAEMON_SETS
    component = "daemonset-controller"
    workers = 2

    def __init__(self, client: Any, informers: Any, clock: Any = None):
        super().__init__(client, informers, clock)
        self.failed_backoff: dict[str, tuple[float, float]] = {}  # "<ds uid>/<node>" -> (retry at, delay)
        self.nodes = informers.get(NODES)
        self.nodes.add_handler(Handlers(on_add=self._nodes_changed, on_delete=self._nodes_changed,
                                        on_update=self._node_updated))

    def watched(self):
        return [*super().watched(), NODES]

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if _node_changed(old, new):
            self._nodes_changed(new)

    def _nodes_changed(self, node: Obj) -> None:
        for ds in self.owners.list():
            self._enqueue(ds)

    async def reconcile(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        ds = self.owners.get(name, namespace)
        if ds is None:
            self.expectations.forget(key)
            return
        satisfied = self.expectations.satisfied(key)
        owned = await self.owned_pods(ds, eligible=lambda p: True)
        if is_deleting(ds):
            return
        revisions = self.history.owned(ds)
        current, collisions = await self.history.current(ds, revisions)
        revision_hash = (meta(current).get("labels") or {}).get(HASH_LABEL, "")
        placements = {meta(n)["name"]: placement(ds, n) for n in self.nodes.list()}
        by_node = pods_by_node(owned)
        now = self.clock()
        failure = None
        backing_off, backoff_wait = self._failed_pod_backoff(ds, failed_nodes(placements, by_node), by_node, now)
        if satisfied:
            plan = self._plan(ds, placements, by_node, revision_hash, now, backing_off)
            failure = await self._act(key, ds, plan, revision_hash)
        await self.write_status(ds, daemon_set_status(ds, placements, by_node, revision_hash, now, collisions))
        live_hashes = {(meta(p).get("labels") or {}).get(HASH_LABEL) for p in owned}
        keep = {meta(current)["name"]} | {meta(r)["name"] for r in revisions
                                          if (meta(r).get("labels") or {}).get(HASH_LABEL) in live_hashes}
        await self.history.prune(ds, [r for r in revisions if meta(r)["name"] != meta(current)["name"]], keep)
        if failure is not None:
            raise RequeueAfter(FAILURE_RETRY, failure)
        waits = [w for w in (next_available_check(ds, owned, now), backoff_wait) if w is not None]
        if waits:
            raise RequeueAfter(min(waits), "pods becoming available or failed pods backing off")

    def _failed_pod_backoff(self, ds: Obj, nodes: list[str], by_node: dict,
                            now: float) -> tuple[frozenset[str], float | None]:
        """The nodes whose failed daemon pods must wait before they are replaced again (a pod
        the kubelet keeps refusing must not make the controller spin), and the shortest wait;
        the others get their next delay and a FailedDaemonPod Event."""
        waiting, waits = set(), []
        for node in nodes:
            key = f"{meta(ds).get('uid')}/{node}"
            retry_at, delay = self.failed_backoff.get(key, (0.0, 0.0))
            if now - retry_at > 2 * MAX_FAILED_POD_BACKOFF:
                delay = 0.0  # quiet for long: start over
            if now < retry_at:
                waiting.add(node)
                waits.append(retry_at - now)
                continue
            delay = min(max(2 * delay, 1.0), MAX_FAILED_POD_BACKOFF)
            self.failed_backoff[key] = (now + delay, delay)
            for pod in by_node.get(node, []):
                if (pod.get("status") or {}).get("phase") == "Failed" and not is_deleting(pod):
                    self.record(ds, WARNING, "FailedDaemonPod", f"Found failed daemon pod {key_of(pod)} on node "
                                                                f"{node}, will try to kill it")
        return frozenset(waiting), min(waits) if waits else None

    @staticmethod
    def _plan(ds: Obj, placements: dict, by_node: dict, revision_hash: str, now: float,
              backing_off: frozenset[str] = frozenset()) -> Plan:
        strategy = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type")
        rolling = strategy == "RollingUpdate"
        desired = sum(1 for p in placements.values() if p.should_run)
        surging = rolling and surge_and_unavailable(ds, desired)[0] > 0
        plan = manage(placements, by_node, revision_hash, surging, backing_off)
        if rolling:
            step = rolling_update(ds, placements, by_node, revision_hash, now)
            plan.create_on += [n for n in step.create_on if n not in plan.create_on]
            seen = {meta(p).get("uid") for p in plan.delete}
            plan.delete += [p for p in step.delete if meta(p).get("uid") not in seen]
        return plan

    async def _act(self, key: str, ds: Obj, plan: Plan, revision_hash: str) -> str | None:
        """Carries out the plan; returns the first failure (an Event records each)."""
        results = await asyncio.gather(
            *(self.create_pod(key, ds, daemon_pod(ds, node, revision_hash),
                              lambda pod: f"Created pod: {meta(pod)['name']}") for node in plan.create_on),
            *(self.delete_pod(key, ds, pod, f"Deleted pod: {meta(pod)['name']}") for pod in plan.delete))
        return next((r for r in results if r), None)
