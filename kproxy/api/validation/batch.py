"""Validation of batch/v1 Jobs and CronJobs, as kube-apiserver's pkg/apis/batch/validation does:
Job pod templates restart Never or OnFailure, the generated selector (controller-uid) must be
the one the apiserver made unless manualSelector, Indexed Jobs need completions, the template
and selector are immutable; a CronJob's schedule parses as standard cron, its timeZone is an
IANA zone, its concurrencyPolicy one of Allow, Forbid, Replace."""
from __future__ import annotations

import zoneinfo
from typing import Any, Mapping

from kproxy.api import selectors
from kproxy.api.validation.common import check_enum
from kproxy.api.validation.errors import FieldErrors
from kproxy.api.validation.workloads import IMMUTABLE_MSG, _nonnegative, _template

JOB_RESTART_POLICIES = ("OnFailure", "Never")
COMPLETION_MODES = ("NonIndexed", "Indexed")
POD_REPLACEMENT_POLICIES = ("TerminatingOrFailed", "Failed")
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
MAX_INDEXED_COMPLETIONS = 100_000
CRON_JOB_NAME_MAX = 52  # the Jobs it makes get an 11-character "-<minutes>" suffix
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL = "job-name"


def _job_spec(e: FieldErrors, spec: dict[str, Any], path: str) -> None:
    """What a Job's spec and a CronJob's jobTemplate.spec share (validateJobSpec)."""
    parallelism = _nonnegative(e, spec.get("parallelism"), f"{path}.parallelism")
    completions = _nonnegative(e, spec.get("completions"), f"{path}.completions")
    for key in ("activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished"):
        _nonnegative(e, spec.get(key), f"{path}.{key}")
    e.boolean(spec.get("suspend"), f"{path}.suspend")
    e.boolean(spec.get("manualSelector"), f"{path}.manualSelector")
    mode = check_enum(e, spec.get("completionMode"), f"{path}.completionMode", COMPLETION_MODES, required=False)
    if mode == "Indexed":
        if spec.get("completions") is None:
            e.required(f"{path}.completions", "when completion mode is Indexed")
        elif completions is not None and completions > MAX_INDEXED_COMPLETIONS:
            e.invalid(f"{path}.completions", completions,
                      f"must be less than or equal to {MAX_INDEXED_COMPLETIONS} when completion mode is Indexed")
        if parallelism is not None and parallelism > MAX_INDEXED_COMPLETIONS:
            e.invalid(f"{path}.parallelism", parallelism,
                      f"must be less than or equal to {MAX_INDEXED_COMPLETIONS} when completion mode is Indexed")
    check_enum(e, spec.get("podReplacementPolicy"), f"{path}.podReplacementPolicy", POD_REPLACEMENT_POLICIES,
               required=False)


def _job_selector(e: FieldErrors, spec: dict[str, Any], path: str) -> selectors.LabelSelector | None:
    raw = spec.get("selector")
    if raw is None:
        e.required(f"{path}.selector")
        return None
    sel_map = e.map(raw, f"{path}.selector")
    try:
        return selectors.LabelSelector.from_dict(sel_map)
    except selectors.SelectorError as exc:
        e.invalid(f"{path}.selector", sel_map, str(exc))
        return None


def _dig(obj: Any, *keys: str) -> Any:
    """obj[k1][k2]..., None where a step is absent or not an object."""
    for key in keys:
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj


def _generated_selector(e: FieldErrors, obj: dict[str, Any], spec: dict[str, Any]) -> None:
    """Unless manualSelector, the selector and template labels are the apiserver's own
    (ValidateGeneratedSelector): controller-uid is this Job's uid."""
    if spec.get("manualSelector") is True:
        return
    uid = _dig(obj, "metadata", "uid")
    labels = _dig(spec, "template", "metadata", "labels") or {}
    if not isinstance(labels, Mapping) or not uid or labels.get(CONTROLLER_UID_LABEL) != uid:
        e.invalid("spec.template.metadata.labels", labels, "must have a `controller-uid` label matching the job")
    if spec.get("selector") != {"matchLabels": {CONTROLLER_UID_LABEL: uid}}:
        e.invalid("spec.selector", spec.get("selector"), "`selector` not auto-generated")


