"""RBAC authorization over the stored Role, ClusterRole, RoleBinding and ClusterRoleBinding
objects, evaluated per request as kube-apiserver's RBAC authorizer: a request is allowed when
some binding that applies to its namespace names the user (or one of its groups, or its
service account) and the bound role has a rule matching the verb, API group, resource
(with subresource) and, when the rule lists them, the object's name. Nothing is denied
explicitly; no match means 403.

Members of system:masters are allowed everything without a lookup (as kube-apiserver)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from kproxy.api import resources as R
from kproxy.apiserver.auth.attributes import RequestAttributes
from kproxy.apiserver.auth.identity import SERVICE_ACCOUNT_PREFIX, UserInfo
from kproxy.store import base as sb


# Non-resource paths only RBAC grants (kube-apiserver's system:discovery role does not list
# them); every other non-resource path (discovery, openapi, version, probes) is open to any
# authenticated user.
GUARDED_NON_RESOURCE = ("/metrics",)


def _guarded(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in GUARDED_NON_RESOURCE)


def _url_allowed(patterns: list[str], path: str) -> bool:
    """nonResourceURLs matching: exact, or a prefix ending in "*"."""
    return any(p == path or (p.endswith("*") and path.startswith(p[:-1])) for p in patterns)


def rule_allows(rule: dict[str, Any], attrs: RequestAttributes) -> bool:
    """Whether one PolicyRule covers a request (pure)."""
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.resource_request:
        return _url_allowed(rule.get("nonResourceURLs") or [], attrs.path)
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.api_group not in groups:
        return False
    resources = rule.get("resources") or []
    wanted = attrs.resource_with_sub
    if not ("*" in resources or wanted in resources
            or (attrs.subresource and f"*/{attrs.subresource}" in resources)):
        return False
    names = rule.get("resourceNames") or []
    if names:
        # a name list never covers create, list, watch or deletecollection (no single name)
        return bool(attrs.name) and attrs.name in names
    return True


def subject_matches(subject: dict[str, Any], user: UserInfo, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return user.name == f"{SERVICE_ACCOUNT_PREFIX}{ns}:{name}"
    return False


@dataclass(frozen=True)
class PolicySnapshot:
    """The RBAC objects at one store revision, indexed for evaluation."""
    roles: dict[tuple[str, str], list[dict]]  # (namespace, name) -> rules
    cluster_roles: dict[str, list[dict]]
    role_bindings: tuple[dict, ...]
    cluster_role_bindings: tuple[dict, ...]

    def allows(self, user: UserInfo, attrs: RequestAttributes) -> bool:
        return self.allowed_by(user, attrs) is not None

    def allowed_by(self, user: UserInfo, attrs: RequestAttributes) -> str | None:
        """Why a request is allowed, in kube-apiserver's words ("RBAC: allowed by RoleBinding
        ... of Role ... to ..."); None when no binding allows it."""
        for b in self.cluster_role_bindings:
            subject = self._allowing_subject(b, "", user, attrs)
            if subject is not None:
                return _allowed_reason(b, "", subject)
        if attrs.namespace:
            for b in self.role_bindings:
                if (b.get("metadata") or {}).get("namespace") == attrs.namespace:
                    subject = self._allowing_subject(b, attrs.namespace, user, attrs)
                    if subject is not None:
                        return _allowed_reason(b, attrs.namespace, subject)
        return None

    def rules_for(self, user: UserInfo, namespace: str) -> list[dict]:
        """Every rule the user holds in `namespace` (cluster-wide only when it is "")."""
        out: list[dict] = []
        for b in self.cluster_role_bindings:
            out.extend(self._binding_rules(b, "", user))
        if namespace:
            for b in self.role_bindings:
                if (b.get("metadata") or {}).get("namespace") == namespace:
                    out.extend(self._binding_rules(b, namespace, user))
        return out

    def role_rules(self, kind: str, name: str, namespace: str) -> list[dict] | None:
        """The rules of the Role (in `namespace`) or ClusterRole a roleRef names; None if absent."""
        if kind == "ClusterRole":
            return self.cluster_roles.get(name)
        return self.roles.get((namespace, name)) if kind == "Role" and namespace else None

    def _binding_rules(self, binding: dict, namespace: str, user: UserInfo) -> list[dict]:
        if not any(subject_matches(s, user, namespace) for s in binding.get("subjects") or [] if isinstance(s, dict)):
            return []
        ref = binding.get("roleRef") or {}
        rules = self.role_rules(ref.get("kind", ""), ref.get("name", ""), namespace) or []
        return [r for r in rules if isinstance(r, dict)]

    def _allowing_subject(self, binding: dict, namespace: str, user: UserInfo,
                          attrs: RequestAttributes) -> dict | None:
        """The binding's subject that names the user, when the bound role allows the request."""
        if not any(rule_allows(r, attrs) for r in self._binding_rules(binding, namespace, user)):
            return None
        return next(s for s in binding.get("subjects") or [] if isinstance(s, dict)
                    and subject_matches(s, user, namespace))


