"""Pure parts of authentication and authorization: token signing, request attributes, RBAC rules."""
from __future__ import annotations

import base64
import json

import pytest

from kproxy.apiserver.auth import policy
from kproxy.apiserver.auth.attributes import request_attributes
from kproxy.apiserver.auth.authn import bearer_token, user_from_peercert
from kproxy.apiserver.auth.identity import UserInfo, service_account_user
from kproxy.apiserver.auth.rbac import rule_allows, snapshot_from
from kproxy.apiserver.auth.tokens import ServiceAccountClaims, TokenError, TokenSigner
from kproxy.pki.ca import new_key

CLAIMS = ServiceAccountClaims("ns1", "robot-token", "robot", "uid-1")


def test_token_round_trip_and_tampering():
    signer = TokenSigner(new_key())
    token = signer.sign(CLAIMS)
    assert signer.verify(token) == CLAIMS
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["kubernetes.io/serviceaccount/namespace"] = "kube-system"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError):
        signer.verify(f"{header}.{forged}.{sig}")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    with pytest.raises(TokenError):
        signer.verify(f"{header}.{payload}.{flipped}")
    with pytest.raises(TokenError):
        TokenSigner(new_key()).verify(token)  # another apiserver's key
    none_header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    with pytest.raises(TokenError):
        signer.verify(f"{none_header}.{payload}.")
    for junk in ("", "a.b", "a.b.c", "...."):
        with pytest.raises(TokenError):
            signer.verify(junk)


def test_peercert_and_bearer_parsing():
    cert = {"subject": ((("organizationName", "g1"),), (("organizationName", "g2"),), (("commonName", "u"),))}
    assert user_from_peercert(cert) == UserInfo("u", ("g1", "g2", "system:authenticated"))
    assert user_from_peercert({}) is None and user_from_peercert(None) is None
    assert bearer_token("Bearer abc") == "abc" and bearer_token("Basic abc") is None and bearer_token(None) is None


@pytest.mark.parametrize("method, path, query, verb, resource, ns, name", [
    ("GET", "/api/v1/namespaces/a/services", {}, "list", "services", "a", ""),
    ("GET", "/api/v1/services", {"watch": "true"}, "watch", "services", "", ""),
    ("GET", "/api/v1/watch/namespaces/a/services/x", {}, "watch", "services", "a", "x"),
    ("GET", "/api/v1/namespaces/a/services/x", {}, "get", "services", "a", "x"),
    ("POST", "/api/v1/namespaces/a/services", {}, "create", "services", "a", ""),
    ("PUT", "/api/v1/namespaces/a/services/x/status", {}, "update", "services", "a", "x"),
    ("PATCH", "/apis/discovery.k8s.io/v1/namespaces/a/endpointslices/s", {}, "patch", "endpointslices", "a", "s"),
    ("DELETE", "/api/v1/namespaces/a/pods", {}, "deletecollection", "pods", "a", ""),
    ("DELETE", "/api/v1/nodes/n1", {}, "delete", "nodes", "", "n1"),
])
def test_request_attributes(method, path, query, verb, resource, ns, name):
    a = request_attributes(method, path, query)
    assert (a.resource_request, a.verb, a.resource, a.namespace, a.name) == (True, verb, resource, ns, name)


def test_non_resource_paths():
    for path in ("/api", "/apis", "/version", "/openapi/v2", "/healthz", "/nonsense"):
        a = request_attributes("GET", path, {})
        assert not a.resource_request and not a.mutating


def test_rule_matching():
    rule = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["services", "pods/status"]}
    attrs = lambda *a: request_attributes(*a, {})  # noqa: E731
    assert rule_allows(rule, attrs("GET", "/api/v1/namespaces/a/services/x"))
    assert not rule_allows(rule, attrs("DELETE", "/api/v1/namespaces/a/services/x"))
    assert not rule_allows(rule, attrs("GET", "/apis/discovery.k8s.io/v1/namespaces/a/endpointslices"))
    assert rule_allows(rule, attrs("GET", "/api/v1/namespaces/a/pods/p/status"))
    assert not rule_allows(rule, attrs("GET", "/api/v1/namespaces/a/pods/p"))
    named = {"verbs": ["*"], "apiGroups": [""], "resources": ["services"], "resourceNames": ["x"]}
    assert rule_allows(named, attrs("DELETE", "/api/v1/namespaces/a/services/x"))
    assert not rule_allows(named, attrs("DELETE", "/api/v1/namespaces/a/services/y"))
    assert not rule_allows(named, attrs("GET", "/api/v1/namespaces/a/services"))  # list has no name
    assert not rule_allows(named, attrs("POST", "/api/v1/namespaces/a/services"))


def _role(ns, name, rules):
    return {"metadata": {"namespace": ns, "name": name}, "rules": rules}


def _binding(ns, role_kind, role, subjects):
    return {"metadata": {"namespace": ns, "name": f"b-{role}"}, "subjects": subjects,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role}}


