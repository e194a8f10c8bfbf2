"""The scheduler's I/O: informers on pods and nodes, a queue of pods waiting for a node, the
binding, and what kube-scheduler reports (Scheduled / FailedScheduling Events and the pod's
PodScheduled condition).

Guarantees:
- a pod is bound at most once: the binding is refused (409) for a pod that has a node, and
  until the informer shows the binding, the pod counts on its node as an "assumed" pod, so
  the next decisions see its resources taken;
- an unschedulable pod is tried again when something that could make it fit changes (a node
  added, or its labels, taints, allocatable, readiness or cordon changed; a pod deleted or
  finished), and at the latest after `retry_unschedulable` seconds;
- a pod this scheduler cannot decide on (an error) is retried with backoff; the rest go on.
"""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Mapping

from kproxy.api.meta import now_rfc3339
from kproxy.api.resources import NODES, PODS
from kproxy.api.status import ApiError
from kproxy.client.events import POD_REF, EventRecorder
from kproxy.client.informer import object_key
from kproxy.controllers.base import Controller, Handlers, RequeueAfter, SharedInformers
from kproxy.controllers.leaderelection import LeaderElector
from kproxy.scheduler.framework import Scheduled, schedule
from kproxy.scheduler.cache import ClusterCache
from kproxy.scheduler.snapshot import is_terminal

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER_NAME = "default-scheduler"


def _node_fingerprint(node: Mapping[str, Any]) -> tuple:
    """What of a Node can change a scheduling decision (heartbeats alone do not)."""
    meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
    ready = [c.get("status") for c in status.get("conditions") or () if c.get("type") == "Ready"]
    return (repr(sorted((meta.get("labels") or {}).items())), repr(spec.get("taints")), spec.get("unschedulable"),
            repr(status.get("allocatable") or status.get("capacity")), tuple(ready))


