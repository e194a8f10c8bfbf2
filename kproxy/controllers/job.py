"""Job controller: runs each Job's pods until enough succeed or too many fail, as
kube-controller-manager's job controller (and its ttl-after-finished controller: a finished
Job with ttlSecondsAfterFinished is deleted with its pods when the time is up).

The decisions are pure (jobplan.py); this module does the I/O in a fixed order per Job:
record finished pods in uncountedTerminatedPods, drop their tracking finalizers, count them,
then create or delete pods as planned and write the status. Expectations (expectations.py)
keep a slow pod informer from doubling creates, and our Job status writes and finalizer
removals (WrittenVersions) are waited for: a Job cache older than our last write would not
show the pods we have just counted (their finalizer gone), and they would be run again; a pod
cache older than our finalizer removal would have them recorded and counted twice. A Job
whose pods the apiserver refuses gets a Warning Event and is retried; the other Jobs go on.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from kproxy.api.resources import JOBS, PODS
from kproxy.api.status import ApiError
from kproxy.client.events import EventRecorder
from kproxy.controllers.base import Controller, Handlers, RequeueAfter, SharedInformers
from kproxy.controllers.expectations import Expectations, WrittenVersions
from kproxy.controllers.jobplan import (
    TRACKING_FINALIZER, count_uncounted, finalizer_done, has_finalizer, is_finished, plan, pod_from_template,
    record_uncounted, ttl_expiry, without_finalizer,
)
from kproxy.controllers.ownership import Obj, claim, controller_ref, meta

log = logging.getLogger(__name__)

COMPONENT = "job-controller"
ORPHAN_POD = "pod:"  # queue keys of pods whose Job is gone but which still hold our finalizer


def key_of(obj: Obj) -> str:
    return f"{meta(obj).get('namespace')}/{meta(obj).get('name')}"


class JobController(Controller):
    name = "job"
    workers = 2

    def __init__(self, client: Any, informers: SharedInformers, clock: Callable[[], float] | None = None):
        super().__init__(client, informers)
        self.clock = clock or time.time
        self.jobs = informers.get(JOBS)
        self.pods = informers.get(PODS)
        self.expectations = Expectations()
        self.written = WrittenVersions()  # Job statuses and pods we wrote, until the caches show them
        self.events = EventRecorder(client, COMPONENT)
        self.jobs.add_handler(Handlers(on_add=self._enqueue, on_update=lambda o, n: self._enqueue(n),
                                       on_delete=self._job_deleted))
        self.pods.add_handler(Handlers(on_add=self._pod_added, on_update=lambda o, n: self._pod_changed(n),
                                       on_delete=self._pod_deleted))

    def watched(self):
        return [JOBS, PODS]

    async def resync(self) -> None:
        for job in self.jobs.list():
            self._enqueue(job)
        for pod in self.pods.list():
            self._pod_changed(pod)

    # handlers: bookkeeping and enqueue only
    def _enqueue(self, job: Obj) -> None:
        self.queue.add(key_of(job))

    def _job_deleted(self, job: Obj) -> None:
        self.expectations.forget(key_of(job))
        self.written.forget(key_of(job))

    def _owner_key(self, pod: Obj) -> str | None:
        """The key of the Job controlling `pod` when that Job is in the cache."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != JOBS.kind or ref.get("apiVersion") != JOBS.group_version:
            return None
        job = self.jobs.get(ref.get("name", ""), meta(pod).get("namespace"))
        if job is None or meta(job).get("uid") != ref.get("uid"):
            return None
        return key_of(job)

    def _pod_added(self, pod: Obj) -> None:
        owner = self._owner_key(pod)
        if owner is not None:
            self.expectations.creation_observed(owner)
        self._pod_changed(pod)

    def _pod_changed(self, pod: Obj) -> None:
        owner = self._owner_key(pod)
        if owner is not None:
            self.queue.add(owner)
        elif finalizer_done(pod) or (has_finalizer(pod) and controller_ref(pod) is not None):
            self.queue.add(ORPHAN_POD + key_of(pod))

    def _pod_deleted(self, pod: Obj) -> None:
        owner = self._owner_key(pod)
        if owner is not None:
            self.expectations.deletion_observed(owner, key_of(pod))
            self.queue.add(owner)

    def _record(self, job: Obj, event_type: str, reason: str, message: str) -> None:
        md = meta(job)
        self.events.record((JOBS.group_version, JOBS.kind), md.get("namespace") or "default", md.get("name", ""),
                           event_type, reason, message, uid=md.get("uid"))

    # reconcile
    async def reconcile(self, key: str) -> None:
        if key.startswith(ORPHAN_POD):
            await self._release_orphan(key[len(ORPHAN_POD):])
            return
        namespace, name = key.split("/", 1)
        job = self.jobs.get(name, namespace)
        if job is None:
            self.expectations.forget(key)
            self.written.forget(key)
            return
        # whether the cache holds our creates and deletes is decided before listing pods: an
        # event arriving while we write below must not make a list taken earlier look complete
        satisfied = self.expectations.satisfied(key)
        candidates = self.pods.list(namespace)
        if self.written.stale(key, {key: job, **{key_of(p): p for p in candidates}}, gone_is_fresh=True):
            return  # a cache lacks our last write (Job status or finalizer): its event requeues us
        claimed = claim(job, candidates)
        pods = [p for p in claimed.owned if p not in claimed.adopt]  # orphans are not adopted (yet)
        job, pods = await self._account(key, job, pods)
        if is_finished(job) and await self._expire(job):
            return
        if not satisfied:
            return  # our own creates/deletes are not in the cache yet: their events requeue us
        step = plan(job, pods, self.clock())
        failure = await self._act(key, job, step)
        if step.status != (job.get("status") or {}):
            await self._write_status(job, step.status)
        for event in step.events:
            self._record(job, *event)
        if failure is not None:
            raise failure
        expiry = ttl_expiry({**job, "status": step.status})
        waits = [w for w in (step.requeue, None if expiry is None else expiry - self.clock()) if w is not None]
        if waits:
            raise RequeueAfter(max(0.1, min(waits)), "deadline or ttl")

    async def _account(self, key: str, job: Obj, pods: list[Obj]) -> tuple[Obj, list[Obj]]:
        """Counts finished pods through the tracking finalizer (see jobplan); the Job as
        written and its pods as they are now."""
        recorded = record_uncounted(job, pods)
        if recorded is not None:
            job = await self._write_status(job, recorded)
        now = []
        for pod in pods:
            if finalizer_done(pod):
                pod = await self._drop_finalizer(pod, key)
            now.append(pod)
        counted = count_uncounted(job, now)
        if counted is not None:
            job = await self._write_status(job, counted)
        return job, now

    async def _drop_finalizer(self, pod: Obj, owner: str | None = None) -> Obj:
        """The pod as it is now: without our finalizer once removed (or gone: counted too, its
        completion index kept), unchanged when the patch conflicted (it still holds the
        finalizer, so it must not be counted yet)."""
        left = [f for f in meta(pod).get("finalizers") or [] if f != TRACKING_FINALIZER]
        patch = {"metadata": {"finalizers": left or None, "resourceVersion": meta(pod).get("resourceVersion")}}
        try:
            patched = await self.client.patch(PODS, meta(pod)["name"], patch, meta(pod)["namespace"], "merge")
        except ApiError as exc:
            if exc.code == 404:
                return without_finalizer(pod)
            if exc.code == 409:
                return pod  # the pod changed; its update event brings us back
            raise
        if owner is not None:
            self.written.wrote(owner, key_of(pod), meta(patched).get("resourceVersion"))
        return without_finalizer(pod)

    async def _release_orphan(self, pod_key: str) -> None:
        """A pod whose Job is gone (or that no Job controls any more) gives up our finalizer."""
        namespace, name = pod_key.split("/", 1)
        pod = self.pods.get(name, namespace)
        if pod is None or not has_finalizer(pod) or self._owner_key(pod) is not None:
            return
        await self._drop_finalizer(pod)

    async def _expire(self, job: Obj) -> bool:
        """Deletes a finished Job whose ttlSecondsAfterFinished is up; True when it did."""
        expiry = ttl_expiry(job)
        if expiry is None or expiry > self.clock():
            return False
        try:
            await self.client.delete(JOBS, meta(job)["name"], meta(job)["namespace"], uid=meta(job).get("uid"),
                                     propagation_policy="Background")
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
        return True

    async def _act(self, key: str, job: Obj, step: Any) -> ApiError | None:
        """Deletes and creates as planned; the first refusal (creates stop at it)."""
        failure: ApiError | None = None
        if step.delete:
            self.expectations.expect_deletions(key, [key_of(p) for p in step.delete])
        for pod in step.delete:
            try:
                await self.client.delete(PODS, meta(pod)["name"], meta(pod)["namespace"], uid=meta(pod).get("uid"))
                self._record(job, "Normal", "SuccessfulDelete", f"Deleted pod: {meta(pod)['name']}")
            except ApiError as exc:
                self.expectations.deletion_observed(key, key_of(pod))
                if exc.code not in (404, 409):
                    failure = failure or exc
        indexes: list[int | None] = list(step.create_indexes) or [None] * step.create
        if not indexes:
            return failure
        self.expectations.expect_creations(key, len(indexes))
        results = await asyncio.gather(*(self.client.create(PODS, pod_from_template(job, i), meta(job)["namespace"])
                                         for i in indexes), return_exceptions=True)
        for result in results:
            if isinstance(result, ApiError):
                self.expectations.creation_observed(key)
                self._record(job, "Warning", "FailedCreate", f"Error creating: {result}")
                failure = failure or result
            elif isinstance(result, BaseException):
                self.expectations.creation_observed(key)
                raise result
            else:
                self._record(job, "Normal", "SuccessfulCreate", f"Created pod: {meta(result)['name']}")
        return failure

    async def _write_status(self, job: Obj, status: dict[str, Any]) -> Obj:
        try:
            written: Obj = await self.client.update_status(JOBS, {**job, "status": status})
        except ApiError as exc:
            if exc.code == 404:
                return job
            raise  # 409: the cache was stale; the retry reads the newer one
        self.written.wrote(key_of(job), key_of(job), meta(written).get("resourceVersion"))
        return written
