"""Schema of v1 ReplicationControllers and policy/v1 PodDisruptionBudgets, in the terms of
kproxy.apiserver.schema (which merges these into its DEFINITIONS)."""
from __future__ import annotations

from kproxy.apiserver.schema import CORE, INT, INT64, INT_OR_STR, STR, TIME, MapOf, Ref, Struct, _merge_list
from kproxy.apiserver.schema_workloads import LABEL_SELECTOR

POLICY = "io.k8s.api.policy.v1."
CONDITION = "io.k8s.apimachinery.pkg.apis.meta.v1.Condition"

DEFINITIONS: dict[str, Struct] = {
    CORE + "ReplicationController": Struct({"spec": Ref(CORE + "ReplicationControllerSpec"),
                                            "status": Ref(CORE + "ReplicationControllerStatus")}),
    CORE + "ReplicationControllerSpec": Struct({
        "replicas": INT, "minReadySeconds": INT, "selector": MapOf(STR, atomic=True),
        "template": Ref(CORE + "PodTemplateSpec"),
    }),
    CORE + "ReplicationControllerStatus": Struct({
        "replicas": INT, "fullyLabeledReplicas": INT, "readyReplicas": INT, "availableReplicas": INT,
        "observedGeneration": INT64,
        "conditions": _merge_list(Ref(CORE + "ReplicationControllerCondition"), "type"),
    }, required=("replicas",)),
    CORE + "ReplicationControllerCondition": Struct({
        "type": STR, "status": STR, "lastTransitionTime": TIME, "reason": STR, "message": STR,
    }, required=("type", "status")),
    POLICY + "PodDisruptionBudget": Struct({"spec": Ref(POLICY + "PodDisruptionBudgetSpec"),
                                            "status": Ref(POLICY + "PodDisruptionBudgetStatus")}),
    POLICY + "PodDisruptionBudgetSpec": Struct({
        "minAvailable": INT_OR_STR, "maxUnavailable": INT_OR_STR, "selector": Ref(LABEL_SELECTOR),
        "unhealthyPodEvictionPolicy": STR,
    }),
    POLICY + "PodDisruptionBudgetStatus": Struct({
        "observedGeneration": INT64, "disruptedPods": MapOf(TIME), "disruptionsAllowed": INT,
        "currentHealthy": INT, "desiredHealthy": INT, "expectedPods": INT,
        "conditions": _merge_list(Ref(CONDITION), "type"),
    }, required=("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods")),
    CONDITION: Struct({
        "type": STR, "status": STR, "observedGeneration": INT64, "lastTransitionTime": TIME, "reason": STR,
        "message": STR,
    }, required=("type", "status", "lastTransitionTime", "reason", "message")),
}
