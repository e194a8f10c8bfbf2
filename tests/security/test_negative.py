"""The negative suite: every way in that must be refused is refused with the right answer, and
nothing in the store changed.

- no credentials: 401 Status (probes and /version stay anonymous)
- a client certificate from another CA, or an expired one from the cluster CA: TLS handshake refused
- a tampered service-account token: 401
- the token of a deleted token Secret, of a deleted ServiceAccount: 401
- the agent creating, changing or deleting a Service: 403 Status
- a namespaced Role bound in one namespace used in another: 403 Status
"""
from __future__ import annotations

import base64
import datetime
import http.client
import ssl
import time

import pytest

from kproxy.pki import ca as pki_ca
from tests.apiserver.httputil import Http, client_tls_context

SA_TOKEN = "kubernetes.io/service-account-token"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
WAIT = 30.0


@pytest.fixture(scope="module")
def anonymous(secure_apiserver):
    return Http(secure_apiserver.url, ssl_context=client_tls_context(secure_apiserver.data_dir, None))


def snapshot(admin, namespace):
    """Names and resourceVersions of what a refused request could have touched."""
    out = {}
    for path in (f"/api/v1/namespaces/{namespace}/services", f"/api/v1/namespaces/{namespace}/secrets",
                 f"/api/v1/namespaces/{namespace}/serviceaccounts", "/api/v1/namespaces"):
        out[path] = sorted((o["metadata"]["name"], o["metadata"]["resourceVersion"])
                           for o in admin.ok("GET", path)["items"])
    return out


def make_namespace(admin, name):
    status, _ = admin.call("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status in (201, 409)
    deadline = time.monotonic() + WAIT  # the controllers add the default ServiceAccount
    while time.monotonic() < deadline:
        if admin.call("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")[0] == 200:
            return  # settled: the controllers write nothing else into a new namespace
        time.sleep(0.1)
    raise AssertionError(f"no default ServiceAccount in {name}: the controllers cannot write under RBAC")


def service(name):
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}


def assert_status(status, body, code, reason):
    assert status == code, body
    assert body["kind"] == "Status" and body["code"] == code and body["reason"] == reason, body


def test_no_credentials_is_401_except_probes(admin, anonymous):
    make_namespace(admin, "anon")
    before = snapshot(admin, "anon")
    for method, path, body in [("GET", "/api/v1/namespaces/anon/services", None), ("GET", "/api", None),
                               ("POST", "/api/v1/namespaces/anon/services", service("x")),
                               ("DELETE", "/api/v1/namespaces/anon", None)]:
        status, obj = anonymous.call(method, path, body)
        assert_status(status, obj, 401, "Unauthorized")
    for path in ("/healthz", "/livez", "/readyz", "/version"):
        assert anonymous.call("GET", path)[0] == 200, path
    assert snapshot(admin, "anon") == before


def handshake_refused(server, cert_pem, key_pem, tmp_path):
    (tmp_path / "c.pem").write_bytes(cert_pem + key_pem)
    ctx = ssl.create_default_context(cafile=str(server.data_dir / "pki" / "ca.crt"))
    ctx.load_cert_chain(str(tmp_path / "c.pem"))
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=10, context=ctx)
    try:
        conn.request("POST", "/api/v1/namespaces", body=b'{"metadata":{"name":"intruder"}}',
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return f"answered {resp.status}"
    except (ssl.SSLError, ConnectionError) as exc:
        return exc
    finally:
        conn.close()


def cluster_ca(server):
    pki = server.data_dir / "pki"
    return pki_ca.KeyPair((pki / "ca.crt").read_bytes(), (pki / "ca.key").read_bytes())


def assert_current_cert_of_cluster_ca_answers(server, tmp_path):
    """The control: the same request with a current certificate of the cluster CA gets an HTTP
    answer (403: this user has no rights), so the refusal above was the certificate's doing."""
    nobody = pki_ca.issue_client(cluster_ca(server), "nobody")
    assert handshake_refused(server, nobody.cert_pem, nobody.key_pem, tmp_path) == "answered 403"


def test_certificate_from_another_ca_is_refused(secure_apiserver, admin, tmp_path):
    rogue = pki_ca.issue_client(pki_ca.create_ca(), "kubernetes-admin", ("system:masters",))
    result = handshake_refused(secure_apiserver, rogue.cert_pem, rogue.key_pem, tmp_path)
    assert isinstance(result, (ssl.SSLError, ConnectionError)), result
    assert_current_cert_of_cluster_ca_answers(secure_apiserver, tmp_path)
    assert admin.call("GET", "/api/v1/namespaces/intruder")[0] == 404


def test_expired_certificate_is_refused(secure_apiserver, admin, tmp_path):
    pki = secure_apiserver.data_dir / "pki"
    cluster_ca = pki_ca.KeyPair((pki / "ca.crt").read_bytes(), (pki / "ca.key").read_bytes())
    expired = pki_ca.issue_client(cluster_ca, "kubernetes-admin", ("system:masters",),
                                  not_before=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3),
                                  validity=datetime.timedelta(days=1))
    result = handshake_refused(secure_apiserver, expired.cert_pem, expired.key_pem, tmp_path)
    assert isinstance(result, (ssl.SSLError, ConnectionError)), result
    assert_current_cert_of_cluster_ca_answers(secure_apiserver, tmp_path)
    assert admin.call("GET", "/api/v1/namespaces/intruder")[0] == 404


