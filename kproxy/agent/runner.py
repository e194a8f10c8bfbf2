"""BoundedFrequencyRunner: when the agent's one sync function runs.

Guarantees (all times on the event loop's monotonic clock):
- requests made by `run()` while a sync is pending or running are coalesced into one sync;
- two syncs that serve requests never start less than `min_interval` apart; a periodic sync
  that served none does not start that clock, so a change arriving right after a periodic
  resync does not wait `min_interval` for it (it waits at most for the resync in progress);
- a periodic sync starts at most `max_interval` after the previous full or periodic one started,
  with or without requests in between (a stream of partial syncs never postpones it);
- a full sync (full=True, it repairs drift) starts at most `full_interval` (default
  `max_interval`) after the previous successful full one started;
- before a periodic sync that is not already full, `check()` (when given) is awaited; when it
  returns True (the kernel lost what the backend wrote) or raises, that sync is full. So drift a
  check can see is repaired within one `max_interval`, while full syncs stay `full_interval`
  apart;
- when the sync function raises, it is retried after a backoff that starts at `retry_initial`
  and doubles up to `max_interval`, without waiting for a new request; requests made meanwhile,
  and a periodic full sync that fell due, do not start it earlier (a failing kernel is not
  hammered);
- the sync function never runs concurrently with itself.
"""
from __future__ import annotations

import asyncio
import logging
import math
from typing import Awaitable, Callable

log = logging.getLogger(__name__)


class BoundedFrequencyRunner:
    def __init__(self, sync: Callable[[bool], Awaitable[None]], min_interval: float, max_interval: float,
                 retry_initial: float | None = None, name: str = "sync", full_interval: float | None = None,
                 check: Callable[[], Awaitable[bool]] | None = None) -> None:
        full_interval = max_interval if full_interval is None else full_interval
        if min_interval < 0 or max_interval <= 0 or min_interval > max_interval or full_interval < max_interval:
            raise ValueError(f"bad intervals: min {min_interval} max {max_interval} full {full_interval}")
        self._sync = sync
        self._check = check
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.full_interval = full_interval
        self.retry_initial = retry_initial if retry_initial is not None else max(min_interval, 1.0)
        self.name = name
        self._requested = False
        self._full_requested = False
        self._wakeup = asyncio.Event()
        self._stopping = False
        self.failures = 0  # consecutive failures of the sync function

    def run(self, full: bool = False) -> None:
        """Requests a sync as soon as min_interval allows (full=True makes it a full one)."""
        self._requested = True
        self._full_requested |= full
        self._wakeup.set()

    def stop(self) -> None:
        """Makes `loop()` return after the sync in progress (if any) finishes."""
        self._stopping = True
        self._wakeup.set()

    def backoff(self, failures: int) -> float:
        """Delay before the retry that follows `failures` consecutive failures."""
        return min(self.retry_initial * (2 ** (failures - 1)), self.max_interval)

    async def loop(self) -> None:
        """Runs syncs until stop(). Exceptions of the sync function are logged and retried."""
        clock = asyncio.get_running_loop().time
        last_start = -math.inf  # of any sync (retries wait min_interval after it)
        last_request_start = -math.inf  # of the last sync that served requests
        next_periodic = clock() + self.max_interval
        next_full = clock() + self.full_interval
        retry_at = math.inf
        while not self._stopping:
            now = clock()
            due_request = max(last_request_start + self.min_interval, now) if self._requested else math.inf
            due = min(next_periodic, next_full, due_request, retry_at)
            if self.failures:  # backing off: requests and an overdue periodic sync wait for the retry
                due = retry_at
            if due > now:
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), due - now)
                except asyncio.TimeoutError:
                    pass
                continue
            full = self._full_requested or now >= next_full
            periodic = now >= next_periodic
            if self._requested:
                last_request_start = now
            self._requested = self._full_requested = False
            retry_at = math.inf
            last_start = now
            try:
                if periodic and not full and self._check is not None:
                    full = await self._drifted(self._check)
                await self._sync(full)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the sync function's failure must not kill the agent
                self.failures += 1
                delay = self.backoff(self.failures)
                retry_at = max(clock() + delay, last_start + self.min_interval)
                log.warning("%s failed (%d in a row), retrying in %.1fs: %s", self.name, self.failures, delay, exc)
                if full:
                    self._full_requested = True  # the retry of a failed full sync is full again
            else:
                self.failures = 0
                if full:
                    next_full = last_start + self.full_interval
                if full or periodic:
                    next_periodic = last_start + self.max_interval

    async def _drifted(self, check: Callable[[], Awaitable[bool]]) -> bool:
        """The check's verdict; a check that fails counts as drift (a full sync is always safe)."""
        try:
            drifted = await check()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: drift check failed, syncing in full: %s", self.name, exc)
            return True
        if drifted:
            log.warning("%s: the kernel lost rules this agent wrote (flushed by someone else?); "
                        "syncing in full", self.name)
        return bool(drifted)
