"""Invalid ConfigMaps, ReplicaSets and Deployments, in the shape of tests/unit/invalid_cases.py
(which appends them to its CASES, so the unit and HTTP bad-input tests check each one)."""
from __future__ import annotations

from kproxy.api import resources as R
from tests.unit.invalid_cases import DELETE, FORB, INV, NSUP, REQ, InvalidCase, _edit, case_maker
from tests.unit.workload_objects import CONFIG_MAP, DEPLOYMENT, REPLICA_SET

VALID = [(R.DEPLOYMENTS, DEPLOYMENT), (R.REPLICA_SETS, REPLICA_SET), (R.CONFIG_MAPS, CONFIG_MAP)]


_deploy = case_maker("deploy", R.DEPLOYMENTS, DEPLOYMENT)
_rs = case_maker("rs", R.REPLICA_SETS, REPLICA_SET)


ROLLING = "spec.strategy.rollingUpdate"
WORKLOAD_CASES: list[InvalidCase] = [
    _deploy("no-selector", {"spec.selector": DELETE}, "spec.selector", REQ),
    _deploy("empty-selector", {"spec.selector": {}}, "spec.selector", INV),
    _deploy("selector-not-matching", {"spec.selector": {"matchLabels": {"app": "db"}}},
            "spec.template.metadata.labels", INV),
    _deploy("selector-expression-not-matching",
            {"spec.selector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}},
            "spec.template.metadata.labels", INV),
    _deploy("replicas-negative", {"spec.replicas": -1}, "spec.replicas", INV),
    _deploy("no-template", {"spec.template": DELETE}, "spec.template", REQ),
    _deploy("no-containers", {"spec.template.spec.containers": []}, "spec.template.spec.containers", REQ),
    _deploy("container-no-image", {"spec.template.spec.containers[0].image": ""},
            "spec.template.spec.containers[0].image", REQ),
    _deploy("restart-never", {"spec.template.spec.restartPolicy": "Never"}, "spec.template.spec.restartPolicy", NSUP),
    _deploy("surge-and-unavailable-zero", {ROLLING: {"maxSurge": 0, "maxUnavailable": 0}},
            f"{ROLLING}.maxUnavailable", INV),
    _deploy("surge-and-unavailable-zero-percent", {ROLLING: {"maxSurge": "0%", "maxUnavailable": 0}},
            f"{ROLLING}.maxUnavailable", INV),
    _deploy("surge-negative", {ROLLING: {"maxSurge": -1}}, f"{ROLLING}.maxSurge", INV),
    _deploy("surge-not-percent", {ROLLING: {"maxSurge": "25"}}, f"{ROLLING}.maxSurge", INV),
    _deploy("unavailable-over-100", {ROLLING: {"maxUnavailable": "101%"}}, f"{ROLLING}.maxUnavailable", INV),
    _deploy("strategy-unknown", {"spec.strategy.type": "BlueGreen"}, "spec.strategy.type", NSUP),
    _deploy("recreate-with-rolling", {"spec.strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}},
            f"{ROLLING}", FORB),
    _deploy("history-negative", {"spec.revisionHistoryLimit": -1}, "spec.revisionHistoryLimit", INV),
    _deploy("deadline-not-above-min-ready", {"spec.minReadySeconds": 30, "spec.progressDeadlineSeconds": 30},
            "spec.progressDeadlineSeconds", INV),
    _rs("no-selector", {"spec.selector": DELETE}, "spec.selector", REQ),
    _rs("selector-not-matching", {"spec.selector": {"matchLabels": {"app": "db"}}},
        "spec.template.metadata.labels", INV),
    _rs("replicas-negative", {"spec.replicas": -2}, "spec.replicas", INV),
    _rs("min-ready-negative", {"spec.minReadySeconds": -1}, "spec.minReadySeconds", INV),
    InvalidCase("configmap-key-slash", R.CONFIG_MAPS, _edit(CONFIG_MAP, {"data": {"a/b": "x"}}), "data[a/b]", INV),
    InvalidCase("configmap-key-in-both", R.CONFIG_MAPS, _edit(CONFIG_MAP, {"binaryData": {"a.conf": "AAEC"}}),
                "binaryData[a.conf]", INV),
]
