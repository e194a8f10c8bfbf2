"""Run work inside a named network namespace without moving the whole process.

A NetNS owns one worker thread that has joined the namespace with setns(2) (a network
namespace is per thread on Linux). Everything submitted through `run()` executes on that
thread, so sockets it opens and commands it spawns live in the namespace, while the rest of
the process (for example the agent's connection to the apiserver on loopback) stays where it
started. NetNS(None) runs in the process's own namespace.
"""
from __future__ import annotations

import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence, TypeVar

T = TypeVar("T")

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000


class NetNSError(Exception):
    pass


def setns(path: str) -> None:
    """Moves the calling thread (and what it later spawns) into the network namespace at `path`."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetNSError(f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


class NetNS:
    """Executes callables and commands inside network namespace `name` (None: our own)."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        if name is not None and not os.path.exists(self.path):
            raise NetNSError(f"network namespace {name!r} does not exist ({self.path})")

    @property
    def path(self) -> str:
        return os.path.join(NETNS_RUN_DIR, self.name) if self.name else "/proc/self/ns/net"

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                init = (lambda: setns(self.path)) if self.name else None
                self._executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=f"netns-{self.name or 'self'}", initializer=init
                )
            return self._executor

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Calls fn(*args, **kwargs) on the namespace's thread and returns its result."""
        if self._executor is not None and threading.current_thread().name.startswith(
            f"netns-{self.name or 'self'}"
        ):
            return fn(*args, **kwargs)  # already on our thread: avoid a deadlock
        return self._pool().submit(fn, *args, **kwargs).result()

    async def arun(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Awaitable run() for asyncio callers."""
        import asyncio
        import functools

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool(), functools.partial(fn, *args, **kwargs))

    def command(self, argv: Sequence[str], input: bytes | str | None = None, check: bool = True,
                timeout: float | None = 120) -> subprocess.CompletedProcess:
        """Runs a command inside the namespace and returns its completed process (text mode).
        Raises subprocess.CalledProcessError when check is set and it fails."""
        if isinstance(input, bytes):
            input = input.decode()

        def _spawn() -> subprocess.CompletedProcess:
            return subprocess.run(list(argv), input=input, capture_output=True, text=True,
                                  check=check, timeout=timeout)

        return self.run(_spawn)

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    def __repr__(self) -> str:
        return f"NetNS({self.name!r})"
