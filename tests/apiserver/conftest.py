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
