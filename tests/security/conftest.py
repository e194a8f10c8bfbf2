"""Fixtures for the security tests: an apiserver serving HTTPS with authentication and RBAC,
and clients of it authenticated by certificates that its CA issues."""
from __future__ import annotations

import ssl
from typing import Callable

import pytest

from kproxy.pki import ca as pki_ca
from tests.apiserver.fixtures import start_apiserver
from tests.apiserver.httputil import Http, client_tls_context


@pytest.fixture(scope="module")
def secure_apiserver(tmp_path_factory):
    """One apiserver with the defaults (HTTPS, controllers on) shared by a module's tests; tests that change
    state use their own namespaces."""
    server = start_apiserver(tmp_path_factory.mktemp("secure"))  # HTTPS is the default
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def admin(secure_apiserver) -> Http:
    """A client with the admin's certificate (group system:masters)."""
    return Http(secure_apiserver.url, ssl_context=client_tls_context(secure_apiserver.data_dir, "admin"))


@pytest.fixture(scope="module")
def user_client(secure_apiserver, tmp_path_factory) -> Callable[..., Http]:
    """user_client(name, groups=()): a client whose certificate, from the cluster CA, names user
    `name` in `groups` (no permissions until a test grants them)."""
    pki = secure_apiserver.data_dir / "pki"
    cluster_ca = pki_ca.KeyPair((pki / "ca.crt").read_bytes(), (pki / "ca.key").read_bytes())
    folder = tmp_path_factory.mktemp("users")

    def make(name: str, groups: tuple[str, ...] = ()) -> Http:
        pair = pki_ca.issue_client(cluster_ca, name, groups)
        (folder / f"{name}.pem").write_bytes(pair.cert_pem + pair.key_pem)
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(folder / f"{name}.pem"))
        return Http(secure_apiserver.url, ssl_context=ctx)
    return make
