"""The pure part of the CronJob controller (no I/O), following kubernetes/pkg/controller/cronjob:
which scheduled time is due, the Job made for it, what the concurrency policy and history limits
ask for, and the CronJob's status. Times are epoch seconds; the schedule is read in the
CronJob's timeZone (UTC when unset: the controller manager's zone here).
"""
from __future__ import annotations

import copy
import datetime
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from croniter import croniter

from kproxy.api.meta import parse_rfc3339
from kproxy.controllers.jobplan import condition, rfc3339
from kproxy.controllers.ownership import Obj, meta, owner_reference

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
CRON_API = ("batch/v1", "CronJob")
MAX_MISSED = 100  # more missed start times than this is reported (TooManyMissedTimes)


class ScheduleError(ValueError):
    """The schedule or time zone cannot be used (reported as an Event, the CronJob waits)."""


def _timestamp(value: Any) -> float | None:
    try:
        return parse_rfc3339(value).timestamp() if value else None
    except ValueError:
        return None


def time_zone(cron: Obj) -> datetime.tzinfo:
    name = (cron.get("spec") or {}).get("timeZone")
    if not name:
        return datetime.timezone.utc
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"invalid timeZone: {name!r}: {exc}") from None


def _iter(cron: Obj, start: float) -> croniter:
    spec = cron.get("spec") or {}
    tz = time_zone(cron)
    try:
        return croniter(spec.get("schedule") or "", datetime.datetime.fromtimestamp(start, tz))
    except (ValueError, KeyError) as exc:
        raise ScheduleError(f"unparseable schedule: {spec.get('schedule')!r}: {exc}") from None


@dataclass(frozen=True)
class Due:
    """The most recent scheduled time not yet run (None: none due), how many were missed
    before it, and the next scheduled time after now."""
    time: float | None
    missed: int
    next: float


def due(cron: Obj, now: float) -> Due:
    """The scheduled times between the last one run (or the CronJob's creation, or now minus
    startingDeadlineSeconds if later) and now."""
    spec = cron.get("spec") or {}
    status = cron.get("status") or {}
    earliest = _timestamp(status.get("lastScheduleTime")) or _timestamp(meta(cron).get("creationTimestamp")) or now
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        earliest = max(earliest, now - int(deadline))
    it = _iter(cron, earliest)
    latest, count = None, 0
    t = it.get_next(float)
    first = t
    while t <= now:
        latest, count = t, count + 1
        if count > MAX_MISSED:  # stop walking: the last one is before now, the count an estimate
            latest = _iter(cron, now).get_prev(float)
            count = int((now - earliest) / max(1.0, (t - first) / (count - 1)))
            break
        t = it.get_next(float)
    return Due(latest, max(0, count - 1), _iter(cron, now).get_next(float))


def job_name(cron: Obj, scheduled: float) -> str:
    """<cronjob>-<scheduled time in minutes since the epoch>: one Job per scheduled time."""
    return f"{meta(cron)['name']}-{int(scheduled // 60)}"


