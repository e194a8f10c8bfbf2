"""Invalid Jobs and CronJobs, in the shape of tests/unit/invalid_cases.py (which appends them to
its CASES, so the unit and HTTP bad-input tests check each one)."""
from __future__ import annotations

from kproxy.api import resources as R
from tests.unit.batch_objects import CRON_JOB, JOB, MANUAL_JOB
from tests.unit.invalid_cases import DELETE, INV, NSUP, REQ, InvalidCase, case_maker

VALID = [(R.JOBS, MANUAL_JOB), (R.CRON_JOBS, CRON_JOB)]


_job = case_maker("job", R.JOBS, JOB)
_cron = case_maker("cronjob", R.CRON_JOBS, CRON_JOB)


TPL = "spec.jobTemplate.spec"
BATCH_CASES: list[InvalidCase] = [
    _job("restart-always", {"spec.template.spec.restartPolicy": "Always"}, "spec.template.spec.restartPolicy", NSUP),
    _job("restart-default-always", {"spec.template.spec.restartPolicy": DELETE},
         "spec.template.spec.restartPolicy", NSUP),
    _job("completions-negative", {"spec.completions": -1}, "spec.completions", INV),
    _job("parallelism-negative", {"spec.parallelism": -1}, "spec.parallelism", INV),
    _job("backoff-negative", {"spec.backoffLimit": -1}, "spec.backoffLimit", INV),
    _job("deadline-negative", {"spec.activeDeadlineSeconds": -5}, "spec.activeDeadlineSeconds", INV),
    _job("ttl-negative", {"spec.ttlSecondsAfterFinished": -1}, "spec.ttlSecondsAfterFinished", INV),
    _job("indexed-without-completions", {"spec.completionMode": "Indexed", "spec.completions": DELETE},
         "spec.completions", REQ),
    _job("completion-mode-unknown", {"spec.completionMode": "Sometimes"}, "spec.completionMode", NSUP),
    _job("selector-not-generated", {"spec.selector": {"matchLabels": {"app": "batch"}}}, "spec.selector", INV),
    _job("manual-selector-not-matching", {"spec.manualSelector": True,
                                          "spec.selector": {"matchLabels": {"app": "other"}}},
         "spec.template.metadata.labels", INV),
    _job("manual-without-selector", {"spec.manualSelector": True}, "spec.selector", REQ),
    _job("no-containers", {"spec.template.spec.containers": []}, "spec.template.spec.containers", REQ),
    _cron("schedule-unparsable", {"spec.schedule": "every minute please"}, "spec.schedule", INV),
    _cron("schedule-out-of-range", {"spec.schedule": "61 * * * *"}, "spec.schedule", INV),
    _cron("schedule-missing", {"spec.schedule": DELETE}, "spec.schedule", REQ),
    _cron("schedule-with-tz", {"spec.schedule": "CRON_TZ=UTC 0 * * * *", "spec.timeZone": DELETE},
          "spec.schedule", INV),
    _cron("time-zone-unknown", {"spec.timeZone": "Mars/Olympus"}, "spec.timeZone", INV),
    _cron("time-zone-local", {"spec.timeZone": "Local"}, "spec.timeZone", INV),
    _cron("concurrency-unknown", {"spec.concurrencyPolicy": "Sometimes"}, "spec.concurrencyPolicy", NSUP),
    _cron("deadline-negative", {"spec.startingDeadlineSeconds": -1}, "spec.startingDeadlineSeconds", INV),
    _cron("history-negative", {"spec.successfulJobsHistoryLimit": -1}, "spec.successfulJobsHistoryLimit", INV),
    _cron("template-restart-always", {f"{TPL}.template.spec.restartPolicy": "Always"},
          f"{TPL}.template.spec.restartPolicy", NSUP),
    _cron("template-manual-selector", {f"{TPL}.manualSelector": True}, f"{TPL}.manualSelector", NSUP),
    _cron("name-too-long", {"metadata.name": "n" * 53}, "metadata.name", INV),
]
