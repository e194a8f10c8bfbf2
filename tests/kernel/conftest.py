"""The `backend` fixture of the kernel tests (tests/kernel/backends.py does the work).

A module provides a `topo` fixture (tests/kernel/topology.py) and a `mode` fixture: parametrised
(`@pytest.fixture(params=["nft", "legacy"])`) for one test per mode, or returning one mode id.
It overrides `backend_config` when its backends need other settings than config_for(mode)'s.
"""
from __future__ import annotations

import pytest

from tests.kernel.backends import config_for, open_backend


@pytest.fixture
def backend_config(mode):
    return config_for(mode)


@pytest.fixture
def backend(topo, backend_config):
    """A fresh backend of the module's mode in the topology's node namespace; cleaned up after
    the test even when it fails."""
    with open_backend(topo.node, backend_config) as b:
        yield b
