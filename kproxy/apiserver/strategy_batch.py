"""The batch/v1 strategies (registered in strategy.build_strategies): a Job gets the selector
and pod labels kube-apiserver generates for it on create (pkg/registry/batch/job/strategy.go),
so its pods match this Job and no other; CronJobs count generations as other workloads do."""
from __future__ import annotations

from typing import Any

from kproxy.api.validation.batch import (
    CONTROLLER_UID_LABEL, JOB_NAME_LABEL, LEGACY_CONTROLLER_UID_LABEL, LEGACY_JOB_NAME_LABEL,
)
from kproxy.apiserver.strategy import WorkloadStrategy


def generate_selector(job: dict[str, Any]) -> None:
    """Unless spec.manualSelector, adds the job-name and controller-uid labels to the pod
    template (keeping values the user set: validation then rejects a wrong uid) and selects
    controller-uid; in place. A Job without labels takes its template's (before these)."""
    md = job.setdefault("metadata", {})
    spec = job.get("spec")
    if not isinstance(spec, dict) or spec.get("manualSelector") is True:
        return
    template = spec.setdefault("template", {})
    if not isinstance(template, dict):
        return
    tmeta = template.setdefault("metadata", {})
    if not isinstance(tmeta, dict):
        return
    if tmeta.get("labels") is None:
        tmeta["labels"] = {}
    labels = tmeta["labels"]
    if not isinstance(labels, dict):
        return  # validation reports the type
    if labels and not md.get("labels"):
        md["labels"] = dict(labels)
    for key, value in ((LEGACY_JOB_NAME_LABEL, md.get("name")), (JOB_NAME_LABEL, md.get("name")),
                       (LEGACY_CONTROLLER_UID_LABEL, md.get("uid")), (CONTROLLER_UID_LABEL, md.get("uid"))):
        labels.setdefault(key, value)
    selector = spec.get("selector")
    if selector is None:
        selector = spec["selector"] = {}
    if isinstance(selector, dict):
        match = selector.setdefault("matchLabels", {})
        if isinstance(match, dict):
            match.setdefault(CONTROLLER_UID_LABEL, md.get("uid"))


class JobStrategy(WorkloadStrategy):
    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        generate_selector(obj)
