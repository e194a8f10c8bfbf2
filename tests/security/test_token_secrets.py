"""Issue 15 item 2: `create secrets` does not mint another account's token. A
kubernetes.io/service-account-token Secret is created without a token; the token controller
fills it in afterwards, so reading it needs `get secrets` (upstream's behaviour)."""
from __future__ import annotations

import ssl

from kproxy.pki import ca as pki_ca
from tests.apiserver.httputil import Http, client_tls_context
from tests.security.test_negative import SA_TOKEN, make_namespace, wait_token

RBAC = "/apis/rbac.authorization.k8s.io/v1"
REF = {"apiGroup": "rbac.authorization.k8s.io"}


def test_create_only_identity_gets_no_token(secure_apiserver, tmp_path):
    admin = Http(secure_apiserver.url, ssl_context=client_tls_context(secure_apiserver.data_dir, "admin"))
    make_namespace(admin, "mint")
    admin.ok("POST", "/api/v1/namespaces/mint/serviceaccounts", {"metadata": {"name": "deployer"}})
    admin.ok("POST", f"{RBAC}/namespaces/mint/roles", {"metadata": {"name": "secret-creator"}, "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]})
    admin.ok("POST", f"{RBAC}/namespaces/mint/rolebindings", {
        "metadata": {"name": "creator"}, "subjects": [{"kind": "User", "name": "creator", **REF}],
        "roleRef": {**REF, "kind": "Role", "name": "secret-creator"}})
    pki = secure_apiserver.data_dir / "pki"
    pair = pki_ca.issue_client(pki_ca.KeyPair((pki / "ca.crt").read_bytes(), (pki / "ca.key").read_bytes()), "creator")
    (tmp_path / "c.pem").write_bytes(pair.cert_pem + pair.key_pem)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(tmp_path / "c.pem"))
    creator = Http(secure_apiserver.url, ssl_context=ctx)
    status, body = creator.call("POST", "/api/v1/namespaces/mint/secrets", {
        "metadata": {"name": "stolen", "annotations": {"kubernetes.io/service-account.name": "deployer"}},
        "type": SA_TOKEN})
    assert status == 201, body
    assert "token" not in (body.get("data") or {}), body
    assert creator.call("GET", "/api/v1/namespaces/mint/secrets/stolen")[0] == 403
    # the token exists all the same, for whoever may read Secrets
    token = wait_token(admin, "mint", "stolen")
    assert token.count(".") == 2
    secret = admin.ok("GET", "/api/v1/namespaces/mint/secrets/stolen")
    assert set(secret["data"]) == {"token", "ca.crt", "namespace"}
