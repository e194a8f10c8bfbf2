"""PodGC: deletes the pods nobody else will, as kube-controller-manager's podgc controller:
- pods bound to a node that no longer exists: missing for `quarantine` seconds (a node that is
  registering, or a cache behind, is not missing) and confirmed with the apiserver;
- terminating pods never scheduled (no kubelet will ever confirm them);
- finished (Succeeded/Failed) pods beyond --terminated-pod-gc-threshold, oldest first.
Orphaned and unscheduled terminating pods are deleted at once (grace period 0); finished pods
normally. One sweep runs every `period` seconds and when nodes or pods change.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from kproxy.api.meta import parse_rfc3339
from kproxy.api.resources import NODES, PODS
from kproxy.api.status import ApiError
from kproxy.controllers.base import Controller, Handlers, RequeueAfter, SharedInformers
from kproxy.controllers.ownership import Obj, is_deleting, meta
from kproxy.controllers.podutil import is_terminal

log = logging.getLogger(__name__)

DEFAULT_TERMINATED_THRESHOLD = 12500  # upstream's --terminated-pod-gc-threshold
SWEEP = "sweep"


@dataclass(frozen=True)
class PodGCOptions:
    terminated_threshold: int = DEFAULT_TERMINATED_THRESHOLD
    quarantine: float = 40.0  # upstream's quarantineTime
    period: float = 20.0  # upstream's gcCheckPeriod


@dataclass
class Sweep:
    """Pods to delete, by reason."""
    terminated: list[Obj] = field(default_factory=list)  # over the threshold, oldest first
    orphaned: list[Obj] = field(default_factory=list)  # on nodes the cache does not know (to confirm)
    unscheduled_terminating: list[Obj] = field(default_factory=list)


def _created(pod: Obj) -> float:
    try:
        return parse_rfc3339(meta(pod).get("creationTimestamp") or "").timestamp()
    except (ValueError, AttributeError):
        return 0.0


def sweep(pods: list[Obj], node_names: set[str], threshold: int) -> Sweep:
    """What a sweep deletes (pure). threshold <= 0 keeps every finished pod."""
    out = Sweep()
    finished = [p for p in pods if is_terminal(p) and not is_deleting(p)]
    if threshold > 0 and len(finished) > threshold:
        finished.sort(key=lambda p: (_created(p), meta(p).get("namespace", ""), meta(p).get("name", "")))
        out.terminated = finished[:len(finished) - threshold]
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and node not in node_names:
            out.orphaned.append(pod)
        elif not node and is_deleting(pod):
            out.unscheduled_terminating.append(pod)
    return out


class PodGCController(Controller):
    name = "podgc"

    def __init__(self, client: Any, informers: SharedInformers, options: PodGCOptions | None = None,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(client, informers)
        self.options = options or PodGCOptions()
        self.clock = clock
        self.missing_since: dict[str, float] = {}  # node name -> when a sweep first missed it
        self.pods = informers.get(PODS)
        self.nodes = informers.get(NODES)
        poke = Handlers(on_add=lambda o: self.queue.add(SWEEP), on_update=lambda o, n: self._pod_updated(o, n),
                        on_delete=lambda o: None)
        self.pods.add_handler(poke)
        self.nodes.add_handler(Handlers(on_delete=lambda o: self.queue.add(SWEEP)))

    def watched(self):
        return [PODS, NODES]

    async def resync(self) -> None:
        self.queue.add(SWEEP)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if is_terminal(new) != is_terminal(old) or is_deleting(new) != is_deleting(old):
            self.queue.add(SWEEP)

    async def reconcile(self, key: str) -> None:
        opts = self.options
        plan = sweep(self.pods.list(), {meta(n).get("name", "") for n in self.nodes.list()}, opts.terminated_threshold)
        for pod in plan.terminated:
            await self._delete(pod, None)
        now, waits = self.clock(), [opts.period]
        missing = {(p.get("spec") or {}).get("nodeName", "") for p in plan.orphaned}
        self.missing_since = {n: self.missing_since.get(n, now) for n in missing}
        for node in missing:
            wait = self.missing_since[node] + opts.quarantine - now
            if wait > 0:
                waits.append(wait)
            elif await self._node_exists(node):
                del self.missing_since[node]  # the cache was behind: the node is there
        for pod in plan.orphaned:
            node = (pod.get("spec") or {}).get("nodeName", "")
            if node in self.missing_since and self.missing_since[node] + opts.quarantine <= now:
                await self._delete(pod, 0)
        for pod in plan.unscheduled_terminating:
            await self._delete(pod, 0)
        raise RequeueAfter(max(0.1, min(waits)), "periodic sweep")

    async def _node_exists(self, name: str) -> bool:
        try:
            await self.client.get(NODES, name)
            return True
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise

    async def _delete(self, pod: Obj, grace: int | None) -> None:
        md = meta(pod)
        try:
            await self.client.delete(PODS, md["name"], md["namespace"], uid=md.get("uid"), grace_period_seconds=grace)
            log.info("podgc: deleted pod %s/%s", md["namespace"], md["name"])
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
