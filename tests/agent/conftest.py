"""Fixtures for the agent integration tests: a real apiserver (no controllers, so the tests
write EndpointSlices themselves), a blocking client with the default namespace, and a fresh
network namespace for the agent's kernel work."""
from __future__ import annotations

import pytest

from kproxy.api.resources import NAMESPACES
from kproxy.api.status import ApiError
from kproxy.client.sync import Client
from tests import nsutil
from tests.apiserver.fixtures import start_apiserver


@pytest.fixture
def apiserver(tmp_path):
    server = start_apiserver(tmp_path, ["--no-controllers"])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(apiserver):
    c = Client.from_kubeconfig(apiserver.kubeconfig)
    try:
        try:
            c.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        except ApiError as exc:
            if exc.code != 409:
                raise
        yield c
    finally:
        c.close()


@pytest.fixture
def agent_ns():
    with nsutil.netns("agent") as name:
        yield name
