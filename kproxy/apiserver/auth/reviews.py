"""Access and identity reviews, answered and never stored, as kube-apiserver's:

    SelfSubjectAccessReview   may I do this?            (`kubectl auth can-i`)
    SelfSubjectRulesReview    what may I do here?       (`kubectl auth can-i --list`)
    SubjectAccessReview       may this user do this?    (needs create subjectaccessreviews)
    LocalSubjectAccessReview  the same, in one namespace
    SelfSubjectReview         who am I?                 (`kubectl auth whoami`)
    TokenReview               whose token is this?      (needs create tokenreviews)

Each function takes the decoded body and returns the answered object (the request's spec and a
status); a malformed body is a 400 or 422 Status. Blocking (the authorizer reads the store)."""
from __future__ import annotations

from typing import Any, Callable, Protocol

from kproxy.api import resources as R
from kproxy.api import status as st
from kproxy.apiserver.auth.attributes import RequestAttributes
from kproxy.apiserver.auth.identity import UserInfo

AUTHZ_VERSION = f"{R.AUTHZ_GROUP}/v1"
AUTHN_VERSION = f"{R.AUTHN_GROUP}/v1"
# what every authenticated user may get without a rule (kube-apiserver's system:discovery and
# system:public-info-viewer roles; our authorizer allows them directly, see rbac.py)
DISCOVERY_RULE = {"verbs": ["get"], "nonResourceURLs": [
    "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz",
    "/version", "/version/"]}


class Authorizer(Protocol):
    def decide(self, user: UserInfo, attrs: RequestAttributes) -> tuple[bool, str]: ...
    def rules_for(self, user: UserInfo, namespace: str) -> list[dict]: ...


def _object(body: Any, resource: R.Resource) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise st.bad_request(f"the request body is not a {resource.kind} object")
    if body.get("kind") not in (None, "", resource.kind) or \
            body.get("apiVersion") not in (None, "", resource.group_version):
        raise st.bad_request(f"the body must be a {resource.group_version} {resource.kind}, "
                             f"not {body.get('apiVersion')} {body.get('kind')}")
    spec = body.get("spec")
    if spec is not None and not isinstance(spec, dict):
        raise st.invalid(resource.kind, "", [{"reason": "FieldValueInvalid", "field": "spec",
                                               "message": "must be an object"}], resource.group)
    return body


