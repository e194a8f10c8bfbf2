"""Schema of the apps/v1 DaemonSet, StatefulSet and ControllerRevision, in the terms of
kproxy.apiserver.schema (which merges these into its DEFINITIONS)."""
from __future__ import annotations

from kproxy.apiserver.schema import CORE, INT, INT64, INT_OR_STR, OPEN, STR, TIME, Ref, Struct, _merge_list
from kproxy.apiserver.schema_workloads import APPS, LABEL_SELECTOR


def _condition() -> Struct:
    return Struct({"type": STR, "status": STR, "lastTransitionTime": TIME, "reason": STR, "message": STR},
                  required=("type", "status"))


DEFINITIONS: dict[str, Struct] = {
    APPS + "DaemonSet": Struct({"spec": Ref(APPS + "DaemonSetSpec"), "status": Ref(APPS + "DaemonSetStatus")}),
    APPS + "DaemonSetSpec": Struct({
        "selector": Ref(LABEL_SELECTOR), "template": Ref(CORE + "PodTemplateSpec"),
        "updateStrategy": Ref(APPS + "DaemonSetUpdateStrategy"), "minReadySeconds": INT, "revisionHistoryLimit": INT,
    }, required=("selector", "template")),
    APPS + "DaemonSetUpdateStrategy": Struct({"type": STR, "rollingUpdate": Ref(APPS + "RollingUpdateDaemonSet")}),
    APPS + "RollingUpdateDaemonSet": Struct({"maxUnavailable": INT_OR_STR, "maxSurge": INT_OR_STR}),
    APPS + "DaemonSetStatus": Struct({
        "currentNumberScheduled": INT, "numberMisscheduled": INT, "desiredNumberScheduled": INT, "numberReady": INT,
        "observedGeneration": INT64, "updatedNumberScheduled": INT, "numberAvailable": INT, "numberUnavailable": INT,
        "collisionCount": INT, "conditions": _merge_list(Ref(APPS + "DaemonSetCondition"), "type"),
    }, required=("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady")),
    APPS + "DaemonSetCondition": _condition(),
    APPS + "StatefulSet": Struct({"spec": Ref(APPS + "StatefulSetSpec"), "status": Ref(APPS + "StatefulSetStatus")}),
    APPS + "StatefulSetSpec": Struct({
        "replicas": INT, "selector": Ref(LABEL_SELECTOR), "template": Ref(CORE + "PodTemplateSpec"),
        "serviceName": STR, "podManagementPolicy": STR, "updateStrategy": Ref(APPS + "StatefulSetUpdateStrategy"),
        "revisionHistoryLimit": INT, "minReadySeconds": INT,
        "persistentVolumeClaimRetentionPolicy": Ref(APPS + "StatefulSetPersistentVolumeClaimRetentionPolicy"),
        "ordinals": Ref(APPS + "StatefulSetOrdinals"),
    }, required=("selector", "template")),
    APPS + "StatefulSetUpdateStrategy": Struct({
        "type": STR, "rollingUpdate": Ref(APPS + "RollingUpdateStatefulSetStrategy")}),
    APPS + "RollingUpdateStatefulSetStrategy": Struct({"partition": INT, "maxUnavailable": INT_OR_STR}),
    APPS + "StatefulSetPersistentVolumeClaimRetentionPolicy": Struct({"whenDeleted": STR, "whenScaled": STR}),
    APPS + "StatefulSetOrdinals": Struct({"start": INT}),
    APPS + "StatefulSetStatus": Struct({
        "observedGeneration": INT64, "replicas": INT, "readyReplicas": INT, "currentReplicas": INT,
        "updatedReplicas": INT, "currentRevision": STR, "updateRevision": STR, "collisionCount": INT,
        "conditions": _merge_list(Ref(APPS + "StatefulSetCondition"), "type"), "availableReplicas": INT,
    }, required=("replicas",)),
    APPS + "StatefulSetCondition": _condition(),
    APPS + "ControllerRevision": Struct({"data": OPEN, "revision": INT64}, required=("revision",)),
}
