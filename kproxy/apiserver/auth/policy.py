"""The default RBAC objects the apiserver creates at startup (existing ones are left alone, so
an operator's edits survive restarts):

- cluster-admin: everything, bound to the group system:masters (admin.kubeconfig);
- system:node-proxier: what a service proxy reads (services, endpoints, endpointslices,
  nodes: get/list/watch) and events it may write, bound to the user system:kube-proxy;
- kproxy:controllers: read everything, write what the controllers maintain, bound to the user
  system:kube-controller-manager;
- system:basic-user: the self reviews (`kubectl auth can-i`, `auth whoami`), bound to every
  authenticated user, as upstream;
- system:kube-scheduler: read pods and nodes, bind pods, write their scheduling condition,
  Events and its leader-election Lease, bound to the user system:kube-scheduler;
- system:node: what a kubelet needs (its Node and Lease, pods with status and delete, Events,
  reading services, configmaps and secrets), bound to the group system:nodes, whose members are
  the users system:node:NAME (`kproxy pki client --user system:node:N --group system:nodes`);
- admin, edit, view: for users in a namespace, as upstream (kproxy.apiserver.auth.user_roles).
"""
from __future__ import annotations

from typing import Any

from kproxy.apiserver.auth import user_roles
from kproxy.apiserver.auth.identity import AUTHENTICATED
from kproxy.pki.bootstrap import CONTROLLERS, KUBE_PROXY, SCHEDULER

RBAC_GROUP = "rbac.authorization.k8s.io"
READ = ["get", "list", "watch"]
WRITE = ["create", "update", "patch", "delete", "deletecollection"]
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}


def _cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": dict(BOOTSTRAP_LABELS)}, "rules": rules}


def _binding(name: str, role: str, subject_kind: str, subject: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": dict(BOOTSTRAP_LABELS)},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": subject_kind, "apiGroup": RBAC_GROUP, "name": subject}]}


NODE_PROXIER_RULES = [
    {"apiGroups": [""], "resources": ["services", "endpoints", "nodes"], "verbs": READ},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": READ},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
]

CONTROLLER_RULES = [
    {"apiGroups": ["*"], "resources": ["*"], "verbs": READ},
    {"apiGroups": [""], "verbs": WRITE, "resources": [
        "endpoints", "serviceaccounts", "secrets", "pods", "pods/status", "services", "services/status",
        "events", "resourcequotas", "resourcequotas/status", "nodes", "nodes/status",
        "namespaces", "namespaces/status", "namespaces/finalize", "configmaps"]},
    {"apiGroups": ["apps"], "verbs": WRITE, "resources": [
        "deployments", "deployments/status", "deployments/scale", "replicasets", "replicasets/status",
        "replicasets/scale"]},
    {"apiGroups": ["batch"], "verbs": WRITE, "resources": ["jobs", "jobs/status", "cronjobs", "cronjobs/status"]},
    {"apiGroups": ["apps"], "verbs": WRITE, "resources": [
        "daemonsets", "daemonsets/status", "statefulsets", "statefulsets/status", "controllerrevisions"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": WRITE},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": WRITE},
    {"apiGroups": [""], "verbs": WRITE, "resources": [
        "replicationcontrollers", "replicationcontrollers/status", "replicationcontrollers/scale"]},
    {"apiGroups": ["policy"], "verbs": WRITE, "resources": ["poddisruptionbudgets", "poddisruptionbudgets/status"]},
    # the namespace controller deletes everything in a namespace that is going away
    {"apiGroups": [RBAC_GROUP], "resources": ["roles", "rolebindings"], "verbs": ["delete", "deletecollection"]},
]

BASIC_USER_RULES = [
    {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
     "verbs": ["create"]},
    {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
]


SCHEDULER_RULES = [
    {"apiGroups": [""], "resources": ["pods", "nodes", "namespaces", "services", "replicationcontrollers",
                                      "persistentvolumeclaims", "persistentvolumes"], "verbs": READ},
    {"apiGroups": ["apps"], "resources": ["replicasets", "statefulsets"], "verbs": READ},
    {"apiGroups": [""], "resources": ["pods/binding", "bindings"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch", "update"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "get", "update"]},
]

NODE_RULES = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": [*READ, "create", "update", "patch"]},
    {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch", "update"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": [*READ, "delete"]},
    {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch", "update"]},
    {"apiGroups": [""], "resources": ["services", "endpoints", "configmaps", "secrets"], "verbs": READ},
    {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": [*READ, "create", "update", "patch"]},
]
NODES_GROUP = "system:nodes"


def cluster_roles() -> list[dict[str, Any]]:
    return [
        _cluster_role("cluster-admin", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                                        {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        _cluster_role("system:monitoring", [{"nonResourceURLs": ["/metrics", "/livez", "/readyz", "/healthz"],
                                             "verbs": ["get"]}]),
        _cluster_role("system:node-proxier", NODE_PROXIER_RULES),
        _cluster_role("kproxy:controllers", CONTROLLER_RULES),
        _cluster_role("system:basic-user", BASIC_USER_RULES),
        _cluster_role("system:kube-scheduler", SCHEDULER_RULES),
        _cluster_role("system:node", NODE_RULES),
        *user_roles.cluster_roles(_cluster_role),
    ]


def cluster_role_bindings() -> list[dict[str, Any]]:
    return [
        _binding("cluster-admin", "cluster-admin", "Group", "system:masters"),
        _binding("system:monitoring", "system:monitoring", "Group", "system:monitoring"),
        _binding("system:node-proxier", "system:node-proxier", "User", KUBE_PROXY.user),
        _binding("kproxy:controllers", "kproxy:controllers", "User", CONTROLLERS.user),
        _binding("system:basic-user", "system:basic-user", "Group", AUTHENTICATED),
        _binding("system:kube-scheduler", "system:kube-scheduler", "User", SCHEDULER.user),
        _binding("system:node", "system:node", "Group", NODES_GROUP),
    ]
