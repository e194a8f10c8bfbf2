"""Validation of the RBAC kinds (rbac.authorization.k8s.io/v1), as kube-apiserver's
pkg/apis/rbac/validation: rules need verbs and either resources (with apiGroups) or
nonResourceURLs (ClusterRole only); bindings need a roleRef of the right kind (immutable) and
well-formed subjects."""
from __future__ import annotations

from typing import Any

from kproxy.api.validation.errors import FieldErrors

RBAC_GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ("Group", "ServiceAccount", "User")


def check_rbac_name(value: str) -> list[str]:
    """RBAC object names only need to be valid path segments (they hold ':', as
    system:node-proxier), as kube-apiserver's ValidateRBACName."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def _validate_rules(e: FieldErrors, obj: dict[str, Any], cluster_scoped: bool) -> None:
    for i, rule in enumerate(e.list(obj.get("rules"), "rules")):
        path = f"rules[{i}]"
        rule = e.map(rule, path)
        verbs = [e.string(v, f"{path}.verbs[{j}]") for j, v in enumerate(e.list(rule.get("verbs"), f"{path}.verbs"))]
        if not verbs:
            e.required(f"{path}.verbs", "verbs must contain at least one value")
        groups = e.list(rule.get("apiGroups"), f"{path}.apiGroups")
        resources = e.list(rule.get("resources"), f"{path}.resources")
        for field, values in (("apiGroups", groups), ("resources", resources)):
            for j, v in enumerate(values):
                e.string(v, f"{path}.{field}[{j}]")
        for j, v in enumerate(e.list(rule.get("resourceNames"), f"{path}.resourceNames")):
            e.string(v, f"{path}.resourceNames[{j}]")
        urls = e.list(rule.get("nonResourceURLs"), f"{path}.nonResourceURLs")
        for j, v in enumerate(urls):
            e.string(v, f"{path}.nonResourceURLs[{j}]")
        if urls:
            if not cluster_scoped:
                e.invalid(f"{path}.nonResourceURLs", urls, "namespaced rules cannot apply to non-resource URLs")
            if groups or resources:
                e.invalid(f"{path}.nonResourceURLs", urls, "rules cannot apply to both regular resources and non-resource URLs")
            continue
        if not resources:
            e.required(f"{path}.resources", "resource rules must supply at least one resource")
        if not groups:
            e.required(f"{path}.apiGroups", "resource rules must supply at least one api group")


def validate_role(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    _validate_rules(e, obj, cluster_scoped=False)


def validate_cluster_role(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    _validate_rules(e, obj, cluster_scoped=True)


def _validate_binding(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None, ref_kinds: tuple[str, ...]) -> None:
    ref = e.map(obj.get("roleRef"), "roleRef")
    if not ref:
        e.required("roleRef", "")
    else:
        if ref.get("apiGroup") != RBAC_GROUP:
            e.not_supported("roleRef.apiGroup", ref.get("apiGroup"), (RBAC_GROUP,))
        if ref.get("kind") not in ref_kinds:
            e.not_supported("roleRef.kind", ref.get("kind"), ref_kinds)
        if not e.string(ref.get("name"), "roleRef.name"):
            e.required("roleRef.name", "")
    if old is not None and (old.get("roleRef") or None) != (obj.get("roleRef") or None):
        e.invalid("roleRef", obj.get("roleRef"), "cannot change roleRef")
    for i, subject in enumerate(e.list(obj.get("subjects"), "subjects")):
        path = f"subjects[{i}]"
        subject = e.map(subject, path)
        kind = subject.get("kind")
        if kind not in SUBJECT_KINDS:
            e.not_supported(f"{path}.kind", kind, SUBJECT_KINDS)
        if not e.string(subject.get("name"), f"{path}.name"):
            e.required(f"{path}.name", "")
        if kind == "ServiceAccount":
            if subject.get("apiGroup"):
                e.not_supported(f"{path}.apiGroup", subject.get("apiGroup"), ("",))
            if not subject.get("namespace") and obj.get("kind") == "ClusterRoleBinding":
                e.required(f"{path}.namespace", "")
        elif kind in ("User", "Group") and subject.get("apiGroup") != RBAC_GROUP:
            e.not_supported(f"{path}.apiGroup", subject.get("apiGroup"), (RBAC_GROUP,))


def validate_role_binding(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    _validate_binding(e, obj, old, ("ClusterRole", "Role"))


def validate_cluster_role_binding(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    _validate_binding(e, obj, old, ("ClusterRole",))
