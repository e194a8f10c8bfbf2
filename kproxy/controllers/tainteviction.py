"""Taint eviction manager: pods on a node with NoExecute taints are deleted, as
kube-controller-manager's taint-eviction-controller: at once when a NoExecute taint is not
tolerated, else when the shortest tolerationSeconds among the tolerations that match runs out
(counted from the taint's timeAdded); a toleration without tolerationSeconds keeps the pod.

Guarantees: checked every `period` seconds from the informer caches; a pod is deleted once
(graceful deletion, uid precondition so a new pod of the same name is untouched) with a
TaintManagerEviction Event; a taint removed before the deadline cancels the eviction.
"""
from __future__ import annotations

import asyncio
import calendar
import logging
import time
from typing import Any, Mapping

from kproxy.api.resources import NODES, PODS
from kproxy.api.status import ApiError
from kproxy.client.errors import ApiConnectionError
from kproxy.client.events import POD_REF, EventRecorder
from kproxy.controllers.base import SharedInformers
from kproxy.controllers.podutil import meta
from kproxy.scheduler.affinity import tolerates

log = logging.getLogger(__name__)


def _seconds(stamp: Any, default: float) -> float:
    try:
        return float(calendar.timegm(time.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return default


def eviction_time(pod: Mapping[str, Any], taints: list[Mapping[str, Any]], now: float) -> float | None:
    """When the pod must go (wall-clock seconds; `now` or earlier: at once), None: never (pure)."""
    no_execute = [t for t in taints if t.get("effect") == "NoExecute"]
    if not no_execute:
        return None
    tolerations = [t for t in (pod.get("spec") or {}).get("tolerations") or () if isinstance(t, dict)]
    deadline: float | None = None
    for taint in no_execute:
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return now
        limits = [float(t["tolerationSeconds"]) for t in matching if t.get("tolerationSeconds") is not None]
        if not limits:
            continue  # tolerated for ever
        due = _seconds(taint.get("timeAdded"), now) + max(0.0, min(limits))
        deadline = due if deadline is None else min(deadline, due)
    return deadline


class TaintEvictionController:
    name = "taint-eviction"

    def __init__(self, client: Any, informers: SharedInformers, *, period: float = 1.0):
        self.client = client
        self.informers = informers
        self.nodes = informers.get(NODES)
        self.pods = informers.get(PODS)
        self.period = period
        self.events = EventRecorder(client, "taint-eviction-controller")
        self._evicted: set[str] = set()  # uids deleted by us (the cache may still show them)

    async def run(self, stop: asyncio.Event) -> None:
        await self.informers.wait_synced([NODES, PODS])
        try:
            while not stop.is_set():
                try:
                    await self.evict_once(time.time())
                except (ApiError, ApiConnectionError) as exc:
                    log.warning("taint eviction pass failed: %s (next pass retries)", exc)
                try:
                    await asyncio.wait_for(stop.wait(), self.period)
                except asyncio.TimeoutError:
                    pass
        finally:
            await self.events.drain()

    async def evict_once(self, now: float) -> None:
        taints = {meta(n)["name"]: list((n.get("spec") or {}).get("taints") or []) for n in self.nodes.cache.values()}
        live = set()
        for pod in list(self.pods.cache.values()):
            m = meta(pod)
            live.add(str(m.get("uid")))
            node = (pod.get("spec") or {}).get("nodeName")
            if not node or m.get("deletionTimestamp") or str(m.get("uid")) in self._evicted:
                continue
            due = eviction_time(pod, taints.get(node) or [], now)
            if due is None or due > now:
                continue
            await self._evict(pod, node)
        self._evicted &= live

    async def _evict(self, pod: dict, node: str) -> None:
        m = meta(pod)
        try:
            await self.client.delete(PODS, m["name"], m["namespace"], uid=m.get("uid"))
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
            return
        self._evicted.add(str(m.get("uid")))
        log.info("taint eviction: deleted pod %s/%s on node %s", m["namespace"], m["name"], node)
        self.events.record(POD_REF, m["namespace"], m["name"], "Normal", "TaintManagerEviction",
                           f"Marking for deletion Pod {m['namespace']}/{m['name']}", uid=m.get("uid"))
