"""Bound service-account tokens (TokenRequest) and the reviews, without a server: the issuer and
the authenticator share an injected clock, so expiry is tested at any instant (upstream's
minimum duration is 10 minutes)."""
from __future__ import annotations

import base64
import json

import pytest

from kproxy.api import resources as R
from kproxy.api import status as st
from kproxy.apiserver.auth import bound_tokens, reviews
from kproxy.apiserver.auth.attributes import RequestAttributes
from kproxy.apiserver.auth.authn import TokenAuthenticator, Unauthenticated
from kproxy.apiserver.auth.identity import UserInfo
from kproxy.apiserver.auth.rbac import snapshot_from
from kproxy.apiserver.auth.tokenrequest import TokenIssuer, parse_spec
from kproxy.apiserver.auth.tokens import TokenSigner
from kproxy.pki.ca import new_key
from kproxy.store import open_store

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path):
    """A store with ns1/robot (uid sa-1) and its pod web (uid pod-1); issuer and authenticator
    on one clock."""
    with open_store(str(tmp_path)) as store:
        store.create(R.SERVICE_ACCOUNTS.store_key("robot", "ns1"),
                     {"metadata": {"name": "robot", "namespace": "ns1", "uid": "sa-1"}})
        store.create(R.PODS.store_key("web", "ns1"), {"metadata": {"name": "web", "namespace": "ns1", "uid": "pod-1"},
                                                     "spec": {"serviceAccountName": "robot"}})
        signer, clock = TokenSigner(new_key()), Clock()
        yield store, TokenIssuer(store, signer, clock), TokenAuthenticator(store, signer, clock), clock


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_token_request_claims_as_upstream(world):
    _, issuer, _, _ = world
    answer = issuer.issue("ns1", "robot", {"spec": {"expirationSeconds": 1200, "boundObjectRef": {
        "kind": "Pod", "apiVersion": "v1", "name": "web"}}})
    assert answer["kind"] == "TokenRequest" and answer["apiVersion"] == "authentication.k8s.io/v1"
    assert answer["spec"] == {"audiences": [bound_tokens.ISSUER], "expirationSeconds": 1200,
                              "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "pod-1"}}
    claims = claims_of(answer["status"]["token"])
    assert claims["iss"] == bound_tokens.ISSUER and claims["aud"] == [bound_tokens.ISSUER]
    assert claims["sub"] == "system:serviceaccount:ns1:robot"
    assert claims["iat"] == claims["nbf"] == int(T0) and claims["exp"] == int(T0) + 1200
    assert claims["kubernetes.io"] == {"namespace": "ns1", "serviceaccount": {"name": "robot", "uid": "sa-1"},
                                       "pod": {"name": "web", "uid": "pod-1"}}
    assert claims["jti"]
    assert answer["status"]["expirationTimestamp"] == "2027-01-15T08:20:00Z"  # T0 + 1200 s


def test_bound_token_expires(world):
    _, issuer, authn, clock = world
    token = issuer.issue("ns1", "robot", {"spec": {"expirationSeconds": 600}})["status"]["token"]
    user = authn.authenticate(token)
    assert user.name == "system:serviceaccount:ns1:robot" and user.uid == "sa-1"
    assert "system:serviceaccounts:ns1" in user.groups
    clock.now = T0 + 600 + bound_tokens.LEEWAY  # the last instant within the allowed skew
    authn.authenticate(token)
    clock.now += 1
    with pytest.raises(Unauthenticated, match="expired"):
        authn.authenticate(token)
    clock.now = T0 - bound_tokens.LEEWAY - 1  # issued "in the future" for this clock
    with pytest.raises(Unauthenticated, match="not valid yet"):
        authn.authenticate(token)


def test_bound_token_audiences(world):
    _, issuer, authn, _ = world
    token = issuer.issue("ns1", "robot", {"spec": {"audiences": ["vault"]}})["status"]["token"]
    with pytest.raises(Unauthenticated, match="audience"):
        authn.authenticate(token)  # not for the apiserver
    assert authn.authenticate(token, ("vault", "other")).name == "system:serviceaccount:ns1:robot"


def test_bound_token_dies_with_its_account_and_pod(world):
    store, issuer, authn, clock = world
    to_pod = {"spec": {"boundObjectRef": {"kind": "Pod", "name": "web"}}}
    bound = issuer.issue("ns1", "robot", to_pod)["status"]["token"]
    plain = issuer.issue("ns1", "robot", {})["status"]["token"]
    user = authn.authenticate(bound)
    assert dict(user.extra)[bound_tokens.EXTRA_POD_NAME] == ("web",)
    assert dict(user.extra)[bound_tokens.EXTRA_POD_UID] == ("pod-1",)
    pod_key = R.PODS.store_key("web", "ns1")
    pod = store.get(pod_key).value
    # a pod being deleted keeps its token for a grace minute past its deletionTimestamp
    store.update(pod_key, {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "2027-01-15T08:00:00Z"}})
    authn.authenticate(bound)
    clock.now = T0 + bound_tokens.DELETED_POD_GRACE + 1
    with pytest.raises(Unauthenticated, match="deleted"):
        authn.authenticate(bound)
    clock.now = T0
    store.delete(pod_key)
    store.create(pod_key, {**pod, "metadata": {**pod["metadata"], "uid": "pod-2"}})  # same name, new pod
    with pytest.raises(Unauthenticated, match="no longer exists"):
        authn.authenticate(bound)
    authn.authenticate(plain)
    sa_key = R.SERVICE_ACCOUNTS.store_key("robot", "ns1")
    store.delete(sa_key)
    store.create(sa_key, {"metadata": {"name": "robot", "namespace": "ns1", "uid": "sa-2"}})
    with pytest.raises(Unauthenticated, match="no longer exists"):
        authn.authenticate(plain)


