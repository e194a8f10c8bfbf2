"""Issue 17 item 6 with the real kubectl and the official client: `auth can-i` (incl. --list),
`auth whoami`, `create token` and its bound token used with --token, SubjectAccessReview,
TokenReview and SelfSubjectReview; the serviceaccount controller no longer creates legacy
token Secrets. Expiry itself is tested with an injected clock in
tests/security/test_bound_tokens.py (upstream's minimum duration is 10 minutes)."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import time

import pytest
from kubernetes import client, config

from kproxy.apiserver.auth.tokens import TokenSigner
from tests.apiserver.test_kubectl import KUBECTL, Kubectl, wait_until

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine"),
]
SA_TOKEN = "kubernetes.io/service-account-token"


@pytest.fixture(scope="module")
def server_args() -> list[str]:
    return []  # the default apiserver: controllers on


@pytest.fixture(scope="module")
def admin(server):
    return Kubectl(server.kubeconfig)


def as_token(server, token: str, *args: str) -> subprocess.CompletedProcess:
    """kubectl with only a bearer token (no client certificate)."""
    return subprocess.run([KUBECTL, "--kubeconfig", os.devnull, "--server", server.url, "--certificate-authority",
                           str(server.data_dir / "pki" / "ca.crt"), "--token", token, *args],
                          capture_output=True, text=True, timeout=120)


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


RBAC = "rbac.authorization.k8s.io/v1"


def grant(admin: Kubectl, ns: str | None, rules: list[dict], subject: dict) -> None:
    """A (Cluster)Role with `rules` bound to `subject`, applied one by one (`kubectl create role`
    needs protobuf for RBAC kinds and a `kind: List` needs /openapi/v2 protobuf: issue 17 items
    1 and 2)."""
    kind = "Role" if ns else "ClusterRole"
    name = f"{subject['name']}-role" if ns else f"{subject['name']}-{subject.get('namespace')}"
    meta = {"name": name, **({"namespace": ns} if ns else {})}
    for obj in ({"apiVersion": RBAC, "kind": kind, "metadata": meta, "rules": rules},
                {"apiVersion": RBAC, "kind": f"{kind}Binding", "metadata": meta, "subjects": [subject],
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}}):
        admin("apply", "-f", "-", stdin=json.dumps(obj))


def namespace_with_reader(admin: Kubectl, ns: str) -> None:
    """Namespace `ns` with a ServiceAccount robot that may get and list pods there."""
    admin("create", "namespace", ns)
    admin("-n", ns, "create", "serviceaccount", "robot")
    grant(admin, ns, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
          {"kind": "ServiceAccount", "name": "robot", "namespace": ns})


def test_create_token_and_use_it(server, admin):
    namespace_with_reader(admin, "tokens")
    token = admin("-n", "tokens", "create", "token", "robot", "--duration=15m").strip()
    c = claims(token)
    assert c["sub"] == "system:serviceaccount:tokens:robot" and c["exp"] - c["iat"] == 900
    assert c["kubernetes.io"]["serviceaccount"]["name"] == "robot"
    listed = as_token(server, token, "-n", "tokens", "get", "pods")
    assert listed.returncode == 0, listed.stderr
    refused = as_token(server, token, "-n", "tokens", "create", "serviceaccount", "intruder")
    assert refused.returncode != 0 and "forbidden" in refused.stderr
    who = as_token(server, token, "auth", "whoami", "-o", "json")
    assert who.returncode == 0, who.stderr
    info = json.loads(who.stdout)["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:tokens:robot"
    assert "system:serviceaccounts:tokens" in info["groups"] and info["uid"]
    # for another audience: not valid at the apiserver
    other = admin("-n", "tokens", "create", "token", "robot", "--audience=vault").strip()
    assert claims(other)["aud"] == ["vault"]
    assert "Unauthorized" in as_token(server, other, "-n", "tokens", "get", "pods").stderr
    # below upstream's minimum duration, or for an account that does not exist
    short = subprocess.run([KUBECTL, "-n", "tokens", "create", "token", "robot", "--duration=5m"],
                           capture_output=True, text=True, env=admin.env, timeout=120)
    assert short.returncode != 0 and "may not specify a duration less than 10 minutes" in short.stderr
    ghost = subprocess.run([KUBECTL, "-n", "tokens", "create", "token", "ghost"], capture_output=True, text=True,
                           env=admin.env, timeout=120)
    assert ghost.returncode != 0 and 'serviceaccounts "ghost" not found' in ghost.stderr
    # deleting the account revokes its tokens: 401
    admin("-n", "tokens", "delete", "serviceaccount", "robot")
    assert "Unauthorized" in as_token(server, token, "-n", "tokens", "get", "pods").stderr


def test_expired_token_is_refused(server, admin):
    """A bound token past its exp (signed here with the server's own key, since TokenRequest
    will not issue one shorter than 10 minutes) is 401 for kubectl; the same token still
    within its lifetime works."""
    namespace_with_reader(admin, "expiry")
    issued = claims(admin("-n", "expiry", "create", "token", "robot").strip())
    signer = TokenSigner.from_pem((server.data_dir / "pki" / "sa.key").read_bytes())

    def token(iat: int, exp: int) -> str:
        return signer.sign_payload({**issued, "iat": iat, "nbf": iat, "exp": exp})
    now = int(time.time())
    fresh = as_token(server, token(now, now + 3600), "-n", "expiry", "get", "pods")
    assert fresh.returncode == 0, fresh.stderr
    # past exp by more than the 60 s of allowed clock skew
    expired = as_token(server, token(now - 7200, now - 3600), "-n", "expiry", "get", "pods")
    assert expired.returncode != 0 and "Unauthorized" in expired.stderr, expired
    early = as_token(server, token(now + 3600, now + 7200), "-n", "expiry", "get", "pods")
    assert early.returncode != 0 and "Unauthorized" in early.stderr, early


def test_token_bound_to_a_pod_dies_with_it(server, admin):
    namespace_with_reader(admin, "bound")
    admin("-n", "bound", "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"serviceAccountName": "robot", "nodeName": "node-1", "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": "echo"}]}}))
    uid = admin.json("-n", "bound", "get", "pod", "web")["metadata"]["uid"]
    token = admin("-n", "bound", "create", "token", "robot", "--bound-object-kind=Pod", "--bound-object-name=web",
                  f"--bound-object-uid={uid}").strip()
    assert claims(token)["kubernetes.io"]["pod"] == {"name": "web", "uid": uid}
    who = json.loads(as_token(server, token, "auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert who["extra"]["authentication.kubernetes.io/pod-name"] == ["web"]
    assert as_token(server, token, "-n", "bound", "get", "pods").returncode == 0
    admin("-n", "bound", "delete", "pod", "web", "--grace-period=0", "--force", allow_warnings=True)
    wait_until(lambda: "Unauthorized" in as_token(server, token, "-n", "bound", "get", "pods").stderr,
               "the pod-bound token to be refused once its pod is gone")


def can_i(env_or_token, server, *args: str) -> str:
    """`kubectl auth can-i` output ("yes"/"no"; its exit code says the same)."""
    if isinstance(env_or_token, Kubectl):
        proc = subprocess.run([KUBECTL, "auth", "can-i", *args], capture_output=True, text=True,
                              env=env_or_token.env, timeout=120)
    else:
        proc = as_token(server, env_or_token, "auth", "can-i", *args)
    assert proc.returncode in (0, 1) and "warning" not in proc.stderr.lower(), proc.stderr
    assert (proc.returncode == 0) == proc.stdout.startswith("yes"), proc
    return proc.stdout.strip()


def test_auth_can_i_and_list(server, admin):
    namespace_with_reader(admin, "cani")
    token = admin("-n", "cani", "create", "token", "robot").strip()
    assert can_i(admin, server, "delete", "pods", "-n", "kube-system") == "yes"
    assert can_i(admin, server, "*", "*") == "yes"
    assert can_i(token, server, "list", "pods", "-n", "cani") == "yes"
    assert can_i(token, server, "delete", "pods", "-n", "cani") == "no"
    assert can_i(token, server, "list", "pods", "-n", "default") == "no"
    assert can_i(token, server, "get", "/api") == "yes"  # discovery: every authenticated user
    assert can_i(token, server, "get", "/metrics") == "no"
    # --as goes through impersonation, then the review answers for the impersonated user
    assert can_i(admin, server, "list", "pods", "-n", "cani", "--as=system:serviceaccount:cani:robot") == "yes"
    proc = as_token(server, token, "auth", "can-i", "--list", "-n", "cani")
    assert proc.returncode == 0 and "warning" not in proc.stderr.lower(), proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert rows[0][:2] == ["Resources", "Non-Resource"]
    assert ["pods", "[]", "[]", "[get", "list]"] in rows
    assert ["selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]"] in rows
    assert not any(r[0] == "pods" and "delete" in " ".join(r) for r in rows)


def test_whoami_as_admin(admin):
    out = admin("auth", "whoami")
    assert "kubernetes-admin" in out and "system:masters" in out


def test_discovery_lists_the_create_only_kinds(admin):
    out = admin("api-resources", "--api-group=authorization.k8s.io", "-o", "wide")
    for kind in ("SelfSubjectAccessReview", "SelfSubjectRulesReview", "SubjectAccessReview",
                 "LocalSubjectAccessReview"):
        line = next(line for line in out.splitlines() if kind in line.split())
        assert line.split()[-1] == "create", line
    out = admin("api-resources", "--api-group=authentication.k8s.io")
    assert "SelfSubjectReview" in out and "TokenReview" in out
    core = json.loads(admin("get", "--raw", "/api/v1"))
    token = next(r for r in core["resources"] if r["name"] == "serviceaccounts/token")
    assert token["kind"] == "TokenRequest" and token["group"] == "authentication.k8s.io"
    assert token["verbs"] == ["create"]
    proc = subprocess.run([KUBECTL, "get", "selfsubjectaccessreviews"], capture_output=True, text=True,
                          env=admin.env, timeout=120)
    assert proc.returncode != 0 and "MethodNotAllowed" in proc.stderr, proc.stderr  # create-only: no list


@pytest.fixture(scope="module")
def api(server):
    cfg = client.Configuration()
    config.load_kube_config(config_file=server.kubeconfig, client_configuration=cfg)
    with client.ApiClient(cfg) as api_client:
        yield api_client


def test_official_client_reviews(admin, api):
    namespace_with_reader(admin, "reviews")
    authz, authn = client.AuthorizationV1Api(api), client.AuthenticationV1Api(api)
    attrs = client.V1ResourceAttributes(namespace="reviews", verb="list", resource="pods")
    sar = authz.create_subject_access_review(client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user="system:serviceaccount:reviews:robot", resource_attributes=attrs)))
    assert sar.status.allowed is True
    assert sar.status.reason == \
        'RBAC: allowed by RoleBinding "robot-role/reviews" of Role "robot-role" to ServiceAccount "robot/reviews"'
    denied = authz.create_subject_access_review(client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user="nobody", groups=["nobodies"], resource_attributes=attrs)))
    assert denied.status.allowed is False
    get_pods = client.V1ResourceAttributes(verb="get", resource="pods")
    local = authz.create_namespaced_local_subject_access_review("reviews", client.V1LocalSubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(user="system:serviceaccount:reviews:robot",
                                              resource_attributes=get_pods)))
    assert local.status.allowed is True and local.spec.resource_attributes.namespace == "reviews"
    ssar = authz.create_self_subject_access_review(client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(non_resource_attributes=client.V1NonResourceAttributes(
            path="/metrics", verb="get"))))
    assert ssar.status.allowed is True
    me = authn.create_self_subject_review(client.V1SelfSubjectReview())
    assert me.status.user_info.username == "kubernetes-admin"
    token = client.CoreV1Api(api).create_namespaced_service_account_token(
        "robot", "reviews", client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=["vault"], expiration_seconds=3600)))
    assert token.status.token and token.spec.audiences == ["vault"]
    review = authn.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(
        token=token.status.token, audiences=["vault"])))
    assert review.status.authenticated and review.status.user.username == "system:serviceaccount:reviews:robot"
    assert review.status.audiences == ["vault"]
    wrong = authn.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token.status.token)))
    assert not wrong.status.authenticated and wrong.status.error  # not for the apiserver's audience


def test_subject_access_review_needs_rbac(server, admin):
    namespace_with_reader(admin, "sarperm")
    token = admin("-n", "sarperm", "create", "token", "robot").strip()
    body = json.dumps({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                       "spec": {"user": "x", "resourceAttributes": {"verb": "get", "resource": "pods"}}})
    proc = subprocess.run([KUBECTL, "--kubeconfig", os.devnull, "--server", server.url, "--certificate-authority",
                           str(server.data_dir / "pki" / "ca.crt"), "--token", token, "create", "-f", "-", "-o", "json",
                           # client-side schema validation of a kind without PATCH needs /openapi/v2
                           # protobuf (issue 17 item 1)
                           "--validate=false"],
                          input=body, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "forbidden" in proc.stderr and "subjectaccessreviews" in proc.stderr, proc
    grant(admin, None, [{"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"],
                         "verbs": ["create"]}], {"kind": "ServiceAccount", "name": "robot", "namespace": "sarperm"})
    proc = subprocess.run(proc.args, input=body, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"]["allowed"] is False


def test_no_legacy_token_secrets_are_created(admin):
    """Only a Secret a user asks for holds a legacy token; the controller still removes one
    whose account is gone (that removal is also how this test knows the controller ran)."""
    admin("create", "namespace", "legacy")
    admin("-n", "legacy", "create", "serviceaccount", "robot")
    admin("-n", "legacy", "create", "serviceaccount", "temp")
    for account in ("robot", "temp"):
        admin("-n", "legacy", "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Secret", "type": SA_TOKEN,
            "metadata": {"name": f"{account}-legacy", "annotations": {"kubernetes.io/service-account.name": account}}}))
    wait_until(lambda: all(admin.json("-n", "legacy", "get", "secret", f"{a}-legacy").get("data", {}).get("token")
                           for a in ("robot", "temp")), "the token controller to fill the requested Secrets")
    admin("-n", "legacy", "delete", "serviceaccount", "temp")
    wait_until(lambda: [s["metadata"]["name"] for s in admin.json("-n", "legacy", "get", "secrets")["items"]]
               == ["robot-legacy"], "the orphaned Secret to be removed, and no other Secret to exist")
    legacy = base64.b64decode(admin.json("-n", "legacy", "get", "secret", "robot-legacy")["data"]["token"]).decode()
    assert claims(legacy)["iss"] == "kubernetes/serviceaccount"  # still a working legacy token


SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@pytest.mark.parametrize("method, path, body, ctype, code", [
    ("POST", SSAR_PATH, b"", "application/json", 400),
    ("POST", SSAR_PATH, b"{not json", "application/json", 400),
    ("POST", SSAR_PATH, b'{"kind":"Pod","apiVersion":"v1"}', "application/json", 400),
    ("POST", SSAR_PATH, b'{"spec":{}}', "application/json", 422),
    ("POST", SSAR_PATH, b"k8s\x00\x0a\x02\x0a\x00", "application/vnd.kubernetes.protobuf", 415),  # no kind
    ("POST", SSAR_PATH, b'{"spec":{"nonResourceAttributes":{"path":"' + b"a" * 70000 + b'"}}}',
     "application/json", 413),
    ("GET", SSAR_PATH, None, "application/json", 405),
    ("DELETE", SSAR_PATH + "/x", None, "application/json", 405),
    ("GET", "/api/v1/namespaces/default/serviceaccounts/default/token", None, "application/json", 405),
    ("POST", "/api/v1/namespaces/default/serviceaccounts/default/token", b'{"spec":{"expirationSeconds":60}}',
     "application/json", 422),
    ("POST", "/api/v1/namespaces/default/serviceaccounts/nobody/token", b"{}", "application/json", 404),
])
def test_bad_requests_get_a_clear_status(server, method, path, body, ctype, code):
    status, _, raw = server.http().raw(method, path, body, {"Content-Type": ctype})
    answer = json.loads(raw)
    assert status == code and answer["kind"] == "Status" and answer["code"] == code, answer


def test_anonymous_cannot_ask(server):
    status, _, raw = server.http(None).raw("POST", SSAR_PATH, b'{"spec":{"nonResourceAttributes":{"path":"/"}}}',
                                           {"Content-Type": "application/json"})
    assert status == 401 and json.loads(raw)["reason"] == "Unauthorized"
