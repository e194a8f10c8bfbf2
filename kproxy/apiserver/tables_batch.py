"""Table printers of the batch/v1 kinds, as kube-apiserver's printers show them (merged into
kproxy.apiserver.tables.PRINTERS): Job NAME STATUS COMPLETIONS DURATION AGE, CronJob NAME
SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE; -o wide adds containers, images, selector."""
from __future__ import annotations

from typing import Any, Callable

from kproxy.apiserver.objects import parse_rfc3339
from kproxy.apiserver.tables import AGE, NAME, TEMPLATE_COLUMNS, Column, Row, _age, _template_cells, human_duration


def _has_condition(obj: dict[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def job_status_word(job: dict[str, Any]) -> str:
    """The STATUS column: the first of Complete, Failed, Terminating, Suspended, FailureTarget,
    SuccessCriteriaMet that holds, else Running."""
    if _has_condition(job, "Complete"):
        return "Complete"
    if _has_condition(job, "Failed"):
        return "Failed"
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    for kind in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _has_condition(job, kind):
            return kind
    return "Running"


def _completions(spec: dict[str, Any], status: dict[str, Any]) -> str:
    succeeded = status.get("succeeded", 0)
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = spec.get("parallelism") or 0
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _duration(status: dict[str, Any], now: float) -> str:
    start = parse_rfc3339(status.get("startTime") or "")
    if start is None:
        return ""
    end = parse_rfc3339(status.get("completionTime") or "")
    return human_duration((end if end is not None else now) - start)


def _job(obj: dict[str, Any], now: float) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [obj["metadata"]["name"], job_status_word(obj), _completions(spec, status), _duration(status, now),
            _age(obj, now), *_template_cells(obj)]


def _cron_job(obj: dict[str, Any], now: float) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    suspend = spec.get("suspend")
    last = parse_rfc3339(status.get("lastScheduleTime") or "")
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return [obj["metadata"]["name"], spec.get("schedule", ""), spec.get("timeZone") or "<none>",
            "<unset>" if suspend is None else str(bool(suspend)), len(status.get("active") or []),
            "<none>" if last is None else human_duration(now - last), _age(obj, now),
            *_template_cells({"spec": job_spec})]


PRINTERS: dict[str, tuple[list[Column], Callable[[dict[str, Any], float], Row]]] = {
    "Job": ([NAME, ("Status", "string", 0), ("Completions", "string", 0), ("Duration", "string", 0), AGE,
             *TEMPLATE_COLUMNS], _job),
    "CronJob": ([NAME, ("Schedule", "string", 0), ("Timezone", "string", 0), ("Suspend", "boolean", 0),
                 ("Active", "integer", 0), ("Last Schedule", "string", 0), AGE, *TEMPLATE_COLUMNS], _cron_job),
}
