"""Invalid DaemonSets, StatefulSets and ControllerRevisions, in the shape of
tests/unit/invalid_cases.py (which appends them to its CASES, so the unit and HTTP bad-input
tests check each one)."""
from __future__ import annotations

from kproxy.api import resources as R
from tests.unit.invalid_cases import DELETE, FORB, INV, NSUP, REQ, InvalidCase, _edit, case_maker
from tests.unit.set_workload_objects import CONTROLLER_REVISION, DAEMON_SET, STATEFUL_SET

VALID = [(R.DAEMON_SETS, DAEMON_SET), (R.STATEFUL_SETS, STATEFUL_SET), (R.CONTROLLER_REVISIONS, CONTROLLER_REVISION)]


_ds = case_maker("ds", R.DAEMON_SETS, DAEMON_SET)
_sts = case_maker("sts", R.STATEFUL_SETS, STATEFUL_SET)


DS_ROLLING = "spec.updateStrategy.rollingUpdate"
STS_ROLLING = "spec.updateStrategy.rollingUpdate"
SET_WORKLOAD_CASES: list[InvalidCase] = [
    _ds("no-selector", {"spec.selector": DELETE}, "spec.selector", REQ),
    _ds("empty-selector", {"spec.selector": {}}, "spec.selector", INV),
    _ds("selector-not-matching", {"spec.selector": {"matchLabels": {"app": "db"}}},
        "spec.template.metadata.labels", INV),
    _ds("restart-never", {"spec.template.spec.restartPolicy": "Never"}, "spec.template.spec.restartPolicy", NSUP),
    _ds("active-deadline", {"spec.template.spec.activeDeadlineSeconds": 5},
        "spec.template.spec.activeDeadlineSeconds", FORB),
    _ds("strategy-unknown", {"spec.updateStrategy": {"type": "Recreate"}}, "spec.updateStrategy", NSUP),
    _ds("unavailable-and-surge-zero", {DS_ROLLING: {"maxUnavailable": 0, "maxSurge": 0}},
        f"{DS_ROLLING}.maxUnavailable", REQ),
    _ds("unavailable-and-surge-set", {DS_ROLLING: {"maxUnavailable": 1, "maxSurge": 1}},
        f"{DS_ROLLING}.maxSurge", INV),
    _ds("unavailable-over-100", {DS_ROLLING: {"maxUnavailable": "101%"}}, f"{DS_ROLLING}.maxUnavailable", INV),
    _ds("unavailable-negative", {DS_ROLLING: {"maxUnavailable": -1}}, f"{DS_ROLLING}.maxUnavailable", INV),
    _ds("history-negative", {"spec.revisionHistoryLimit": -1}, "spec.revisionHistoryLimit", INV),
    _ds("min-ready-negative", {"spec.minReadySeconds": -1}, "spec.minReadySeconds", INV),
    _sts("no-service-name", {"spec.serviceName": DELETE}, "spec.serviceName", REQ),
    _sts("no-selector", {"spec.selector": DELETE}, "spec.selector", REQ),
    _sts("selector-not-matching", {"spec.selector": {"matchLabels": {"app": "db"}}},
         "spec.template.metadata.labels", INV),
    _sts("replicas-negative", {"spec.replicas": -1}, "spec.replicas", INV),
    _sts("policy-unknown", {"spec.podManagementPolicy": "Random"}, "spec.podManagementPolicy", INV),
    _sts("strategy-unknown", {"spec.updateStrategy": {"type": "Recreate"}}, "spec.updateStrategy", INV),
    _sts("partition-negative", {STS_ROLLING: {"partition": -1}}, f"{STS_ROLLING}.partition", INV),
    _sts("on-delete-with-rolling", {"spec.updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}}},
         STS_ROLLING, INV),
    _sts("restart-on-failure", {"spec.template.spec.restartPolicy": "OnFailure"},
         "spec.template.spec.restartPolicy", NSUP),
    InvalidCase("controllerrevision-no-data", R.CONTROLLER_REVISIONS, _edit(CONTROLLER_REVISION, {"data": DELETE}),
                "data", REQ),
    InvalidCase("controllerrevision-negative", R.CONTROLLER_REVISIONS, _edit(CONTROLLER_REVISION, {"revision": -1}),
                "revision", INV),
]
