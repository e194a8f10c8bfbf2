"""Schema of ConfigMaps, the apps/v1 workloads and autoscaling/v1 Scale, in the terms of
kproxy.apiserver.schema (which merges these into its DEFINITIONS)."""
from __future__ import annotations

from kproxy.apiserver.schema import (
    BOOL, CORE, INT, INT64, INT_OR_STR, META, STR, STRS, TIME, ListOf, MapOf, Ref, Scalar, Struct, _merge_list,
)

APPS = "io.k8s.api.apps.v1."
AUTOSCALING = "io.k8s.api.autoscaling.v1."
LABEL_SELECTOR = "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"


def _condition(name: str) -> Struct:
    fields = {"type": STR, "status": STR, "lastTransitionTime": TIME, "reason": STR, "message": STR}
    if name == "DeploymentCondition":
        fields["lastUpdateTime"] = TIME
    return Struct(fields, required=("type", "status"))


DEFINITIONS: dict[str, Struct] = {
    CORE + "ConfigMap": Struct({"data": MapOf(STR), "binaryData": MapOf(Scalar("string", "byte")),
                                "immutable": BOOL}),
    CORE + "PodTemplateSpec": Struct({"metadata": Ref(META), "spec": Ref(CORE + "PodSpec")}),
    LABEL_SELECTOR: Struct({
        "matchLabels": MapOf(STR),
        "matchExpressions": ListOf(Ref(LABEL_SELECTOR + "Requirement")),
    }),
    LABEL_SELECTOR + "Requirement": Struct({"key": STR, "operator": STR, "values": STRS},
                                           required=("key", "operator")),
    APPS + "ReplicaSet": Struct({"spec": Ref(APPS + "ReplicaSetSpec"), "status": Ref(APPS + "ReplicaSetStatus")}),
    APPS + "ReplicaSetSpec": Struct({
        "replicas": INT, "minReadySeconds": INT, "selector": Ref(LABEL_SELECTOR),
        "template": Ref(CORE + "PodTemplateSpec"),
    }, required=("selector",)),
    APPS + "ReplicaSetStatus": Struct({
        "replicas": INT, "fullyLabeledReplicas": INT, "readyReplicas": INT, "availableReplicas": INT,
        "terminatingReplicas": INT, "observedGeneration": INT64,
        "conditions": _merge_list(Ref(APPS + "ReplicaSetCondition"), "type"),
    }, required=("replicas",)),
    APPS + "ReplicaSetCondition": _condition("ReplicaSetCondition"),
    APPS + "Deployment": Struct({"spec": Ref(APPS + "DeploymentSpec"), "status": Ref(APPS + "DeploymentStatus")}),
    APPS + "DeploymentSpec": Struct({
        "replicas": INT, "selector": Ref(LABEL_SELECTOR), "template": Ref(CORE + "PodTemplateSpec"),
        "strategy": Ref(APPS + "DeploymentStrategy"), "minReadySeconds": INT, "revisionHistoryLimit": INT,
        "paused": BOOL, "progressDeadlineSeconds": INT,
    }, required=("selector", "template")),
    APPS + "DeploymentStrategy": Struct({"type": STR, "rollingUpdate": Ref(APPS + "RollingUpdateDeployment")}),
    APPS + "RollingUpdateDeployment": Struct({"maxUnavailable": INT_OR_STR, "maxSurge": INT_OR_STR}),
    APPS + "DeploymentStatus": Struct({
        "observedGeneration": INT64, "replicas": INT, "updatedReplicas": INT, "readyReplicas": INT,
        "availableReplicas": INT, "unavailableReplicas": INT, "terminatingReplicas": INT,
        "conditions": _merge_list(Ref(APPS + "DeploymentCondition"), "type"), "collisionCount": INT,
    }),
    APPS + "DeploymentCondition": _condition("DeploymentCondition"),
    AUTOSCALING + "Scale": Struct({"metadata": Ref(META), "spec": Ref(AUTOSCALING + "ScaleSpec"),
                                   "status": Ref(AUTOSCALING + "ScaleStatus")}),
    AUTOSCALING + "ScaleSpec": Struct({"replicas": INT}),
    AUTOSCALING + "ScaleStatus": Struct({"replicas": INT, "selector": STR}, required=("replicas",)),
}