def _answer(resource: R.Resource, body: dict[str, Any], spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    return {"kind": resource.kind, "apiVersion": resource.group_version,
            "metadata": {**meta, "creationTimestamp": None}, "spec": spec, "status": status}


def _str(attrs: dict[str, Any], key: str, field: str, kind: str) -> str:
    value = attrs.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise st.invalid(kind, "", [{"reason": "FieldValueInvalid", "field": f"{field}.{key}",
                                     "message": "must be a string"}], R.AUTHZ_GROUP)
    return value


def request_attributes(spec: dict[str, Any], kind: str) -> RequestAttributes:
    """The attributes a review asks about: exactly one of resourceAttributes and
    nonResourceAttributes (422 otherwise, with upstream's message)."""
    res, non = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (res is None) == (non is None) or not isinstance(res if res is not None else non, dict):
        raise st.invalid(kind, "", [{"reason": "FieldValueInvalid", "field": "spec.resourceAttributes",
                                     "message": "exactly one of nonResourceAttributes or resourceAttributes "
                                                "must be specified"}], R.AUTHZ_GROUP)
    if non is not None:
        return RequestAttributes(_str(non, "verb", "spec.nonResourceAttributes", kind),
                                 _str(non, "path", "spec.nonResourceAttributes", kind))
    field = "spec.resourceAttributes"
    return RequestAttributes(_str(res, "verb", field, kind), "", True, _str(res, "group", field, kind),
                             _str(res, "resource", field, kind), _str(res, "subresource", field, kind),
                             _str(res, "namespace", field, kind), _str(res, "name", field, kind))


def _access_status(authorizer: Authorizer, user: UserInfo, attrs: RequestAttributes) -> dict[str, Any]:
    allowed, reason = authorizer.decide(user, attrs)
    return {"allowed": allowed, **({"reason": reason} if reason else {})}


def self_subject_access_review(authorizer: Authorizer, user: UserInfo, body: Any) -> dict[str, Any]:
    r = R.SELF_SUBJECT_ACCESS_REVIEWS
    body = _object(body, r)
    spec = body.get("spec") or {}
    return _answer(r, body, spec, _access_status(authorizer, user, request_attributes(spec, r.kind)))


def _subject(spec: dict[str, Any], kind: str) -> UserInfo:
    """The user a SubjectAccessReview names (groups as given: nothing is added, as upstream)."""
    name, groups, uid = spec.get("user") or "", spec.get("groups") or [], spec.get("uid") or ""
    if not isinstance(name, str) or not isinstance(uid, str) or not isinstance(groups, list) \
            or not all(isinstance(g, str) for g in groups):
        raise st.invalid(kind, "", [{"reason": "FieldValueInvalid", "field": "spec",
                                     "message": "user and uid must be strings, groups a list of strings"}],
                         R.AUTHZ_GROUP)
    if not name and not groups:
        raise st.invalid(kind, "", [{"reason": "FieldValueInvalid", "field": "spec.user",
                                     "message": "at least one of user or group must be specified"}], R.AUTHZ_GROUP)
    return UserInfo(name, tuple(groups), uid)


def subject_access_review(authorizer: Authorizer, body: Any) -> dict[str, Any]:
    r = R.SUBJECT_ACCESS_REVIEWS
    body = _object(body, r)
    spec = body.get("spec") or {}
    return _answer(r, body, spec, _access_status(authorizer, _subject(spec, r.kind), request_attributes(spec, r.kind)))


def local_subject_access_review(authorizer: Authorizer, namespace: str, body: Any) -> dict[str, Any]:
    """A SubjectAccessReview confined to the namespace of its path."""
    r = R.LOCAL_SUBJECT_ACCESS_REVIEWS
    body = _object(body, r)
    spec = body.get("spec") or {}
    attrs = request_attributes(spec, r.kind)
    if not attrs.resource_request:
        raise st.invalid(r.kind, "", [{"reason": "FieldValueInvalid", "field": "spec.nonResourceAttributes",
                                       "message": "disallowed on this kind of request"}], R.AUTHZ_GROUP)
    if attrs.namespace and attrs.namespace != namespace:
        raise st.bad_request(f"spec.resourceAttributes.namespace must match namespace: {namespace}")
    spec = {**spec, "resourceAttributes": {**spec["resourceAttributes"], "namespace": namespace}}
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    body = {**body, "metadata": {**meta, "namespace": namespace}}
    attrs = RequestAttributes(attrs.verb, "", True, attrs.api_group, attrs.resource, attrs.subresource, namespace,
                              attrs.name)
    return _answer(r, body, spec, _access_status(authorizer, _subject(spec, r.kind), attrs))


def rules_status(rules: list[dict[str, Any]]) -> dict[str, Any]:
    """SubjectRulesReviewStatus of a user's rules, the discovery paths included (pure)."""
    resource_rules, non_resource_rules = [], [DISCOVERY_RULE]
    for rule in rules:
        if rule.get("nonResourceURLs"):
            non_resource_rules.append({"verbs": list(rule.get("verbs") or []),
                                       "nonResourceURLs": list(rule["nonResourceURLs"])})
        else:
            out = {"verbs": list(rule.get("verbs") or []), "apiGroups": list(rule.get("apiGroups") or []),
                   "resources": list(rule.get("resources") or [])}
            if rule.get("resourceNames"):
                out["resourceNames"] = list(rule["resourceNames"])
            resource_rules.append(out)
    return {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": False}


def self_subject_rules_review(authorizer: Authorizer, user: UserInfo, body: Any) -> dict[str, Any]:
    r = R.SELF_SUBJECT_RULES_REVIEWS
    body = _object(body, r)
    spec = body.get("spec") or {}
    namespace = spec.get("namespace") or ""
    if not isinstance(namespace, str):
        raise st.invalid(r.kind, "", [{"reason": "FieldValueInvalid", "field": "spec.namespace",
                                       "message": "must be a string"}], R.AUTHZ_GROUP)
    return _answer(r, body, spec, rules_status(authorizer.rules_for(user, namespace)))


def user_info(user: UserInfo) -> dict[str, Any]:
    """authentication.k8s.io/v1 UserInfo of a user (pure)."""
    out: dict[str, Any] = {"username": user.name}
    if user.uid:
        out["uid"] = user.uid
    if user.groups:
        out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = {key: list(values) for key, values in user.extra}
    return out


def self_subject_review(user: UserInfo, body: Any) -> dict[str, Any]:
    r = R.SELF_SUBJECT_REVIEWS
    body = _object(body, r)
    answer = _answer(r, body, {}, {"userInfo": user_info(user)})
    del answer["spec"]  # SelfSubjectReview has no spec
    return answer


def token_review(authenticate: Callable[[str, tuple[str, ...]], UserInfo | None],
                 api_audiences: tuple[str, ...], body: Any) -> dict[str, Any]:
    """`authenticate(token, audiences)` is the user of a token valid for one of `audiences`, or
    None. Without spec.audiences the apiserver's own audiences apply, as upstream."""
    r = R.TOKEN_REVIEWS
    body = _object(body, r)
    spec = body.get("spec") or {}
    token, audiences = spec.get("token"), spec.get("audiences") or []
    if not isinstance(token, str) or not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise st.invalid(r.kind, "", [{"reason": "FieldValueInvalid", "field": "spec",
                                       "message": "token must be a string and audiences a list of strings"}],
                         R.AUTHN_GROUP)
    wanted = tuple(audiences) or api_audiences
    user = authenticate(token, wanted) if token else None
    if user is None:
        status: dict[str, Any] = {"user": {}, "error": "invalid bearer token"}
    else:
        status = {"authenticated": True, "user": user_info(user), "audiences": list(wanted)}
    return _answer(r, body, spec, status)  # the spec echoed with its token, as upstream (clients need it)
