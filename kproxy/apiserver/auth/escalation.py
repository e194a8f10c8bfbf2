"""RBAC escalation prevention, as kube-apiserver's policy-based RBAC storage: nobody grants a
permission they do not hold.

- Creating or updating a Role/ClusterRole is allowed when the user holds every permission its
  rules grant in that namespace (cluster-wide for a ClusterRole), or may `escalate` it.
- Creating or updating a RoleBinding/ClusterRoleBinding is allowed when the user holds every
  permission of the referenced role in the binding's namespace, or may `bind` that role
  (a `bind` rule may list resourceNames).
- Members of system:masters are never checked.

Coverage is decided per permission: each granted rule is broken down into one verb x one API
group x one resource (x one name) or one verb x one non-resource URL, and each piece must be
covered by a rule the user holds (wildcards, `*/sub`, resourceNames and URL prefixes `/x/*`,
as upstream). The refusal is 403 Forbidden with upstream's message: `user "u"
(groups=[...]) is attempting to grant RBAC permissions not currently held:` and one line per
missing permission."""
from __future__ import annotations

from typing import Any, Iterable

from kproxy.api import resources as R
from kproxy.api import status as st
from kproxy.apiserver.auth.attributes import RequestAttributes
from kproxy.apiserver.auth.identity import UserInfo
from kproxy.apiserver.auth.rbac import RBACAuthorizer

ROLE_KINDS = (R.ROLES, R.CLUSTER_ROLES)
BINDING_KINDS = (R.ROLE_BINDINGS, R.CLUSTER_ROLE_BINDINGS)
_FIELDS = ("apiGroups", "resources", "nonResourceURLs", "resourceNames", "verbs")  # upstream's order


def _strings(value: Any) -> list[str]:
    """A rule field as a list of strings; anything malformed counts as empty (validation
    reports it)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def breakdown(rule: Any) -> list[dict[str, list[str]]]:
    """One rule as single permissions: one verb and one group/resource/name, or one verb and
    one non-resource URL (pure)."""
    if not isinstance(rule, dict):
        return []
    verbs = _strings(rule.get("verbs"))
    out: list[dict[str, list[str]]] = []
    for group in _strings(rule.get("apiGroups")):
        for resource in _strings(rule.get("resources")):
            for verb in verbs:
                names = _strings(rule.get("resourceNames"))
                if names:
                    out.extend({"apiGroups": [group], "resources": [resource], "resourceNames": [n],
                                "verbs": [verb]} for n in names)
                else:
                    out.append({"apiGroups": [group], "resources": [resource], "verbs": [verb]})
    for url in _strings(rule.get("nonResourceURLs")):
        out.extend({"nonResourceURLs": [url], "verbs": [verb]} for verb in verbs)
    return out


def _resource_covers(owned: list[str], resource: str) -> bool:
    if "*" in owned or resource in owned:
        return True
    _, slash, sub = resource.partition("/")
    return bool(slash) and f"*/{sub}" in owned


def _url_covers(owned: list[str], url: str) -> bool:
    return any(p == "*" or p == url or (p.endswith("*") and url.startswith(p[:-1])) for p in owned)


def rule_covers(owner: Any, piece: dict[str, list[str]]) -> bool:
    """Whether a held rule covers one broken-down permission (pure; upstream's ruleCovers)."""
    if not isinstance(owner, dict):
        return False
    verbs = _strings(owner.get("verbs"))
    if "*" not in verbs and piece["verbs"][0] not in verbs:
        return False
    if "nonResourceURLs" in piece:
        return _url_covers(_strings(owner.get("nonResourceURLs")), piece["nonResourceURLs"][0])
    groups = _strings(owner.get("apiGroups"))
    if "*" not in groups and piece["apiGroups"][0] not in groups:
        return False
    if not _resource_covers(_strings(owner.get("resources")), piece["resources"][0]):
        return False
    owned_names = _strings(owner.get("resourceNames"))
    return not owned_names or ("resourceNames" in piece and piece["resourceNames"][0] in owned_names)


def missing_permissions(held: Iterable[Any], granted: Iterable[Any]) -> list[dict[str, list[str]]]:
    """The granted permissions no held rule covers, compacted: pieces that differ only in
    their verb become one rule (pure)."""
    held = list(held)
    merged: dict[tuple, dict[str, list[str]]] = {}
    for rule in granted:
        for piece in breakdown(rule):
            if any(rule_covers(owner, piece) for owner in held):
                continue
            key = tuple(tuple(piece.get(f, ())) for f in _FIELDS[:4])
            entry = merged.setdefault(key, {**{f: piece[f] for f in _FIELDS[:4] if f in piece}, "verbs": []})
            if piece["verbs"][0] not in entry["verbs"]:
                entry["verbs"].append(piece["verbs"][0])
    return list(merged.values())


def _go_quoted(values: Iterable[str]) -> str:
    """A string slice as Go's %q prints it: ["a" "b"]."""
    return "[" + " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "]"


