"""Schema of the batch/v1 kinds (Job, CronJob), in the terms of kproxy.apiserver.schema (which
merges these into its DEFINITIONS)."""
from __future__ import annotations

from kproxy.apiserver.schema import BOOL, CORE, INT, INT64, META, STR, TIME, ListOf, Ref, Struct
from kproxy.apiserver.schema_workloads import LABEL_SELECTOR

BATCH = "io.k8s.api.batch.v1."

DEFINITIONS: dict[str, Struct] = {
    BATCH + "Job": Struct({"spec": Ref(BATCH + "JobSpec"), "status": Ref(BATCH + "JobStatus")}),
    BATCH + "JobSpec": Struct({
        "parallelism": INT, "completions": INT, "activeDeadlineSeconds": INT64, "backoffLimit": INT,
        "selector": Ref(LABEL_SELECTOR), "manualSelector": BOOL, "template": Ref(CORE + "PodTemplateSpec"),
        "ttlSecondsAfterFinished": INT, "completionMode": STR, "suspend": BOOL, "podReplacementPolicy": STR,
    }, required=("template",)),
    BATCH + "JobStatus": Struct({
        "conditions": ListOf(Ref(BATCH + "JobCondition"), merge_key="type", strategy="merge"), "startTime": TIME,
        "completionTime": TIME, "active": INT, "succeeded": INT, "failed": INT, "terminating": INT,
        "completedIndexes": STR, "uncountedTerminatedPods": Ref(BATCH + "UncountedTerminatedPods"), "ready": INT,
    }),
    BATCH + "UncountedTerminatedPods": Struct({"succeeded": ListOf(STR, list_type="set"),
                                               "failed": ListOf(STR, list_type="set")}),
    BATCH + "JobCondition": Struct({
        "type": STR, "status": STR, "lastProbeTime": TIME, "lastTransitionTime": TIME, "reason": STR,
        "message": STR}, required=("type", "status")),
    BATCH + "JobTemplateSpec": Struct({"metadata": Ref(META), "spec": Ref(BATCH + "JobSpec")}),
    BATCH + "CronJob": Struct({"spec": Ref(BATCH + "CronJobSpec"), "status": Ref(BATCH + "CronJobStatus")}),
    BATCH + "CronJobSpec": Struct({
        "schedule": STR, "timeZone": STR, "startingDeadlineSeconds": INT64, "concurrencyPolicy": STR,
        "suspend": BOOL, "jobTemplate": Ref(BATCH + "JobTemplateSpec"), "successfulJobsHistoryLimit": INT,
        "failedJobsHistoryLimit": INT,
    }, required=("schedule", "jobTemplate")),
    BATCH + "CronJobStatus": Struct({
        "active": ListOf(Ref(CORE + "ObjectReference"), list_type="atomic"), "lastScheduleTime": TIME,
        "lastSuccessfulTime": TIME}),
}
