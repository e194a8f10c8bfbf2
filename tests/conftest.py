"""Shared test configuration.

Kernel and e2e tests need root and network namespaces; they create every namespace they use
through tests.nsutil (names "kpt<pid>-...") and delete them even when a test fails. The
session-end hook removes any namespace of this run that a crashed test left behind, and fails
loudly so a leak is seen.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests import nsutil

# Timing never decides a test: hypothesis' per-example deadline (200 ms) is a wall-clock threshold
# that a loaded CI machine crosses (test_generated_invalid_services failed on it under load).
settings.register_profile("kproxy", deadline=None)
settings.load_profile("kproxy")


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root for network namespaces (run as root, as CI does)")
    for item in items:
        if "kernel" in item.keywords or "e2e" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    leaked = nsutil.leftover_namespaces()
    for name in leaked:
        nsutil.delete_netns(name)
    if leaked:
        print(f"\nERROR: tests left network namespaces behind (now removed): {leaked}")
        session.exitstatus = 1