def compact_string(rule: dict[str, list[str]]) -> str:
    """Upstream's CompactString: {APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}."""
    names = {"apiGroups": "APIGroups", "resources": "Resources", "resourceNames": "ResourceNames",
             "nonResourceURLs": "NonResourceURLs", "verbs": "Verbs"}
    parts = [f"{names[f]}:{_go_quoted(rule[f])}" for f in _FIELDS if rule.get(f)]
    return "{" + ", ".join(parts) + "}"


def escalation_message(user: UserInfo, missing: list[dict[str, list[str]]]) -> str:
    lines = sorted(compact_string(m) for m in missing)
    return (f"user {_go_quoted([user.name])[1:-1]} (groups={_go_quoted(user.groups)}) is attempting to grant "
            f"RBAC permissions not currently held:\n" + "\n".join(lines))


class EscalationGuard:
    """Checks a Role/ClusterRole/(Cluster)RoleBinding about to be written by `user` (create,
    update, or the result of a patch). Blocking (reads the RBAC snapshot): run it in an
    executor. Other kinds pass untouched."""

    def __init__(self, authorizer: RBACAuthorizer):
        self.authorizer = authorizer

    @staticmethod
    def applies_to(resource: R.Resource) -> bool:
        """Whether writes of `resource` are checked at all (others need no executor hop)."""
        return resource in ROLE_KINDS + BINDING_KINDS

    def __call__(self, user: UserInfo, resource: R.Resource, namespace: str | None, obj: Any) -> None:
        if not self.applies_to(resource) or user.is_master or not isinstance(obj, dict):
            return
        ns = (namespace or "") if resource.namespaced else ""
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        name = meta.get("name") if isinstance(meta.get("name"), str) else ""
        if resource in ROLE_KINDS:
            if self._may(user, "escalate", resource.plural, ns, name):
                return
            granted = obj.get("rules") if isinstance(obj.get("rules"), list) else []
        else:
            ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
            kind, ref_name = ref.get("kind"), ref.get("name")
            if kind not in ("Role", "ClusterRole") or not isinstance(ref_name, str):
                return  # validation refuses it (422)
            role_plural = "roles" if kind == "Role" else "clusterroles"
            if self._may(user, "bind", role_plural, ns, ref_name):
                return
            granted = self.authorizer.role_rules(kind, ref_name, ns)
            if granted is None:
                raise st.not_found(role_plural, ref_name, R.RBAC_GROUP)
        missing = missing_permissions(self.authorizer.rules_for(user, ns), granted)
        if missing:
            what = f'{resource.plural}.{resource.group} "{name}"'
            raise st.ApiError(st.status(403, "Forbidden", f"{what} is forbidden: {escalation_message(user, missing)}",
                                        kind=resource.plural, name=name or None, group=resource.group))

    def _may(self, user: UserInfo, verb: str, plural: str, namespace: str, name: str) -> bool:
        attrs = RequestAttributes(verb, "", True, R.RBAC_GROUP, plural, "", namespace, name)
        return self.authorizer.authorize(user, attrs)
