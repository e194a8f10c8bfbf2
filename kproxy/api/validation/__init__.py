"""Object validation as kube-apiserver's pkg/apis/core/validation (and discovery, coordination)
does it for the kinds kproxy serves.

`validate(resource, obj, old=None)` returns Status causes, one per problem:
    {"reason": "FieldValueInvalid", "field": "spec.ports[0].port",
     "message": "Invalid value: 70000: must be between 1 and 65535, inclusive"}
The message is Kubernetes' "error body" (`<type>: <value>: <detail>`), so the apiserver's
"<Kind> "<name>" is invalid: <field>: <message>, ..." text reads as kube-apiserver's does.
An empty list means valid. With `old` the object is checked as an update (immutable fields).
Validation runs after defaulting; it never raises on any JSON input, including wrong types
(those are reported as FieldValueTypeInvalid).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from kproxy.api import names
from kproxy.api.resources import Resource
from kproxy.api.validation.common import NameCheck, check_metadata
from kproxy.api.validation.batch import validate_cron_job, validate_job
from kproxy.api.validation.endpoints import validate_endpoint_slice, validate_endpoints
from kproxy.api.validation.errors import (  # noqa: F401  (re-exported reasons)
    DUPLICATE, FORBIDDEN, INVALID, NOT_FOUND, NOT_SUPPORTED, REQUIRED, TOO_LONG, TOO_MANY, TYPE_INVALID, Cause,
    FieldErrors,
)
from kproxy.api.validation.other_kinds import (
    validate_event, validate_lease, validate_namespace, validate_node, validate_resource_quota, validate_secret,
    validate_service_account,
)
from kproxy.api.validation.pod import validate_pod
from kproxy.api.validation.rbac import (
    check_rbac_name, validate_cluster_role, validate_cluster_role_binding, validate_role, validate_role_binding,
)
from kproxy.api.validation.service import validate_service
from kproxy.api.validation.workloads import (
    validate_config_map, validate_deployment, validate_replica_set, validate_replication_controller,
)
from kproxy.api.validation.policy import validate_pod_disruption_budget
from kproxy.api.validation.set_workloads import (
    validate_controller_revision, validate_daemon_set, validate_stateful_set,
)

KindValidator = Callable[[FieldErrors, dict[str, Any], "dict[str, Any] | None"], None]

# kind -> (metadata.name check, kind-specific validator)
_KINDS: dict[str, tuple[NameCheck, KindValidator]] = {
    "Service": (names.check_dns1035_label, validate_service),
    "Pod": (names.check_dns1123_subdomain, validate_pod),
    "EndpointSlice": (names.check_dns1123_subdomain, validate_endpoint_slice),
    "Endpoints": (names.check_dns1123_subdomain, validate_endpoints),
    "Namespace": (names.check_dns1123_label, validate_namespace),
    "Node": (names.check_dns1123_subdomain, validate_node),
    "ServiceAccount": (names.check_dns1123_subdomain, validate_service_account),
    "ResourceQuota": (names.check_dns1123_subdomain, validate_resource_quota),
    "Event": (names.check_dns1123_subdomain, validate_event),
    "Lease": (names.check_dns1123_subdomain, validate_lease),
    "Secret": (names.check_dns1123_subdomain, validate_secret),
    "ConfigMap": (names.check_dns1123_subdomain, validate_config_map),
    "Deployment": (names.check_dns1123_subdomain, validate_deployment),
    "ReplicaSet": (names.check_dns1123_subdomain, validate_replica_set),
    "ReplicationController": (names.check_dns1123_subdomain, validate_replication_controller),
    "PodDisruptionBudget": (names.check_dns1123_subdomain, validate_pod_disruption_budget),
    "Job": (names.check_dns1123_subdomain, validate_job),
    "CronJob": (names.check_dns1123_subdomain, validate_cron_job),
    "DaemonSet": (names.check_dns1123_subdomain, validate_daemon_set),
    "StatefulSet": (names.check_dns1123_subdomain, validate_stateful_set),
    "ControllerRevision": (names.check_dns1123_subdomain, validate_controller_revision),
    # RBAC names are path segments only (kube-apiserver's ValidateRBACName)
    "Role": (check_rbac_name, validate_role),
    "ClusterRole": (check_rbac_name, validate_cluster_role),
    "RoleBinding": (check_rbac_name, validate_role_binding),
    "ClusterRoleBinding": (check_rbac_name, validate_cluster_role_binding),
}


def validate(resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[Cause]:
    """Status causes for everything wrong with `obj` (empty list = valid); `old` = update."""
    e = FieldErrors()
    if not isinstance(obj, Mapping):
        e.type_invalid("", obj, "must be of type object")
        return e.causes
    if old is not None and not isinstance(old, Mapping):
        old = None
    name_check, kind_validator = _KINDS.get(resource.kind, (names.check_dns1123_subdomain, None))
    check_metadata(e, resource, dict(obj), name_check, dict(old) if old is not None else None)
    if kind_validator is not None:
        kind_validator(e, dict(obj), dict(old) if old is not None else None)
    return e.causes


def describe(causes: list[Cause]) -> str:
    """One line joining causes as kube-apiserver's Invalid message does: "field: message, ..."."""
    return ", ".join(f"{c['field']}: {c['message']}" for c in causes)