def job_for(cron: Obj, scheduled: float) -> Obj:
    """The Job for one scheduled time: the jobTemplate, owned by the CronJob."""
    template = (cron.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    when = datetime.datetime.fromtimestamp(scheduled, time_zone(cron)).isoformat()
    md: dict[str, Any] = {
        "name": job_name(cron, scheduled), "namespace": meta(cron)["namespace"],
        "labels": dict(tmeta.get("labels") or {}),
        "annotations": {**(tmeta.get("annotations") or {}), SCHEDULED_TIMESTAMP: when},
        "ownerReferences": [owner_reference(cron, *CRON_API)]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": md, "spec": copy.deepcopy(template.get("spec") or {})}


def job_ref(job: Obj) -> dict[str, Any]:
    md = meta(job)
    return {"kind": "Job", "namespace": md.get("namespace"), "name": md.get("name"), "uid": md.get("uid"),
            "apiVersion": "batch/v1", "resourceVersion": md.get("resourceVersion")}


def finished_state(job: Obj) -> str | None:
    if condition(job, "Complete") is not None:
        return "Complete"
    if condition(job, "Failed") is not None:
        return "Failed"
    return None


@dataclass
class CronPlan:
    """What the controller does next for one CronJob, and the status to write after."""
    status: dict[str, Any]
    create: float | None = None  # the scheduled time to create a Job for
    delete: list[Obj] = field(default_factory=list)  # Jobs to delete (Replace, history limits)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue: float | None = None  # seconds until the next scheduled time


def plan(cron: Obj, jobs: list[Obj], now: float) -> CronPlan:
    """The next step for `cron` given the Jobs it owns (those the cache or the apiserver has)."""
    spec = cron.get("spec") or {}
    status = copy.deepcopy(cron.get("status") or {})
    out = CronPlan(status)
    active = [j for j in jobs if finished_state(j) is None and not meta(j).get("deletionTimestamp")]
    done = [j for j in jobs if finished_state(j) is not None]
    successes = [_timestamp((j.get("status") or {}).get("completionTime")) for j in done
                 if finished_state(j) == "Complete"]
    last_success = max([t for t in successes if t is not None], default=None)
    if last_success is not None and last_success > (_timestamp(status.get("lastSuccessfulTime")) or 0):
        status["lastSuccessfulTime"] = rfc3339(last_success)
    out.delete = _over_history(spec, done)
    if not spec.get("suspend"):
        _schedule(cron, spec, status, jobs, active, now, out)
    kept = [j for j in active if j not in out.delete]
    refs = sorted((job_ref(j) for j in kept), key=lambda r: r["name"])
    if refs:
        status["active"] = refs
    else:
        status.pop("active", None)
    return out


def _schedule(cron: Obj, spec: dict[str, Any], status: dict[str, Any], jobs: list[Obj], active: list[Obj],
              now: float, out: CronPlan) -> None:
    d = due(cron, now)
    out.requeue = max(0.1, d.next - now)
    if d.missed > MAX_MISSED:
        out.events.append(("Warning", "TooManyMissedTimes",
                           f"too many missed start times: {d.missed}. Set or decrease .spec.startingDeadlineSeconds "
                           "or check clock skew"))
    if d.time is None:
        return
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None and d.time + int(deadline) < now:
        out.events.append(("Warning", "MissSchedule", f"Missed scheduled time to start a job: {rfc3339(d.time)}"))
        return
    if any(meta(j).get("name") == job_name(cron, d.time) for j in jobs):
        status["lastScheduleTime"] = rfc3339(d.time)  # made already (a status write was lost)
        return
    policy = spec.get("concurrencyPolicy") or "Allow"
    if policy == "Forbid" and active:
        out.events.append(("Normal", "JobAlreadyActive",
                           "Not starting job because prior execution is running and concurrency policy is Forbid"))
        return
    if policy == "Replace":
        out.delete.extend(active)
    out.create = d.time
    status["lastScheduleTime"] = rfc3339(d.time)


def _over_history(spec: dict[str, Any], done: list[Obj]) -> list[Obj]:
    """The oldest finished Jobs beyond successfulJobsHistoryLimit / failedJobsHistoryLimit."""
    out = []
    for state, key, default in (("Complete", "successfulJobsHistoryLimit", 3), ("Failed", "failedJobsHistoryLimit", 1)):
        limit = spec.get(key)
        limit = default if limit is None else int(limit)
        jobs = sorted((j for j in done if finished_state(j) == state),
                      key=lambda j: (_timestamp((j.get("status") or {}).get("startTime"))
                                     or _timestamp(meta(j).get("creationTimestamp")) or 0.0, meta(j).get("name", "")))
        out.extend(jobs[:max(0, len(jobs) - limit)])
    return out