def create_token(admin, namespace, account, secret):
    status, body = admin.call("POST", f"/api/v1/namespaces/{namespace}/secrets", {
        "metadata": {"name": secret, "annotations": {"kubernetes.io/service-account.name": account}},
        "type": SA_TOKEN, "data": {"token": base64.b64encode(b"chosen-by-client").decode()}})
    assert status == 201, body
    assert "token" not in (body.get("data") or {}), "the create response must not carry the token"
    token = wait_token(admin, namespace, secret)
    assert token != "chosen-by-client" and token.count(".") == 2
    return token


def wait_token(admin, namespace, secret):
    """The token the token controller fills into a Secret after its creation."""
    deadline = time.monotonic() + WAIT
    while True:
        data = admin.ok("GET", f"/api/v1/namespaces/{namespace}/secrets/{secret}").get("data") or {}
        if data.get("token"):
            return base64.b64decode(data["token"]).decode()
        assert time.monotonic() < deadline, f"the token of {namespace}/{secret} was never filled in"
        time.sleep(0.05)


def bind_reader(admin, namespace, subject):
    admin.ok("POST", f"{RBAC}/namespaces/{namespace}/roles", {
        "metadata": {"name": "svc-reader"},
        "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]}]})
    admin.ok("POST", f"{RBAC}/namespaces/{namespace}/rolebindings", {
        "metadata": {"name": "svc-reader"}, "subjects": [subject],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "svc-reader"}})


def as_token(server, token):
    api = Http(server.url, ssl_context=client_tls_context(server.data_dir, None))
    return lambda method, path, body=None: api.call(method, path, body, headers={"Authorization": f"Bearer {token}"})


def test_service_account_tokens_and_their_revocation(secure_apiserver, admin):
    make_namespace(admin, "tok")
    admin.ok("POST", "/api/v1/namespaces/tok/serviceaccounts", {"metadata": {"name": "robot"}})
    bind_reader(admin, "tok", {"kind": "ServiceAccount", "name": "robot", "namespace": "tok"})
    token = create_token(admin, "tok", "robot", "robot-token")
    robot = as_token(secure_apiserver, token)
    assert robot("GET", "/api/v1/namespaces/tok/services")[0] == 200
    before = snapshot(admin, "tok")
    # allowed to read, not to write
    assert_status(*robot("POST", "/api/v1/namespaces/tok/services", service("by-robot")), 403, "Forbidden")
    # tampered: another namespace in the claims, or a changed signature
    header, payload, sig = token.split(".")
    claims = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).replace(b'"tok"', b'"kube-system"')
    forged = base64.urlsafe_b64encode(claims).rstrip(b"=").decode()
    for bad in (f"{header}.{forged}.{sig}", f"{header}.{payload}.{sig[::-1]}", token + "x", "not-a-token"):
        assert_status(*as_token(secure_apiserver, bad)("GET", "/api/v1/namespaces/tok/services"), 401, "Unauthorized")
    # a token for an account that does not exist is refused at creation
    status, body = admin.call("POST", "/api/v1/namespaces/tok/secrets", {
        "metadata": {"name": "ghost-token", "annotations": {"kubernetes.io/service-account.name": "ghost"}},
        "type": SA_TOKEN})
    assert status == 422, body
    assert snapshot(admin, "tok") == before
    # revoked by deleting its Secret
    admin.ok("DELETE", "/api/v1/namespaces/tok/secrets/robot-token")
    assert_status(*robot("GET", "/api/v1/namespaces/tok/services"), 401, "Unauthorized")


