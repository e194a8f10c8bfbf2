"""The user-facing ClusterRoles kube-apiserver creates at startup: view, edit and admin, meant
for RoleBindings in a namespace (`kubectl create rolebinding dev --clusterrole=edit ...`).

Upstream builds them by aggregation (aggregate-to-view/edit/admin labels); kproxy's RBAC has no
aggregation, so each role here holds its own rules and the larger ones repeat the smaller:
- view: read the namespaced workload objects and pods/log, not Secrets;
- edit: view, plus writing them, pods/exec, pods/attach and pods/portforward (create, and get
  for the older clients), Secrets, pods/eviction;
- admin: edit, plus Roles and RoleBindings and local access reviews.
"""
from __future__ import annotations

from typing import Any

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
RBAC_GROUP = "rbac.authorization.k8s.io"

CORE_VIEW = ["pods", "pods/log", "pods/status", "replicationcontrollers", "replicationcontrollers/scale",
             "replicationcontrollers/status", "serviceaccounts", "services", "services/status", "endpoints",
             "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps", "bindings", "events",
             "limitranges", "namespaces", "namespaces/status", "resourcequotas", "resourcequotas/status"]
APPS = ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
        "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets",
        "statefulsets/scale", "statefulsets/status"]
BATCH = ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]
POD_SESSIONS = ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]

VIEW_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": CORE_VIEW, "verbs": READ},
    {"apiGroups": ["apps"], "resources": APPS, "verbs": READ},
    {"apiGroups": ["batch"], "resources": BATCH, "verbs": READ},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": READ},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets", "poddisruptionbudgets/status"], "verbs": READ},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers", "horizontalpodautoscalers/status"],
     "verbs": READ},
]

EDIT_RULES: list[dict[str, Any]] = VIEW_RULES + [
    {"apiGroups": [""], "resources": ["pods", *POD_SESSIONS], "verbs": WRITE},
    {"apiGroups": [""], "resources": [*POD_SESSIONS, "secrets", "services/proxy"], "verbs": READ},
    {"apiGroups": [""], "resources": ["pods/eviction", "serviceaccounts/token"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                                      "services", "services/proxy", "persistentvolumeclaims", "configmaps",
                                      "secrets", "endpoints"], "verbs": WRITE},
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
    {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                                          "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"],
     "verbs": WRITE},
    {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": WRITE},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": WRITE},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": WRITE},
]

ADMIN_RULES: list[dict[str, Any]] = EDIT_RULES + [
    {"apiGroups": [RBAC_GROUP], "resources": ["roles", "rolebindings"], "verbs": [*READ, *WRITE]},
    {"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]},
]


def cluster_roles(make: Any) -> list[dict[str, Any]]:
    """admin, edit and view, each made with `make(name, rules)` (policy._cluster_role)."""
    return [make("admin", ADMIN_RULES), make("edit", EDIT_RULES), make("view", VIEW_RULES)]