def validate_job(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    _job_spec(e, spec, "spec")
    sel = _job_selector(e, spec, "spec")
    _template(e, spec, sel, restart_policies=JOB_RESTART_POLICIES)
    _generated_selector(e, obj, spec)
    if old is not None:
        old_spec = dict(old["spec"]) if isinstance(old.get("spec"), Mapping) else {}
        for key in ("selector", "template", "completionMode", "manualSelector", "podReplacementPolicy"):
            if spec.get(key) != old_spec.get(key):
                e.invalid(f"spec.{key}", spec.get(key), IMMUTABLE_MSG)
        if spec.get("completions") != old_spec.get("completions") and not _elastic_indexed(spec, old_spec):
            e.invalid("spec.completions", spec.get("completions"), IMMUTABLE_MSG)
    status = e.map(obj.get("status"), "status")
    for key in ("active", "succeeded", "failed", "ready", "terminating"):
        _nonnegative(e, status.get(key), f"status.{key}")


def _elastic_indexed(spec: dict[str, Any], old_spec: dict[str, Any]) -> bool:
    """An Indexed Job may change completions together with parallelism to the same value."""
    return spec.get("completionMode") == "Indexed" and spec.get("completions") == spec.get("parallelism") \
        and old_spec.get("completions") == old_spec.get("parallelism")


def check_schedule(e: FieldErrors, schedule: Any, time_zone: Any, field: str) -> None:
    """A standard 5-field cron line or a @descriptor, without TZ= (use timeZone)."""
    from croniter import croniter  # the controller imports it as well; keep import time low here

    if schedule is None or schedule == "":
        e.required(field)
        return
    if not isinstance(schedule, str):
        e.type_invalid(field, schedule, "must be of type string")
        return
    if "TZ" in schedule:
        detail = ("cannot use both timeZone field and TZ or CRON_TZ in schedule" if time_zone is not None
                  else "cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
        e.invalid(field, schedule, detail)
        return
    if len(schedule.split()) != 5 and not schedule.startswith("@"):
        e.invalid(field, schedule, f"expected exactly 5 fields, found {len(schedule.split())}: {schedule}")
        return
    if not croniter.is_valid(schedule):
        e.invalid(field, schedule, "not a valid cron schedule")


def check_time_zone(e: FieldErrors, value: Any, field: str) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        e.type_invalid(field, value, "must be of type string")
    elif not value:
        e.invalid(field, value, "timeZone must be nil or non-empty string")
    elif value.lower() == "local":
        e.invalid(field, value, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones")
    else:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            e.invalid(field, value, f"unknown time zone {value}")


def validate_cron_job(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    name = _dig(obj, "metadata", "name")
    if isinstance(name, str) and len(name) > CRON_JOB_NAME_MAX:
        e.invalid("metadata.name", name, f"must be no more than {CRON_JOB_NAME_MAX} characters")
    spec = e.map(obj.get("spec"), "spec")
    check_time_zone(e, spec.get("timeZone"), "spec.timeZone")
    check_schedule(e, spec.get("schedule"), spec.get("timeZone"), "spec.schedule")
    check_enum(e, spec.get("concurrencyPolicy"), "spec.concurrencyPolicy", CONCURRENCY_POLICIES, required=True)
    e.boolean(spec.get("suspend"), "spec.suspend")
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        _nonnegative(e, spec.get(key), f"spec.{key}")
    template = e.map(spec.get("jobTemplate"), "spec.jobTemplate")
    job_spec = e.map(template.get("spec"), "spec.jobTemplate.spec")
    _job_spec(e, job_spec, "spec.jobTemplate.spec")
    if job_spec.get("manualSelector") is True:
        e.not_supported("spec.jobTemplate.spec.manualSelector", True, ("nil", "false"))
    sel = None
    if job_spec.get("selector") is not None:
        sel = _job_selector(e, job_spec, "spec.jobTemplate.spec")
    _template(e, job_spec, sel, path="spec.jobTemplate.spec", restart_policies=JOB_RESTART_POLICIES)
