"""The pure part of the Job controller (no I/O), following kubernetes/pkg/controller/job: which
pods a Job creates or deletes next, when it completes or fails, and its status.

Finished pods are counted through the batch.kubernetes.io/job-tracking finalizer, as upstream:
a pod that finished is first recorded in status.uncountedTerminatedPods, then its finalizer is
removed, then it moves into succeeded/failed (`count_uncounted`). So a pod is counted once even
if the controller restarts, and a pod deleted early (PodGC, a user) is still counted.
"""
from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field
from typing import Any

from kproxy.api.meta import parse_rfc3339
from kproxy.controllers.ownership import Obj, is_deleting, meta, owner_reference
from kproxy.controllers.podutil import is_pod_ready, is_terminal
from kproxy.controllers.replicaset import deletion_order

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # annotation and label
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
JOB_API = ("batch/v1", "Job")

# (condition type, reason, message) of the ends
BACKOFF_LIMIT = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE = ("DeadlineExceeded", "Job was active longer than specified deadline")
COMPLETED = ("CompletionsReached", "Reached expected number of succeeded pods")


def rfc3339(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp(value: Any) -> float | None:
    try:
        return parse_rfc3339(value).timestamp() if value else None
    except ValueError:
        return None


def condition(job: Obj, kind: str) -> dict[str, Any] | None:
    """The Job's condition of type `kind` when its status is True."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def is_finished(job: Obj) -> bool:
    return condition(job, "Complete") is not None or condition(job, "Failed") is not None


def finish_time(job: Obj) -> float | None:
    """When the Complete or Failed condition became True."""
    for kind in ("Complete", "Failed"):
        cond = condition(job, kind)
        if cond is not None:
            return _timestamp(cond.get("lastTransitionTime"))
    return None


def ttl_expiry(job: Obj) -> float | None:
    """When a finished Job with ttlSecondsAfterFinished may be deleted (None: never)."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    finished = finish_time(job)
    if ttl is None or finished is None:
        return None
    return finished + int(ttl)


# -- completion indexes ---------------------------------------------------------------------

def pod_index(pod: Obj) -> int | None:
    value = (meta(pod).get("annotations") or {}).get(COMPLETION_INDEX)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def parse_indexes(text: str | None) -> set[int]:
    """"1,3-5,7" -> {1, 3, 4, 5, 7}; malformed parts are skipped."""
    out: set[int] = set()
    for part in (text or "").split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            out.update(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            continue
    return out


def format_indexes(indexes: set[int]) -> str:
    """{1, 3, 4, 5, 7} -> "1,3-5,7" (three or more in a row become a range)."""
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i != run[-1] + 1:
            parts.append(_run(run))
            run = []
        run.append(i)
    if run:
        parts.append(_run(run))
    return ",".join(parts)


def _run(run: list[int]) -> str:
    if len(run) >= 3:
        return f"{run[0]}-{run[-1]}"
    return ",".join(str(i) for i in run)


# -- new pods -------------------------------------------------------------------------------

def pod_from_template(job: Obj, index: int | None) -> Obj:
    """A new pod of the Job: its template, the tracking finalizer, its controller ref; in
    Indexed mode the completion index as annotation, label, env and hostname."""
    template = (job.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    name = meta(job)["name"]
    md: dict[str, Any] = {
        "generateName": f"{name}-" if index is None else f"{name}-{index}-",
        "namespace": meta(job)["namespace"], "labels": dict(tmeta.get("labels") or {}),
        "annotations": dict(tmeta.get("annotations") or {}),
        "finalizers": [*(tmeta.get("finalizers") or []), TRACKING_FINALIZER],
        "ownerReferences": [owner_reference(job, *JOB_API)]}
    spec = copy.deepcopy(template.get("spec") or {})
    if index is not None:
        md["annotations"][COMPLETION_INDEX] = str(index)
        md["labels"][COMPLETION_INDEX] = str(index)
        spec.setdefault("hostname", f"{name}-{index}")
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            env = [e for e in container.get("env") or [] if e.get("name") != COMPLETION_INDEX_ENV]
            container["env"] = [*env, {"name": COMPLETION_INDEX_ENV, "value": str(index)}]
    if not md["annotations"]:
        del md["annotations"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec}


# -- counting finished pods -----------------------------------------------------------------

def has_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in (meta(pod).get("finalizers") or [])


def finalizer_done(pod: Obj) -> bool:
    """The pod's finalizer can go: it finished (and is recorded) or is being deleted."""
    return has_finalizer(pod) and (is_terminal(pod) or is_deleting(pod))


def without_finalizer(pod: Obj) -> Obj:
    """The pod as it is once our finalizer is removed."""
    md = {**meta(pod), "finalizers": [f for f in meta(pod).get("finalizers") or [] if f != TRACKING_FINALIZER]}
    return {**pod, "metadata": md}


def _uncounted(status: dict[str, Any]) -> tuple[list[str], list[str]]:
    u = status.get("uncountedTerminatedPods") or {}
    return list(u.get("succeeded") or []), list(u.get("failed") or [])


def record_uncounted(job: Obj, pods: list[Obj]) -> dict[str, Any] | None:
    """The status with each finished pod that still holds our finalizer added to
    uncountedTerminatedPods; None when nothing is new."""
    status = copy.deepcopy(job.get("status") or {})
    succeeded, failed = _uncounted(status)
    known = set(succeeded) | set(failed)
    new = False
    for pod in pods:
        uid = meta(pod).get("uid") or ""
        if not uid or not has_finalizer(pod) or not is_terminal(pod) or uid in known:
            continue
        (succeeded if (pod.get("status") or {}).get("phase") == "Succeeded" else failed).append(uid)
        new = True
    if not new:
        return None
    status["uncountedTerminatedPods"] = {"succeeded": succeeded, "failed": failed}
    return status


def count_uncounted(job: Obj, pods: list[Obj]) -> dict[str, Any] | None:
    """The status with the uncounted pods whose finalizer is gone (or that are gone) moved into
    succeeded/failed (and completedIndexes); None when there is nothing to move."""
    status = copy.deepcopy(job.get("status") or {})
    succeeded, failed = _uncounted(status)
    if not succeeded and not failed:
        return None
    holding = {meta(p).get("uid"): p for p in pods if has_finalizer(p)}
    by_uid = {meta(p).get("uid"): p for p in pods}
    indexed = (job.get("spec") or {}).get("completionMode") == "Indexed"
    completions = (job.get("spec") or {}).get("completions")
    done = parse_indexes(status.get("completedIndexes"))
    still_s, still_f = [], []
    for uid in succeeded:
        if uid in holding:
            still_s.append(uid)
            continue
        index = pod_index(by_uid[uid]) if uid in by_uid else None
        if indexed:
            if index is not None and (completions is None or index < completions):
                done.add(index)
        else:
            status["succeeded"] = status.get("succeeded", 0) + 1
    for uid in failed:
        if uid in holding:
            still_f.append(uid)
        else:
            status["failed"] = status.get("failed", 0) + 1
    if len(still_s) == len(succeeded) and len(still_f) == len(failed):
        return None  # every one still holds its finalizer
    if indexed:
        status["succeeded"] = len(done)
        if done:
            status["completedIndexes"] = format_indexes(done)
    status["uncountedTerminatedPods"] = {"succeeded": still_s, "failed": still_f}
    return status


# -- the plan -------------------------------------------------------------------------------

@dataclass
class JobPlan:
    """What the controller does next for one Job, and the status to write after."""
    status: dict[str, Any]
    create: int = 0  # NonIndexed: pods to create
    create_indexes: list[int] = field(default_factory=list)  # Indexed: one pod per index
    delete: list[Obj] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    requeue: float | None = None  # seconds until something is due (the deadline)


def _set_condition(status: dict[str, Any], kind: str, value: str, reason: str, message: str, now: float) -> bool:
    """Sets a condition; True when it changed."""
    conds = status.setdefault("conditions", [])
    for cond in conds:
        if cond.get("type") == kind:
            if cond.get("status") == value:
                return False
            cond.update(status=value, reason=reason, message=message, lastProbeTime=rfc3339(now),
                        lastTransitionTime=rfc3339(now))
            return True
    conds.append({"type": kind, "status": value, "reason": reason, "message": message,
                  "lastProbeTime": rfc3339(now), "lastTransitionTime": rfc3339(now)})
    return True


def _has(status: dict[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or [])


def plan(job: Obj, pods: list[Obj], now: float) -> JobPlan:
    """The next step for `job` given its pods (its own, already counted: see count_uncounted)."""
    spec = job.get("spec") or {}
    status = copy.deepcopy(job.get("status") or {})
    active = [p for p in pods if not is_terminal(p) and not is_deleting(p)]
    out = JobPlan(status)
    status["terminating"] = sum(1 for p in pods if is_deleting(p) and not is_terminal(p))
    if is_finished(job):
        status.update(active=len(active), ready=sum(1 for p in active if is_pod_ready(p)))
        return out
    if spec.get("suspend"):
        out.delete = active
        if _set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", now):
            out.events.append(("Normal", "Suspended", "Job suspended"))
        status.pop("startTime", None)
        status.update(active=0, ready=0)
        return out
    if _has(status, "Suspended"):
        _set_condition(status, "Suspended", "False", "JobResumed", "Job resumed", now)
        out.events.append(("Normal", "Resumed", "Job resumed"))
        status.pop("startTime", None)
    status.setdefault("startTime", rfc3339(now))

    failure = _failure(spec, status, now)
    if failure is not None:
        reason, message = failure
        out.delete = active
        _set_condition(status, "FailureTarget", "True", reason, message, now)
        _set_condition(status, "Failed", "True", reason, message, now)
        out.events.append(("Warning", reason, message))
        status.update(active=0, ready=0)
        return out
    if _complete(spec, status, active):
        out.delete = active
        _set_condition(status, "SuccessCriteriaMet", "True", *COMPLETED, now)
        _set_condition(status, "Complete", "True", *COMPLETED, now)
        status["completionTime"] = rfc3339(now)
        out.events.append(("Normal", "Completed", "Job completed"))
        status.update(active=0, ready=0)
        return out

    _scale(spec, status, pods, active, out)
    kept = [p for p in active if p not in out.delete]
    status["active"] = len(kept) + out.create + len(out.create_indexes)
    status["ready"] = sum(1 for p in kept if is_pod_ready(p))
    deadline = spec.get("activeDeadlineSeconds")
    start = _timestamp(status.get("startTime"))
    if deadline is not None and start is not None:
        out.requeue = max(0.1, start + int(deadline) - now)
    return out


def _failure(spec: dict[str, Any], status: dict[str, Any], now: float) -> tuple[str, str] | None:
    if status.get("failed", 0) > int(spec.get("backoffLimit", 6)):
        return BACKOFF_LIMIT
    deadline, start = spec.get("activeDeadlineSeconds"), _timestamp(status.get("startTime"))
    if deadline is not None and start is not None and now - start >= int(deadline):
        return DEADLINE
    return None


def _complete(spec: dict[str, Any], status: dict[str, Any], active: list[Obj]) -> bool:
    succeeded, completions = status.get("succeeded", 0), spec.get("completions")
    if completions is None:  # a work queue: done when one succeeded and the others finished
        return succeeded > 0 and not active
    return succeeded >= int(completions)


def _pending_successes(status: dict[str, Any], pods: list[Obj]) -> tuple[set[str], set[int]]:
    """The uids (and completion indexes) of pods that succeeded but are not in
    status.succeeded yet: in uncountedTerminatedPods or still holding the tracking finalizer.
    As upstream, they count as successes when deciding how many pods to run."""
    uids = set(_uncounted(status)[0])
    indexes: set[int] = set()
    for pod in pods:
        if (pod.get("status") or {}).get("phase") != "Succeeded":
            continue
        uid = meta(pod).get("uid") or ""
        if uid in uids or (uid and has_finalizer(pod)):
            uids.add(uid)
            index = pod_index(pod)
            if index is not None:
                indexes.add(index)
    return uids, indexes


def _scale(spec: dict[str, Any], status: dict[str, Any], pods: list[Obj], active: list[Obj],
           out: JobPlan) -> None:
    """Pods to create (or, above parallelism, to delete): never more than completions minus
    the successes (counted or not yet) minus the active pods."""
    parallelism, completions = int(spec.get("parallelism", 1)), spec.get("completions")
    pending, pending_indexes = _pending_successes(status, pods)
    done = parse_indexes(status.get("completedIndexes")) | pending_indexes
    if spec.get("completionMode") == "Indexed":
        succeeded = len({i for i in done if completions is None or i < int(completions)})
    else:
        succeeded = status.get("succeeded", 0) + len(pending)
    if completions is None:
        want = parallelism if succeeded == 0 else len(active)
    else:
        want = min(parallelism, max(0, int(completions) - succeeded))
    if len(active) > want:
        out.delete = deletion_order(active)[:len(active) - want]
        return
    if spec.get("completionMode") != "Indexed":
        out.create = want - len(active)
        return
    busy = done | {pod_index(p) for p in active}
    pending = [i for i in range(int(completions or 0)) if i not in busy]
    out.create_indexes = pending[:want - len(active)]