class Scheduler(Controller):
    name = "scheduler"

    def __init__(self, client: Any, informers: SharedInformers, *, scheduler_name: str = DEFAULT_SCHEDULER_NAME,
                 retry_unschedulable: float = 60.0, rng: random.Random | None = None):
        super().__init__(client, informers)
        self.scheduler_name = scheduler_name
        self.retry_unschedulable = retry_unschedulable
        self.rng = rng or random.Random()
        self.events = EventRecorder(client, DEFAULT_SCHEDULER_NAME if scheduler_name == DEFAULT_SCHEDULER_NAME
                                    else scheduler_name)
        self.pods = informers.get(PODS)
        self.nodes = informers.get(NODES)
        self.cache = ClusterCache()
        self.unschedulable: set[str] = set()
        self.pods.add_handler(Handlers(on_add=self._pod_added, on_update=self._pod_updated,
                                       on_delete=self._pod_deleted))
        self.nodes.add_handler(Handlers(on_add=self._node_added, on_update=self._node_updated,
                                        on_delete=self._node_deleted))

    def watched(self) -> list:
        return [PODS, NODES]

    # -- what is ours to schedule ------------------------------------------------------------

    def wants(self, pod: Mapping[str, Any]) -> bool:
        spec = pod.get("spec") or {}
        ours = (spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME) == self.scheduler_name
        return (not spec.get("nodeName") and ours
                and not (pod.get("metadata") or {}).get("deletionTimestamp") and not is_terminal(pod))

    async def resync(self) -> None:
        for pod in self.pods.list():
            if self.wants(pod):
                self.queue.add(object_key(pod))

    # -- informer handlers: only enqueue ---------------------------------------------------

    def _pod_added(self, pod: dict) -> None:
        self.cache.set_pod(pod)
        if self.wants(pod):
            self.queue.add(object_key(pod))

    def _pod_updated(self, old: dict, new: dict) -> None:
        self._pod_added(new)
        if is_terminal(new) and not is_terminal(old):
            self._cluster_changed()  # its resources are free again

    def _pod_deleted(self, pod: dict) -> None:
        self.cache.remove_pod(pod)
        self.unschedulable.discard(object_key(pod))
        if (pod.get("spec") or {}).get("nodeName"):
            self._cluster_changed()

    def _node_added(self, node: dict) -> None:
        self.cache.set_node(node)
        self._cluster_changed()

    def _node_updated(self, old: dict, new: dict) -> None:
        self.cache.set_node(new)
        if _node_fingerprint(old) != _node_fingerprint(new):
            self._cluster_changed()

    def _node_deleted(self, node: dict) -> None:
        self.cache.remove_node((node.get("metadata") or {}).get("name", ""))

    def _cluster_changed(self) -> None:
        for key in list(self.unschedulable):
            self.queue.add(key)

    # -- one decision ------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        ns, _, name = key.partition("/")
        pod = self.pods.get(name, ns)
        if pod is None or not self.wants(pod) or self.cache.is_assumed(key):
            self.unschedulable.discard(key)
            return
        result = schedule(pod, self.cache.snapshot(), self.rng)
        if isinstance(result, Scheduled):
            await self._bind(pod, key, result.node)
            return
        self.unschedulable.add(key)
        log.info("%s: %s", key, result.message)
        self.events.record(POD_REF, ns, name, "Warning", "FailedScheduling", result.message,
                           uid=(pod.get("metadata") or {}).get("uid"))
        await self._mark_unschedulable(pod, result.message)
        raise RequeueAfter(self.retry_unschedulable, "unschedulable")

    async def _bind(self, pod: dict, key: str, node: str) -> None:
        meta = pod["metadata"]
        ns, name = meta.get("namespace") or "default", meta["name"]
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": ns, "uid": meta.get("uid")},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            await self.client.request("POST", PODS.object_path(name, ns) + "/binding", body=body)
        except ApiError as exc:
            if exc.code in (404, 409):  # gone, or bound by someone else meanwhile: nothing to do
                log.info("%s: not bound to %s: %s", key, node, exc)
                self.unschedulable.discard(key)
                return
            raise
        self.unschedulable.discard(key)
        self.cache.assume(pod, node)
        self.events.record(POD_REF, ns, name, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}",
                           uid=meta.get("uid"))

    async def _mark_unschedulable(self, pod: dict, message: str) -> None:
        """PodScheduled=False with reason Unschedulable, written only when it changes."""
        for c in (pod.get("status") or {}).get("conditions") or ():
            if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("message") == message:
                return
        condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                     "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
        meta = pod["metadata"]
        try:
            # strategic: conditions merge by type, so a condition another writer set meanwhile
            # (from a cache newer than ours) is kept, not replaced by our copy of the list
            await self.client.patch(PODS, meta["name"], {"status": {"conditions": [condition]}},
                                    namespace=meta.get("namespace"), patch_type="strategic", subresource="status")
        except ApiError as exc:  # the Event already tells; the condition is best effort
            log.info("cannot set PodScheduled=False on %s/%s: %s", meta.get("namespace"), meta["name"], exc)


async def run_scheduler(client: Any, stop: asyncio.Event, *, leader_elect: bool = True, lease_duration: float = 15.0,
                        identity: str | None = None, retry_unschedulable: float = 60.0) -> None:
    """Schedules pods through `client` until `stop` is set; with `leader_elect` only while
    holding the Lease kube-system/kube-scheduler (several schedulers never bind at once)."""
    async def lead(lost: asyncio.Event) -> None:
        informers = SharedInformers(client)
        scheduler = Scheduler(client, informers, retry_unschedulable=retry_unschedulable)
        informers.start()
        try:
            await scheduler.run(lost)
        finally:
            await scheduler.events.drain()
            await informers.stop()

    if not leader_elect:
        await lead(stop)
        return
    elector = LeaderElector(client, name="kube-scheduler", identity=identity, lease_duration=lease_duration,
                            renew_deadline=lease_duration * 2 / 3, retry_period=lease_duration / 7.5)
    await elector.run(lead, stop)