def test_token_bound_to_a_secret_dies_with_it(world):
    store, issuer, authn, _ = world
    key = R.SECRETS.store_key("creds", "ns1")
    store.create(key, {"metadata": {"name": "creds", "namespace": "ns1", "uid": "sec-1"}, "type": "Opaque"})
    answer = issuer.issue("ns1", "robot", {"spec": {"boundObjectRef": {"kind": "Secret", "name": "creds"}}})
    assert claims_of(answer["status"]["token"])["kubernetes.io"]["secret"] == {"name": "creds", "uid": "sec-1"}
    authn.authenticate(answer["status"]["token"])
    store.delete(key)
    with pytest.raises(Unauthenticated, match="no longer exists"):
        authn.authenticate(answer["status"]["token"])


def test_token_request_refusals(world):
    store, issuer, _, _ = world
    with pytest.raises(st.ApiError) as err:
        issuer.issue("ns1", "ghost", {})
    assert err.value.code == 404
    with pytest.raises(st.ApiError) as err:
        issuer.issue("ns1", "robot", {"spec": {"boundObjectRef": {"kind": "Pod", "name": "web", "uid": "old"}}})
    assert err.value.code == 409
    store.create(R.SERVICE_ACCOUNTS.store_key("other", "ns1"),
                 {"metadata": {"name": "other", "namespace": "ns1", "uid": "sa-9"}})
    with pytest.raises(st.ApiError) as err:  # web runs as robot
        issuer.issue("ns1", "other", {"spec": {"boundObjectRef": {"kind": "Pod", "name": "web"}}})
    assert err.value.code == 400 and "different serviceaccount" in err.value.status["message"]
    with pytest.raises(st.ApiError) as err:
        issuer.issue("ns1", "robot", {"spec": {"boundObjectRef": {"kind": "Pod", "name": "gone"}}})
    assert err.value.code == 404


@pytest.mark.parametrize("spec, field", [
    ({"expirationSeconds": 599}, "spec.expirationSeconds"),
    ({"expirationSeconds": 1 << 33}, "spec.expirationSeconds"),
    ({"expirationSeconds": "1h"}, "spec.expirationSeconds"),
    ({"audiences": [""]}, "spec.audiences"),
    ({"boundObjectRef": {"kind": "Node", "name": "n"}}, "spec.boundObjectRef.kind"),
    ({"boundObjectRef": {"kind": "Pod"}}, "spec.boundObjectRef.name"),
])
def test_token_request_validation(spec, field):
    with pytest.raises(st.ApiError) as err:
        parse_spec({"spec": spec}, "robot")
    assert err.value.code == 422
    assert [c["field"] for c in err.value.status["details"]["causes"]] == [field]
    assert parse_spec({}, "robot").expiration_seconds == 3600
    with pytest.raises(st.ApiError) as err:
        parse_spec({"kind": "Pod", "apiVersion": "v1"}, "robot")
    assert err.value.code == 400


