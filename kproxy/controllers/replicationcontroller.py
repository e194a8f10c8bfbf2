"""ReplicationController controller: the ReplicaSet controller over v1 ReplicationControllers,
as kube-controller-manager runs its replicaset controller for them. An RC is a ReplicaSet whose
selector is a plain label map (kproxy.api.selectors.of_workload reads both forms) and whose
status has no terminatingReplicas; everything else is replicaset.py's."""
from __future__ import annotations

from kproxy.api.resources import REPLICATION_CONTROLLERS
from kproxy.controllers.replicaset import ReplicaSetController


class ReplicationControllerController(ReplicaSetController):
    name = "replicationcontroller"
    owner = REPLICATION_CONTROLLERS
    component = "replication-controller"
    status_fields_absent = ("terminatingReplicas",)
