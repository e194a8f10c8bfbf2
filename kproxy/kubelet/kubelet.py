"""The kubelet's I/O loop: registers the Node, keeps its Lease and status fresh, and runs a
PodWorker for every pod bound to this node (pods watched with fieldSelector spec.nodeName).

Guarantees:
- the Node is created, or an existing one (a restarted kubelet) gets kubelet's status
  written over it; a failure is retried until it works or the kubelet stops;
- the Lease in kube-node-lease is renewed every `lease_interval` seconds (10 s, as kubelet's
  nodeLeaseRenewInterval) and the node status every `status_interval` seconds;
- containers start only after the Services have been listed (their environment variables);
- on stop every pod's processes are stopped and its namespace removed, and so are pod
  namespaces left by an earlier kubelet with the same prefix;
- a kubelet that died leaves records (records.py): its successor adopts the pods still bound
  to it as they run (same processes, same status) and stops those that are gone.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from kproxy.api.meta import now_rfc3339
from kproxy.api.resources import NODES, PODS
from kproxy.api.status import ApiError
from kproxy.client.errors import ApiConnectionError
from kproxy.client.heartbeat import NodeHeartbeat
from kproxy.client.informer import Informer
from kproxy.kubelet.node import NodeFacts, node_object, refreshed_node, status_differs
from kproxy.kubelet import records
from kproxy.kubelet.podworker import NodeContext, PodWorker, meta
from kproxy.kubelet.volumemanager import remove_leftover_mounts

log = logging.getLogger(__name__)

RETRY = 2.0


class Kubelet:
    def __init__(self, ctx: NodeContext, facts: NodeFacts, *, lease_interval: float = 10.0,
                 status_interval: float = 60.0, lease_duration: int = 40):
        self.ctx = ctx
        self.facts = facts
        self.lease_interval = lease_interval
        self.lease_duration = lease_duration
        self.status_interval = status_interval
        self.workers: dict[str, PodWorker] = {}  # pod uid -> worker
        self._tasks: dict[str, asyncio.Task] = {}
        self.adoptable: dict[str, records.PodRecord] = {}  # pods an earlier kubelet left running, by uid
        self.pods = Informer(ctx.client, PODS, field_selector=f"spec.nodeName={facts.name}", handler=self)

    # -- the node ------------------------------------------------------------------------

    async def register(self) -> dict:
        """Creates the Node, or writes kubelet's status over the existing one."""
        try:
            return await self.ctx.client.create(NODES, node_object(self.facts, now_rfc3339()))
        except ApiError as exc:
            if exc.code != 409:
                raise
        return await self.update_status()

    async def update_status(self, node: dict | None = None) -> dict:
        node = node or await self.ctx.client.get(NODES, self.facts.name)
        new = refreshed_node(node, self.facts, now_rfc3339())
        if new.get("spec") != node.get("spec") or new.get("metadata") != node.get("metadata"):
            node = await self.ctx.client.update(NODES, new)
            new = refreshed_node(node, self.facts, now_rfc3339())
        return await self.ctx.client.update_status(NODES, new)

    async def _node_loop(self, stop: asyncio.Event) -> None:
        """Registers the Node, then looks at it every lease interval (kubelet's
        nodeStatusUpdateFrequency) and writes its status when it differs from kubelet's view
        (the node lifecycle controller set Ready Unknown) or `status_interval` has passed."""
        registered = False
        last_report = 0.0
        while not stop.is_set():
            try:
                if not registered:
                    await self.register()
                    registered, last_report = True, time.monotonic()
                    log.info("node %s registered", self.facts.name)
                else:
                    node = await self.ctx.client.get(NODES, self.facts.name)
                    if status_differs(node, self.facts) or time.monotonic() - last_report >= self.status_interval:
                        await self.update_status(node)
                        last_report = time.monotonic()
                delay = self.lease_interval
            except ApiError as exc:
                registered = registered and exc.code != 404  # deleted: register again
                log.warning("node %s status not written: %s", self.facts.name, exc)
                delay = RETRY
            except ApiConnectionError as exc:
                log.warning("node %s status not written: %s", self.facts.name, exc)
                delay = RETRY
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except asyncio.TimeoutError:
                pass

    # -- pods (the informer's handler) ---------------------------------------------------

    def pod(self, namespace: str, name: str) -> PodWorker | None:
        """The worker running pod namespace/name here (the kubelet server's lookup)."""
        found = [w for w in self.workers.values() if w.namespace == namespace and w.name == name]
        found.sort(key=lambda w: w.deleting)  # a terminating pod's successor of the same name first
        return found[0] if found else None

    def on_add(self, pod: dict) -> None:
        uid = str(meta(pod).get("uid"))
        if uid in self.workers:
            self.workers[uid].update(pod)
            return
        worker = PodWorker(self.ctx, pod, self.adoptable.pop(uid, None))
        self.workers[uid] = worker
        self._tasks[uid] = asyncio.create_task(self._run_worker(uid, worker), name=f"pod-{worker.key}")

    def on_update(self, old: dict, new: dict) -> None:
        worker = self.workers.get(str(meta(new).get("uid")))
        if worker is None:
            self.on_add(new)
        else:
            worker.update(new)

    def on_delete(self, pod: dict) -> None:
        worker = self.workers.get(str(meta(pod).get("uid")))
        if worker is not None:
            worker.deleted()

    async def _run_worker(self, uid: str, worker: PodWorker) -> None:
        try:
            await worker.run()
        except Exception:
            log.exception("pod %s: worker failed", worker.key)
        finally:
            self.workers.pop(uid, None)
            self._tasks.pop(uid, None)

    # -- the whole ------------------------------------------------------------------------

    def _find_adoptable(self) -> dict[str, records.PodRecord]:
        """The pods an earlier kubelet left (it died: a clean exit leaves none) whose namespace
        still exists; their namespaces are taken over so nothing below removes them."""
        found = {}
        for uid, record in records.load_all(self.ctx.root_dir).items():
            if record.own_network and (record.slot is None or self.ctx.networks.adopt(
                    uid, record.namespace, record.name, self.facts.name, record.slot) is None):
                continue  # its namespace is gone: the pod starts afresh
            found[uid] = record
        return found

    async def _discard_unclaimed(self, wait_for_pods: bool = True) -> None:
        """Once the pods are listed: stops what an earlier kubelet left of pods that are gone
        (at exit, of every pod not claimed yet)."""
        if wait_for_pods:
            await self.pods.synced.wait()
        for uid in list(self.adoptable):
            record = self.adoptable.pop(uid, None)
            if record is None:
                continue  # claimed meanwhile, or discarded by the other caller
            log.info("pod %s/%s: gone while no kubelet ran, stopping what is left", record.namespace, record.name)
            leftover = {"metadata": {"uid": uid, "name": record.name, "namespace": record.namespace},
                        "spec": {"containers": [{"name": name} for name in record.containers]}}
            worker = PodWorker(self.ctx, leftover, record)
            worker.shutdown()
            await worker.run()

    async def run(self, stop: asyncio.Event) -> None:
        self.adoptable = await asyncio.to_thread(self._find_adoptable)
        gone = await asyncio.to_thread(self.ctx.networks.remove_leftovers)
        if gone:
            log.info("removed pod namespaces left behind: %s", ", ".join(gone))
        if self.ctx.cri is not None:  # an earlier kubelet's sandboxes (CRI pods are not adopted)
            await self.ctx.cri.remove_leftovers()
        keep = frozenset(self.adoptable)
        unmounted = await asyncio.to_thread(remove_leftover_mounts, self.ctx.root_dir, keep)
        if unmounted:
            log.info("unmounted pod volumes left behind: %s", ", ".join(unmounted))
        if self.ctx.cgroups is not None:
            await asyncio.to_thread(self.ctx.cgroups.remove_pods, keep)
        else:
            log.warning("container resource limits are not enforced: %s", self.ctx.cgroups_note)
        heartbeat = NodeHeartbeat(self.ctx.client, [self.facts.name], interval=self.lease_interval,
                                  lease_duration=self.lease_duration, post_ready=False)
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(self._node_loop(stop), name="node-status"),
            asyncio.create_task(heartbeat.run(stop), name="node-lease"),
            asyncio.create_task(self.ctx.services.run(), name="informer-services"),
        ]
        try:
            await self._wait_or_stop(self.ctx.services.synced.wait(), stop)
            if not stop.is_set():
                tasks.append(asyncio.create_task(self.pods.run(), name="informer-pods"))
                tasks.append(asyncio.create_task(self._discard_unclaimed(), name="discard-unclaimed"))
                await stop.wait()
        finally:
            self.pods.stop()
            self.ctx.services.stop()
            for worker in list(self.workers.values()):
                worker.shutdown()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            await self._discard_unclaimed(wait_for_pods=False)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(self.ctx.networks.remove_leftovers)
            if self.ctx.cri is not None:
                await self.ctx.cri.remove_leftovers()
            await asyncio.to_thread(remove_leftover_mounts, self.ctx.root_dir)
            if self.ctx.cgroups is not None:
                await asyncio.to_thread(self.ctx.cgroups.remove_all)
            if self.ctx.events is not None:
                await self.ctx.events.drain()

    @staticmethod
    async def _wait_or_stop(aw: Any, stop: asyncio.Event) -> None:
        waiter = asyncio.ensure_future(aw)
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for t in (waiter, stopper):
            t.cancel()
