"""Network-namespace helpers for tests.

Every namespace a test creates is named by `unique_name()`: "kpt<pid>-<name>", so tests in
concurrent pytest runs never collide, and the session-end hook in conftest removes exactly the
namespaces its own run left behind.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
from typing import Iterator


def session_prefix() -> str:
    return f"kpt{os.getpid()}-"


def unique_name(name: str) -> str:
    return session_prefix() + name


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def delete_netns(name: str) -> None:
    """Kills every process in the namespace, then deletes it (idempotent)."""
    pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)
    run(["ip", "netns", "del", name], check=False)
    from kproxy.kubelet.podnet import delete_uts

    delete_uts(name)  # a pod's UTS namespace, if a killed kubelet left it


@contextlib.contextmanager
def netns(name: str) -> Iterator[str]:
    """Creates namespace unique_name(name) with lo up; deletes it on exit, even on failure."""
    full = unique_name(name)
    run(["ip", "netns", "add", full])
    try:
        run(["ip", "-n", full, "link", "set", "lo", "up"])
        yield full
    finally:
        delete_netns(full)


def leftover_namespaces() -> list[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(session_prefix())]
