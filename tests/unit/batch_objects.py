"""Valid batch/v1 Job and CronJob objects that tests start from (namespace "default")."""
from __future__ import annotations

from typing import Any

JOB_TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "batch"}},
    "spec": {"containers": [{"name": "work", "image": "busybox", "command": ["true"]}],
             "restartPolicy": "Never"},
}
# the apiserver generates the selector (controller-uid) of a Job created without one
JOB: dict[str, Any] = {
    "apiVersion": "batch/v1", "kind": "Job",
    "metadata": {"name": "work", "namespace": "default"},
    "spec": {"completions": 3, "parallelism": 2, "template": JOB_TEMPLATE},
}
MANUAL_JOB: dict[str, Any] = {
    "apiVersion": "batch/v1", "kind": "Job",
    "metadata": {"name": "manual", "namespace": "default"},
    "spec": {"manualSelector": True, "selector": {"matchLabels": {"app": "batch"}}, "template": JOB_TEMPLATE},
}
CRON_JOB: dict[str, Any] = {
    "apiVersion": "batch/v1", "kind": "CronJob",
    "metadata": {"name": "nightly", "namespace": "default"},
    "spec": {"schedule": "30 2 * * *", "timeZone": "Europe/Paris",
             "jobTemplate": {"spec": {"template": JOB_TEMPLATE}}},
}
