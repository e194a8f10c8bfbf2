"""The resource types kproxy serves and consumes: one table shared by apiserver, client,
controllers and agent. A `Resource` names a REST collection; it holds no behaviour."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    status_subresource: bool = False
    scale_subresource: bool = False  # /scale speaks autoscaling/v1 Scale over spec.replicas

    @property
    def group_version(self) -> str:
        """The apiVersion string: "v1" for the core group, else "group/version"."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def collection_path(self, namespace: str | None = None) -> str:
        """REST path of the collection, namespaced when `namespace` is given."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"

    def object_path(self, name: str, namespace: str | None = None) -> str:
        return f"{self.collection_path(namespace)}/{name}"

    def store_prefix(self, namespace: str | None = None) -> str:
        """Store key prefix of this resource (ends with "/"), like kube-apiserver's /registry."""
        group = self.group or "core"
        if self.namespaced and namespace:
            return f"/registry/{group}/{self.plural}/{namespace}/"
        return f"/registry/{group}/{self.plural}/"

    def store_key(self, name: str, namespace: str | None = None) -> str:
        return self.store_prefix(namespace if self.namespaced else None) + name


NAMESPACES = Resource("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",), True)
SERVICES = Resource("", "v1", "Service", "services", "service", True, ("svc",), True)
ENDPOINTS = Resource("", "v1", "Endpoints", "endpoints", "endpoints", True, ("ep",))
PODS = Resource("", "v1", "Pod", "pods", "pod", True, ("po",), True)
NODES = Resource("", "v1", "Node", "nodes", "node", False, ("no",), True)
SERVICE_ACCOUNTS = Resource("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",))
RESOURCE_QUOTAS = Resource("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", True, ("quota",), True)
EVENTS = Resource("", "v1", "Event", "events", "event", True, ("ev",))
SECRETS = Resource("", "v1", "Secret", "secrets", "secret", True)
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True)
LEASES = Resource("coordination.k8s.io", "v1", "Lease", "leases", "lease", True)
RBAC_GROUP = "rbac.authorization.k8s.io"
ROLES = Resource(RBAC_GROUP, "v1", "Role", "roles", "role", True)
CLUSTER_ROLES = Resource(RBAC_GROUP, "v1", "ClusterRole", "clusterroles", "clusterrole", False)
ROLE_BINDINGS = Resource(RBAC_GROUP, "v1", "RoleBinding", "rolebindings", "rolebinding", True)
CLUSTER_ROLE_BINDINGS = Resource(RBAC_GROUP, "v1", "ClusterRoleBinding", "clusterrolebindings",
                                 "clusterrolebinding", False)
CONFIG_MAPS = Resource("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",))
DEPLOYMENTS = Resource("apps", "v1", "Deployment", "deployments", "deployment", True, ("deploy",), True, True)
REPLICA_SETS = Resource("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, ("rs",), True, True)
REPLICATION_CONTROLLERS = Resource("", "v1", "ReplicationController", "replicationcontrollers",
                                   "replicationcontroller", True, ("rc",), True, True)
POD_DISRUPTION_BUDGETS = Resource("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets",
                                  "poddisruptionbudget", True, ("pdb",), True)
JOBS = Resource("batch", "v1", "Job", "jobs", "job", True, (), True)
CRON_JOBS = Resource("batch", "v1", "CronJob", "cronjobs", "cronjob", True, ("cj",), True)
DAEMON_SETS = Resource("apps", "v1", "DaemonSet", "daemonsets", "daemonset", True, ("ds",), True)
STATEFUL_SETS = Resource("apps", "v1", "StatefulSet", "statefulsets", "statefulset", True, ("sts",), True, True)
CONTROLLER_REVISIONS = Resource("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", True)

ALL: tuple[Resource, ...] = (
    NAMESPACES, SERVICES, ENDPOINTS, PODS, NODES, SERVICE_ACCOUNTS, RESOURCE_QUOTAS, EVENTS,
    SECRETS, ENDPOINT_SLICES, LEASES, ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS,
    CONFIG_MAPS, DEPLOYMENTS, REPLICA_SETS,
    REPLICATION_CONTROLLERS, POD_DISRUPTION_BUDGETS,
    JOBS, CRON_JOBS,
    DAEMON_SETS, STATEFUL_SETS, CONTROLLER_REVISIONS,
)


# Create-only kinds: a POST is evaluated and answered, nothing is stored (no get, list or watch).
AUTHZ_GROUP = "authorization.k8s.io"
AUTHN_GROUP = "authentication.k8s.io"
SELF_SUBJECT_ACCESS_REVIEWS = Resource(AUTHZ_GROUP, "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
                                       "selfsubjectaccessreview", False)
SELF_SUBJECT_RULES_REVIEWS = Resource(AUTHZ_GROUP, "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews",
                                      "selfsubjectrulesreview", False)
SUBJECT_ACCESS_REVIEWS = Resource(AUTHZ_GROUP, "v1", "SubjectAccessReview", "subjectaccessreviews",
                                  "subjectaccessreview", False)
LOCAL_SUBJECT_ACCESS_REVIEWS = Resource(AUTHZ_GROUP, "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews",
                                        "localsubjectaccessreview", True)
SELF_SUBJECT_REVIEWS = Resource(AUTHN_GROUP, "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview",
                                False)
TOKEN_REVIEWS = Resource(AUTHN_GROUP, "v1", "TokenReview", "tokenreviews", "tokenreview", False)

CREATE_ONLY: tuple[Resource, ...] = (
    SELF_SUBJECT_ACCESS_REVIEWS, SELF_SUBJECT_RULES_REVIEWS, SUBJECT_ACCESS_REVIEWS, LOCAL_SUBJECT_ACCESS_REVIEWS,
    SELF_SUBJECT_REVIEWS, TOKEN_REVIEWS,
)
# serviceaccounts/token: POST answers a TokenRequest (authentication.k8s.io/v1) with a bound token
TOKEN_SUBRESOURCE = "token"
# pods/eviction: POST a policy/v1 Eviction to delete a pod within its PodDisruptionBudget
EVICTION_SUBRESOURCE = "eviction"


def create_only(group: str, version: str, plural: str) -> Resource | None:
    for r in CREATE_ONLY:
        if r.group == group and r.version == version and r.plural == plural:
            return r
    return None


def by_group_version_plural(group: str, version: str, plural: str) -> Resource | None:
    for r in ALL:
        if r.group == group and r.version == version and r.plural == plural:
            return r
    return None


def by_kind(api_version: str, kind: str) -> Resource | None:
    for r in ALL:
        if r.group_version == api_version and r.kind == kind:
            return r
    return None
