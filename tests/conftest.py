"""Shared test configuration.

Kernel and e2e tests need root and network namespaces; they create every namespace they use
(names start with "kpt-") and delete them even when a test fails. The session-end hook below
removes any "kpt-" namespace a crashed test left behind, so nothing outlives the run.
"""
from __future__ import annotations

import os
import subprocess

import pytest

TEST_NETNS_PREFIX = "kpt-"


def _leftover_namespaces() -> list[str]:
    try:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [line.split()[0] for line in out.splitlines() if line.startswith(TEST_NETNS_PREFIX)]


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root for network namespaces (run as root, as CI does)")
    for item in items:
        if "kernel" in item.keywords or "e2e" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    for name in _leftover_namespaces():
        subprocess.run(["ip", "netns", "pids", name], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
