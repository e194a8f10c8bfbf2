"""Fixtures for the security tests: an apiserver serving HTTPS with authentication and RBAC."""
from __future__ import annotations

import pytest

from tests.apiserver.fixtures import start_apiserver


@pytest.fixture(scope="module")
def secure_apiserver(tmp_path_factory):
    """One apiserver with the defaults (HTTPS, controllers on) shared by a module's tests; tests that change
    state use their own namespaces."""
    server = start_apiserver(tmp_path_factory.mktemp("secure"))  # HTTPS is the default
    try:
        yield server
    finally:
        server.stop()
