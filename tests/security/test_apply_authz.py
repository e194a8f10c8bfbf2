"""Server-side apply needs the permissions kube-apiserver asks for: `patch` to apply to an
existing object, and `create` as well when the apply creates it (403 with upstream's wording)."""
from __future__ import annotations

import ssl

import pytest

from kproxy.pki import ca as pki_ca
from tests.apiserver.httputil import Http, client_tls_context
from tests.security.test_rbac_escalation import grant, namespace

APPLY = "application/apply-patch+yaml"
SVCS = "/api/v1/namespaces/applyauthz/services"


def svc(name: str, target: int = 8080) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80, "targetPort": target}]}}


@pytest.fixture(scope="module")
def admin(secure_apiserver):
    return Http(secure_apiserver.url, ssl_context=client_tls_context(secure_apiserver.data_dir, "admin"))


@pytest.fixture(scope="module")
def patcher(secure_apiserver, admin, tmp_path_factory):
    """A user who may get and patch Services in one namespace, not create them."""
    namespace(admin, "applyauthz")
    grant(admin, "applyauthz", "patcher", [{"apiGroups": [""], "resources": ["services"],
                                            "verbs": ["get", "patch"]}])
    pki = secure_apiserver.data_dir / "pki"
    pair = pki_ca.issue_client(pki_ca.KeyPair((pki / "ca.crt").read_bytes(), (pki / "ca.key").read_bytes()),
                               "patcher", ())
    pem = tmp_path_factory.mktemp("patcher") / "patcher.pem"
    pem.write_bytes(pair.cert_pem + pair.key_pem)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pem))
    return Http(secure_apiserver.url, ssl_context=ctx)


def test_apply_that_creates_needs_create(admin, patcher):
    status, body = patcher.call("PATCH", f"{SVCS}/new?fieldManager=p", svc("new"), APPLY)
    assert status == 403, body
    assert body["message"] == ('services "new" is forbidden: User "patcher" cannot create resource "services" '
                               'in API group "" in the namespace "applyauthz"')
    assert admin.call("GET", f"{SVCS}/new")[0] == 404


def test_apply_to_an_existing_object_needs_only_patch(admin, patcher):
    admin.ok("PATCH", f"{SVCS}/old?fieldManager=admin", svc("old"), APPLY)
    out = patcher.ok("PATCH", f"{SVCS}/old?fieldManager=p&force=true", svc("old", 9090), APPLY)
    assert out["spec"]["ports"][0]["targetPort"] == 9090
