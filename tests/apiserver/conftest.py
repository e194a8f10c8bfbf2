"""Fixtures for the apiserver tests: a real `kproxy apiserver` subprocess per test."""
from __future__ import annotations

import pytest

from tests.apiserver.fixtures import start_apiserver


@pytest.fixture
def apiserver(tmp_path):
    """An apiserver with the default settings (controllers run if they are installed)."""
    server = start_apiserver(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bare_apiserver(tmp_path):
    """An apiserver without controllers: only what clients write is stored."""
    server = start_apiserver(tmp_path, ["--no-controllers"])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server_args() -> list[str]:
    """The `server` fixture's flags; a test module overrides it ([]: controllers on)."""
    return ["--no-controllers"]


@pytest.fixture(scope="module")
def server(request, tmp_path_factory, server_args):
    """One apiserver for a whole test module (the module's tests share its store, so they use
    distinct names), by default without controllers: see `server_args`."""
    s = start_apiserver(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]), server_args)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def api(server):
    """A raw HTTP client (tests.apiserver.httputil.Http) to the module's `server`."""
    return server.http()