def _allowed_reason(binding: dict, namespace: str, subject: dict) -> str:
    name, ref = (binding.get("metadata") or {}).get("name", ""), binding.get("roleRef") or {}
    what = f'RoleBinding "{name}/{namespace}"' if namespace else f'ClusterRoleBinding "{name}"'
    who = subject.get("name", "")
    if subject.get("kind") == "ServiceAccount":
        who = f'{who}/{subject.get("namespace") or namespace}'
    return f'RBAC: allowed by {what} of {ref.get("kind", "")} "{ref.get("name", "")}" to {subject.get("kind")} "{who}"'


def snapshot_from(roles: list[dict], cluster_roles: list[dict], role_bindings: list[dict],
                  cluster_role_bindings: list[dict]) -> PolicySnapshot:
    def meta(o: dict) -> dict:
        return o.get("metadata") or {}
    return PolicySnapshot(
        {(meta(r).get("namespace", ""), meta(r).get("name", "")): list(r.get("rules") or []) for r in roles},
        {meta(r).get("name", ""): list(r.get("rules") or []) for r in cluster_roles},
        tuple(role_bindings), tuple(cluster_role_bindings))


def forbidden_message(user: UserInfo, attrs: RequestAttributes) -> str:
    """kube-apiserver's wording for a denied request."""
    what = f'{attrs.resource_with_sub}' + (f' "{attrs.name}"' if attrs.name else "")
    scope = f' in the namespace "{attrs.namespace}"' if attrs.namespace else " at the cluster scope"
    return (f'{what} is forbidden: User "{user.name}" cannot {attrs.verb} resource "{attrs.resource_with_sub}" '
            f'in API group "{attrs.api_group}"{scope}')


class RBACAuthorizer:
    """Reads the RBAC objects from the store, reloading only when the store's revision moved.
    Blocking (reads the store): run it in an executor. Thread-safe."""

    def __init__(self, store: sb.Store):
        self.store = store
        self._lock = threading.Lock()
        self._snapshot: PolicySnapshot | None = None
        self._revision = -1

    def _current(self) -> PolicySnapshot:
        revision = self.store.revision
        with self._lock:
            if self._snapshot is not None and revision == self._revision:
                return self._snapshot
        lists = [[kv.value for kv in self.store.list(r.store_prefix())[0]]
                 for r in (R.ROLES, R.CLUSTER_ROLES, R.ROLE_BINDINGS, R.CLUSTER_ROLE_BINDINGS)]
        snap = snapshot_from(*lists)
        with self._lock:
            self._snapshot, self._revision = snap, revision
        return snap

    def rules_for(self, user: UserInfo, namespace: str) -> list[dict]:
        """The rules `user` holds in `namespace` ("" for cluster-wide), from the current policy."""
        return self._current().rules_for(user, namespace)

    def role_rules(self, kind: str, name: str, namespace: str) -> list[dict] | None:
        return self._current().role_rules(kind, name, namespace)

    def authorize(self, user: UserInfo, attrs: RequestAttributes) -> bool:
        return self.decide(user, attrs)[0]

    def decide(self, user: UserInfo, attrs: RequestAttributes) -> tuple[bool, str]:
        """Whether the request is allowed, and why (the reason of an access review)."""
        if user.is_master:
            return True, ""  # kube-apiserver's privileged-group authorizer gives no reason either
        if not attrs.resource_request and not _guarded(attrs.path):
            # discovery, openapi, version and health: every authenticated user (system:discovery)
            return user.authenticated, ""
        reason = self._current().allowed_by(user, attrs)
        return reason is not None, reason or ""