def test_namespaced_role_applies_only_in_its_namespace():
    reader = [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["services"]}]
    snap = snapshot_from([_role("a", "reader", reader)], [], [
        _binding("a", "Role", "reader", [{"kind": "User", "name": "dave"}]),
        # a RoleBinding cannot use a Role of another namespace
        _binding("b", "Role", "reader", [{"kind": "User", "name": "dave"}]),
    ], [])
    dave = UserInfo("dave", ("system:authenticated",))
    assert snap.allows(dave, request_attributes("GET", "/api/v1/namespaces/a/services", {}))
    assert not snap.allows(dave, request_attributes("GET", "/api/v1/namespaces/b/services", {}))
    assert not snap.allows(dave, request_attributes("GET", "/api/v1/services", {}))
    assert not snap.allows(UserInfo("eve", ("system:authenticated",)),
                           request_attributes("GET", "/api/v1/namespaces/a/services", {}))


def test_groups_and_service_accounts_as_subjects():
    snap = snapshot_from([], [{"metadata": {"name": "view"}, "rules": [
        {"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]}]}], [
        _binding("a", "ClusterRole", "view", [{"kind": "ServiceAccount", "name": "robot"}]),
    ], [_binding("", "ClusterRole", "view", [{"kind": "Group", "name": "auditors"}])])
    get_a = request_attributes("GET", "/api/v1/namespaces/a/secrets/s", {})
    get_b = request_attributes("GET", "/api/v1/namespaces/b/secrets/s", {})
    assert snap.allows(service_account_user("a", "robot"), get_a)
    assert not snap.allows(service_account_user("a", "robot"), get_b)
    assert not snap.allows(service_account_user("b", "robot"), get_b)
    auditor = UserInfo("x", ("auditors", "system:authenticated"))
    assert snap.allows(auditor, get_b)
    assert not snap.allows(auditor, request_attributes("DELETE", "/api/v1/namespaces/b/secrets/s", {}))


def test_default_node_proxier_policy_is_read_only_for_services():
    snap = snapshot_from([], policy.cluster_roles(), [], policy.cluster_role_bindings())
    proxy = UserInfo("system:kube-proxy", ("system:authenticated",))
    for method, path, q in [("GET", "/api/v1/services", {"watch": "1"}), ("GET", "/api/v1/nodes/n1", {}),
                            ("GET", "/apis/discovery.k8s.io/v1/endpointslices", {}),
                            ("GET", "/api/v1/namespaces/a/endpoints", {}),
                            ("POST", "/api/v1/namespaces/a/events", {})]:
        assert snap.allows(proxy, request_attributes(method, path, q)), path
    for method, path in [("POST", "/api/v1/namespaces/a/services"), ("DELETE", "/api/v1/namespaces/a/services/x"),
                         ("PATCH", "/api/v1/namespaces/a/services/x"), ("GET", "/api/v1/namespaces/a/secrets"),
                         ("PUT", "/api/v1/nodes/n1/status"), ("GET", "/api/v1/namespaces/a/pods")]:
        assert not snap.allows(proxy, request_attributes(method, path, {})), (method, path)


def test_rbac_validation():
    from kproxy.api import resources as R
    from kproxy.api.validation import validate
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}
    ok_binding = {"metadata": {"name": "b", "namespace": "a"}, "roleRef": ref,
                  "subjects": [{"kind": "ServiceAccount", "name": "robot"}]}
    assert validate(R.ROLE_BINDINGS, ok_binding) == []
    assert validate(R.CLUSTER_ROLES, {"metadata": {"name": "system:x"},
                                      "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}) == []

    def fields(resource, obj, old=None):
        return {(c["reason"], c["field"]) for c in validate(resource, obj, old)}
    assert ("FieldValueNotSupported", "roleRef.kind") in fields(
        R.CLUSTER_ROLE_BINDINGS, {"metadata": {"name": "b"}, "roleRef": ref, "subjects": []})
    assert ("FieldValueInvalid", "roleRef") in fields(
        R.ROLE_BINDINGS, {**ok_binding, "roleRef": {**ref, "name": "other"}}, ok_binding)
    assert ("FieldValueNotSupported", "subjects[0].kind") in fields(
        R.ROLE_BINDINGS, {**ok_binding, "subjects": [{"kind": "Robot", "name": "x"}]})
    assert ("FieldValueInvalid", "rules[0].nonResourceURLs") in fields(
        R.ROLES, {"metadata": {"name": "r", "namespace": "a"}, "rules": [{"nonResourceURLs": ["/x"], "verbs": ["get"]}]})
    assert ("FieldValueRequired", "rules[0].verbs") in fields(
        R.ROLES, {"metadata": {"name": "r", "namespace": "a"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]})
    assert ("FieldValueInvalid", "metadata.name") in fields(R.CLUSTER_ROLES, {"metadata": {"name": "a/b"}, "rules": []})


def test_escalation_guard_applies_only_to_rbac_kinds():
    # the REST layer skips its executor hop for kinds no guard checks: this decides which
    from kproxy.api import resources as R
    from kproxy.apiserver.auth.escalation import EscalationGuard

    for kind in (R.ROLES, R.CLUSTER_ROLES, R.ROLE_BINDINGS, R.CLUSTER_ROLE_BINDINGS):
        assert EscalationGuard.applies_to(kind)
    for kind in (R.ENDPOINTS, R.SERVICES, R.NAMESPACES):
        assert not EscalationGuard.applies_to(kind)
