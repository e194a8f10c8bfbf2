"""StatefulSet controller: pods with stable names `<name>-<ordinal>`, created in order (each
Running and Ready before the next, or all at once with podManagementPolicy Parallel), removed
in reverse, and replaced from the highest ordinal down to the partition on a RollingUpdate,
as kube-controller-manager's statefulset controller. The decisions are statefulset_plan.py's.

Each reconcile finds (or creates) the ControllerRevision of the current template (the update
revision; status.currentRevision stays what the pods below the partition run), claims the
StatefulSet's pods, takes one step and writes the status. Expectations make it wait for its
own writes to show in the informer, so a slow informer never creates or deletes twice.
"""
from __future__ import annotations

import asyncio

from kproxy.api.resources import STATEFUL_SETS
from kproxy.controllers.base import RequeueAfter
from kproxy.controllers.ownership import is_deleting, meta
from kproxy.controllers.podowners import PodOwnerController
from kproxy.controllers.replicaset import next_available_check
from kproxy.controllers.revisions import HASH_LABEL
from kproxy.controllers.statefulset_plan import next_step, stateful_pod, stateful_set_status

FAILURE_RETRY = 5.0  # seconds before a StatefulSet whose pod writes failed is tried again


class StatefulSetController(PodOwnerController):
    name = "statefulset"
    owner = STATEFUL_SETS
    component = "statefulset-controller"
    workers = 2

    async def reconcile(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        sts = self.owners.get(name, namespace)
        if sts is None:
            self.expectations.forget(key)
            return
        satisfied = self.expectations.satisfied(key)
        owned = await self.owned_pods(sts)
        if is_deleting(sts):
            return
        revisions = self.history.owned(sts)
        update, collisions = await self.history.current(sts, revisions)
        by_name = {meta(r)["name"]: r for r in revisions}
        by_name[meta(update)["name"]] = update
        current_name = (sts.get("status") or {}).get("currentRevision")
        current = by_name.get(current_name) or update
        failure = None
        now = self.clock()
        if satisfied:
            step = next_step(sts, owned, meta(current)["name"], meta(update)["name"], now)
            results = await asyncio.gather(
                *(self.create_pod(key, sts, stateful_pod(sts, ordinal, by_name[revision]),
                                  lambda pod: f"create Pod {meta(pod)['name']} in StatefulSet {name} successful")
                  for ordinal, revision in step.create),
                *(self.delete_pod(key, sts, pod, f"delete Pod {meta(pod)['name']} in StatefulSet {name} successful")
                  for pod in step.delete))
            failure = next((r for r in results if r), None)
        await self.write_status(sts, stateful_set_status(sts, owned, meta(current)["name"], meta(update)["name"],
                                                         now, collisions))
        used = {revision for p in owned if (revision := (meta(p).get("labels") or {}).get(HASH_LABEL))}
        keep = {meta(current)["name"], meta(update)["name"]} | used
        await self.history.prune(sts, revisions, keep)
        if failure is not None:
            raise RequeueAfter(FAILURE_RETRY, failure)
        wait = next_available_check(sts, owned, now)
        if wait is not None:
            raise RequeueAfter(wait, "pods becoming available")