POLICY = snapshot_from(
    roles=[{"metadata": {"namespace": "ns1", "name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}],
    cluster_roles=[], cluster_role_bindings=[],
    role_bindings=[{"metadata": {"namespace": "ns1", "name": "reader"}, "subjects": [{"kind": "User", "name": "alice"}],
                    "roleRef": {"kind": "Role", "name": "reader"}}])


class PolicyAuthorizer:
    def decide(self, user: UserInfo, attrs: RequestAttributes) -> tuple[bool, str]:
        reason = POLICY.allowed_by(user, attrs)
        return reason is not None, reason or ""

    def rules_for(self, user: UserInfo, namespace: str) -> list[dict]:
        return POLICY.rules_for(user, namespace)


ALICE = UserInfo("alice", ("system:authenticated",))


def test_access_reviews():
    def ask(verb, namespace="ns1"):
        return {"spec": {"resourceAttributes": {"verb": verb, "resource": "pods", "namespace": namespace}}}
    a = PolicyAuthorizer()
    assert reviews.self_subject_access_review(a, ALICE, ask("list"))["status"] == {
        "allowed": True, "reason": 'RBAC: allowed by RoleBinding "reader/ns1" of Role "reader" to User "alice"'}
    assert reviews.self_subject_access_review(a, ALICE, ask("delete"))["status"] == {"allowed": False}
    assert reviews.self_subject_access_review(a, ALICE, ask("list", "ns2"))["status"]["allowed"] is False
    sar = {"spec": {**ask("get")["spec"], "user": "alice"}}
    assert reviews.subject_access_review(a, sar)["status"]["allowed"] is True
    bob = {"spec": {**ask("get")["spec"], "user": "bob"}}
    assert reviews.subject_access_review(a, bob)["status"]["allowed"] is False
    local = reviews.local_subject_access_review(
        a, "ns1", {"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}, "user": "alice"}})
    assert local["status"]["allowed"] is True and local["spec"]["resourceAttributes"]["namespace"] == "ns1"
    rules = reviews.self_subject_rules_review(a, ALICE, {"spec": {"namespace": "ns1"}})["status"]
    assert {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]} in rules["resourceRules"]
    assert reviews.DISCOVERY_RULE in rules["nonResourceRules"]


@pytest.mark.parametrize("review, body, code", [
    ("ssar", {"spec": {}}, 422),  # neither resourceAttributes nor nonResourceAttributes
    ("ssar", {"spec": {"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/"}}}, 422),
    ("ssar", {"spec": {"resourceAttributes": {"verb": 3}}}, 422),
    ("ssar", [], 400),
    ("ssar", {"kind": "Pod", "apiVersion": "v1"}, 400),
    ("sar", {"spec": {"resourceAttributes": {"verb": "get"}}}, 422),  # no user or group
    ("local", {"spec": {"resourceAttributes": {"verb": "get", "namespace": "other"}, "user": "u"}}, 400),
    ("local", {"spec": {"nonResourceAttributes": {"path": "/"}, "user": "u"}}, 422),
])
def test_review_refusals(review, body, code):
    a = PolicyAuthorizer()
    call = {"ssar": lambda: reviews.self_subject_access_review(a, ALICE, body),
            "sar": lambda: reviews.subject_access_review(a, body),
            "local": lambda: reviews.local_subject_access_review(a, "ns1", body)}[review]
    with pytest.raises(st.ApiError) as err:
        call()
    assert err.value.code == code


def test_token_review():
    user = UserInfo("system:serviceaccount:ns1:robot", ("system:authenticated",), "sa-1")
    good = reviews.token_review(lambda t, aud: user if t == "good" else None, ("api",), {"spec": {"token": "good"}})
    assert good["status"] == {"authenticated": True, "audiences": ["api"],
                              "user": {"username": user.name, "uid": "sa-1", "groups": ["system:authenticated"]}}
    assert good["spec"] == {"token": "good"}  # echoed, as upstream: the official client requires spec.token
    bad = reviews.token_review(lambda t, aud: None, ("api",), {"spec": {"token": "bad"}})
    assert not bad["status"].get("authenticated") and bad["status"]["error"]


def _json_values():
    from hypothesis import strategies as hs
    scalars = hs.none() | hs.booleans() | hs.integers(-2**63, 2**63 - 1) | hs.text(max_size=8)
    keys = hs.sampled_from(["spec", "kind", "apiVersion", "metadata", "resourceAttributes", "nonResourceAttributes",
                            "verb", "resource", "namespace", "user", "groups", "token", "audiences",
                            "expirationSeconds", "boundObjectRef", "name", "uid", "path"])
    return hs.recursive(scalars, lambda inner: hs.lists(inner, max_size=3) | hs.dictionaries(keys, inner, max_size=4),
                        max_leaves=12)


def test_any_body_is_an_answer_or_a_clear_refusal(world):
    """Whatever JSON a client sends, each review and the TokenRequest answer or refuse with
    400/404/409/422, never another exception (which the server would turn into a 500)."""
    from hypothesis import HealthCheck, given, settings
    _, issuer, authn, _ = world
    a = PolicyAuthorizer()
    calls = [lambda b: reviews.self_subject_access_review(a, ALICE, b),
             lambda b: reviews.self_subject_rules_review(a, ALICE, b),
             lambda b: reviews.subject_access_review(a, b),
             lambda b: reviews.local_subject_access_review(a, "ns1", b),
             lambda b: reviews.self_subject_review(ALICE, b),
             lambda b: reviews.token_review(lambda t, aud: None, ("api",), b),
             lambda b: issuer.issue("ns1", "robot", b)]

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(_json_values())
    def check(body):
        for call in calls:
            for candidate in (body, {"spec": body}):
                try:
                    answer = call(candidate)
                except st.ApiError as exc:
                    assert exc.code in (400, 404, 409, 422), exc
                else:
                    assert isinstance(answer, dict) and answer["kind"]
    check()
