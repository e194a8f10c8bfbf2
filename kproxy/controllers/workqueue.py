"""A rate-limited work queue of keys, with client-go's workqueue guarantees:
- a key is queued at most once however often it is added while waiting;
- a key is never handed to two workers at once: added while being processed, it is queued
  again only after done();
- add_rate_limited() re-adds after a per-key exponential delay until forget() resets it.
Single event loop; not thread-safe.
"""
from __future__ import annotations

import asyncio
from collections import deque


class WorkQueue:
    def __init__(self, *, base_delay: float = 0.05, max_delay: float = 30.0):
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._wakeup = asyncio.Event()
        self._timers: set[asyncio.TimerHandle] = set()
        self._shutdown = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._wakeup.set()

    def add_after(self, key: str, delay: float) -> None:
        if self._shutdown:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            self._timers.discard(handle)  # type: ignore[arg-type]
            self.add(key)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def add_rate_limited(self, key: str) -> float:
        """Re-adds `key` after base_delay * 2^failures (capped); returns that delay."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = min(self._max_delay, self._base_delay * (2 ** n))
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str | None:
        """The next key (now being processed), or None once shut down."""
        while not self._queue:
            if self._shutdown:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wakeup.set()

    def shutdown(self) -> None:
        self._shutdown = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._queue.clear()
        self._wakeup.set()