def test_deleted_service_account_token_is_refused_and_its_secret_removed(secure_apiserver, admin):
    make_namespace(admin, "tok2")
    admin.ok("POST", "/api/v1/namespaces/tok2/serviceaccounts", {"metadata": {"name": "robot"}})
    bind_reader(admin, "tok2", {"kind": "ServiceAccount", "name": "robot", "namespace": "tok2"})
    robot = as_token(secure_apiserver, create_token(admin, "tok2", "robot", "robot-token"))
    assert robot("GET", "/api/v1/namespaces/tok2/services")[0] == 200
    admin.ok("DELETE", "/api/v1/namespaces/tok2/serviceaccounts/robot")
    assert_status(*robot("GET", "/api/v1/namespaces/tok2/services"), 401, "Unauthorized")
    # a new account of the same name does not revive the old token
    admin.ok("POST", "/api/v1/namespaces/tok2/serviceaccounts", {"metadata": {"name": "robot"}})
    assert_status(*robot("GET", "/api/v1/namespaces/tok2/services"), 401, "Unauthorized")
    deadline = time.monotonic() + WAIT  # the serviceaccount controller removes the orphaned Secret
    while admin.call("GET", "/api/v1/namespaces/tok2/secrets/robot-token")[0] != 404:
        assert time.monotonic() < deadline, "orphaned token Secret was not removed"
        time.sleep(0.2)


def test_agent_cannot_change_services(secure_apiserver, admin):
    make_namespace(admin, "agent")
    admin.ok("POST", "/api/v1/namespaces/agent/services", service("web"))
    agent = Http(secure_apiserver.url, ssl_context=client_tls_context(secure_apiserver.data_dir, "kube-proxy"))
    assert agent.call("GET", "/api/v1/namespaces/agent/services/web")[0] == 200
    before = snapshot(admin, "agent")
    web = admin.ok("GET", "/api/v1/namespaces/agent/services/web")
    web["spec"]["ports"][0]["port"] = 81
    for method, path, body in [
            ("POST", "/api/v1/namespaces/agent/services", service("evil")),
            ("DELETE", "/api/v1/namespaces/agent/services/web", None),
            ("PUT", "/api/v1/namespaces/agent/services/web", web),
            ("DELETE", "/api/v1/namespaces/agent/services", None),
            ("POST", f"{RBAC}/clusterrolebindings", {"metadata": {"name": "escalate"}, "subjects": [
                {"kind": "User", "name": "system:kube-proxy", "apiGroup": "rbac.authorization.k8s.io"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}}),
            ("GET", "/api/v1/namespaces/agent/secrets", None)]:
        status, obj = agent.call(method, path, body)
        assert_status(status, obj, 403, "Forbidden")
        assert "system:kube-proxy" in obj["message"]
    assert agent.call("PATCH", "/api/v1/namespaces/agent/services/web", {"spec": {"type": "NodePort"}},
                      content_type="application/merge-patch+json")[0] == 403
    assert snapshot(admin, "agent") == before
    assert admin.call("GET", f"{RBAC}/clusterrolebindings/escalate")[0] == 404


def test_namespaced_role_does_not_reach_another_namespace(secure_apiserver, admin, tmp_path):
    make_namespace(admin, "team-a")
    make_namespace(admin, "team-b")
    admin.ok("POST", "/api/v1/namespaces/team-b/services", service("b-web"))
    admin.ok("POST", f"{RBAC}/namespaces/team-a/roles", {
        "metadata": {"name": "editor"},
        "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["*"]}]})
    admin.ok("POST", f"{RBAC}/namespaces/team-a/rolebindings", {
        "metadata": {"name": "dave-edits"},
        "subjects": [{"kind": "User", "name": "dave", "apiGroup": "rbac.authorization.k8s.io"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "editor"}})
    pki = secure_apiserver.data_dir / "pki"
    dave_pair = pki_ca.issue_client(pki_ca.KeyPair((pki / "ca.crt").read_bytes(), (pki / "ca.key").read_bytes()), "dave")
    (tmp_path / "dave.pem").write_bytes(dave_pair.cert_pem + dave_pair.key_pem)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(tmp_path / "dave.pem"))
    dave = Http(secure_apiserver.url, ssl_context=ctx)
    assert dave.call("POST", "/api/v1/namespaces/team-a/services", service("a-web"))[0] == 201
    before = snapshot(admin, "team-b")
    for method, path, body in [("POST", "/api/v1/namespaces/team-b/services", service("intruder")),
                               ("DELETE", "/api/v1/namespaces/team-b/services/b-web", None),
                               ("GET", "/api/v1/namespaces/team-b/services", None),
                               ("GET", "/api/v1/services", None)]:
        status, obj = dave.call(method, path, body)
        assert_status(status, obj, 403, "Forbidden")
    assert snapshot(admin, "team-b") == before
