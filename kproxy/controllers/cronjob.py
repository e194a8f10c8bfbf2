"""CronJob controller: creates a Job at each scheduled time of each CronJob, as
kube-controller-manager's cronjob controller (v2): time zones, Allow/Forbid/Replace,
startingDeadlineSeconds, history limits, suspend, status active/lastScheduleTime/
lastSuccessfulTime. The decisions are pure (cronplan.py); the clock is injected, so tests
drive the schedule. A CronJob whose schedule or time zone cannot be used gets a Warning
Event and waits for a fix; the others go on.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from kproxy.api.resources import CRON_JOBS, JOBS
from kproxy.api.status import ApiError
from kproxy.client.events import EventRecorder
from kproxy.controllers.base import Controller, Handlers, RequeueAfter, SharedInformers
from kproxy.controllers.cronplan import CronPlan, ScheduleError, job_for, job_ref, plan
from kproxy.controllers.ownership import Obj, controller_ref, meta

log = logging.getLogger(__name__)

COMPONENT = "cronjob-controller"


def key_of(obj: Obj) -> str:
    return f"{meta(obj).get('namespace')}/{meta(obj).get('name')}"


class CronJobController(Controller):
    name = "cronjob"

    def __init__(self, client: Any, informers: SharedInformers, clock: Callable[[], float] | None = None):
        super().__init__(client, informers)
        self.clock = clock or time.time
        self.cron_jobs = informers.get(CRON_JOBS)
        self.jobs = informers.get(JOBS)
        self.events = EventRecorder(client, COMPONENT)
        self.cron_jobs.add_handler(Handlers(on_add=self._enqueue, on_update=lambda o, n: self._enqueue(n)))
        self.jobs.add_handler(Handlers(on_add=self._job_changed, on_update=lambda o, n: self._job_changed(n),
                                       on_delete=self._job_changed))

    def watched(self):
        return [CRON_JOBS, JOBS]

    async def resync(self) -> None:
        for cron in self.cron_jobs.list():
            self._enqueue(cron)

    def _enqueue(self, cron: Obj) -> None:
        self.queue.add(key_of(cron))

    def _job_changed(self, job: Obj) -> None:
        ref = controller_ref(job)
        if ref is not None and ref.get("kind") == CRON_JOBS.kind and ref.get("apiVersion") == CRON_JOBS.group_version:
            self.queue.add(f"{meta(job).get('namespace')}/{ref.get('name')}")

    def _record(self, cron: Obj, event_type: str, reason: str, message: str) -> None:
        md = meta(cron)
        self.events.record((CRON_JOBS.group_version, CRON_JOBS.kind), md.get("namespace") or "default",
                           md.get("name", ""), event_type, reason, message, uid=md.get("uid"))

    async def reconcile(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        cron = self.cron_jobs.get(name, namespace)
        if cron is None or meta(cron).get("deletionTimestamp"):
            return
        jobs = await self._owned_jobs(cron)
        try:
            step = plan(cron, jobs, self.clock())
        except ScheduleError as exc:
            self._record(cron, "Warning", "UnknownTimeZone" if "timeZone" in str(exc) else "UnparseableSchedule",
                         str(exc))
            return
        await self._act(cron, step)
        if step.status != (cron.get("status") or {}):
            try:
                await self.client.update_status(CRON_JOBS, {**cron, "status": step.status})
            except ApiError as exc:
                if exc.code != 404:
                    raise
        for event in step.events:
            self._record(cron, *event)
        if step.requeue is not None:
            raise RequeueAfter(step.requeue, "next scheduled time")

    async def _owned_jobs(self, cron: Obj) -> list[Obj]:
        """The Jobs this CronJob controls: the cache's, and those its status lists as active
        that the cache does not show yet (asked of the apiserver; gone ones are dropped)."""
        uid = meta(cron).get("uid")
        jobs = [j for j in self.jobs.list(meta(cron)["namespace"]) if (controller_ref(j) or {}).get("uid") == uid]
        known = {meta(j).get("name") for j in jobs}
        for ref in (cron.get("status") or {}).get("active") or []:
            if ref.get("name") in known:
                continue
            try:
                job = await self.client.get(JOBS, ref.get("name", ""), meta(cron)["namespace"])
            except ApiError as exc:
                if exc.code == 404:
                    continue
                raise
            if (controller_ref(job) or {}).get("uid") == uid:
                jobs.append(job)
        return jobs

    async def _act(self, cron: Obj, step: CronPlan) -> None:
        for job in step.delete:
            try:
                await self.client.delete(JOBS, meta(job)["name"], meta(job)["namespace"], uid=meta(job).get("uid"),
                                         propagation_policy="Background")
                self._record(cron, "Normal", "SuccessfulDelete", f"Deleted job {meta(job)['name']}")
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise
        if step.create is None:
            return
        job = job_for(cron, step.create)
        try:
            created = await self.client.create(JOBS, job, meta(cron)["namespace"])
        except ApiError as exc:
            if exc.code != 409:
                self._record(cron, "Warning", "FailedCreate", f"Error creating job: {exc}")
                raise
            created = await self.client.get(JOBS, meta(job)["name"], meta(cron)["namespace"])  # made before a restart
        else:
            self._record(cron, "Normal", "SuccessfulCreate", f"Created job {meta(created)['name']}")
        refs = [r for r in step.status.get("active") or [] if r.get("name") != meta(created)["name"]]
        step.status["active"] = sorted([*refs, job_ref(created)], key=lambda r: r["name"])
