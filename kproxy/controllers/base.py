"""What every controller shares: shared informers, handler adapters, and the worker loop.

Kube-style contract: informer handlers only enqueue keys; workers take a key, reconcile it
from the informer caches and write through the ApiClient. A reconcile that fails is retried
with per-key exponential backoff (409 Conflict included: the cache was stale, try again);
raising RequeueAfter asks for a plain retry later without counting as a failure.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable

from kproxy.api.resources import Resource
from kproxy.api.status import ApiError
from kproxy.client.errors import ApiConnectionError
from kproxy.client.informer import Informer
from kproxy.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)


class RequeueAfter(Exception):
    """Not done yet (e.g. the cache has not caught up with our own writes): retry in `delay` s."""

    def __init__(self, delay: float, why: str = ""):
        super().__init__(why or f"requeue after {delay}s")
        self.delay = delay


@dataclass(frozen=True)
class Handlers:
    """An informer handler made of plain callables; missing ones ignore the event."""

    on_add: Callable[[dict], Any] = lambda obj: None
    on_update: Callable[[dict, dict], Any] = lambda old, new: None
    on_delete: Callable[[dict], Any] = lambda obj: None


class SharedInformers:
    """One cluster-wide Informer per resource, shared by all controllers of a process."""

    def __init__(self, client: Any, **informer_kwargs: Any):
        self.client = client
        self._kwargs = informer_kwargs
        self._informers: dict[Resource, Informer] = {}
        self._tasks: list[asyncio.Task] = []

    def get(self, resource: Resource) -> Informer:
        inf = self._informers.get(resource)
        if inf is None:
            inf = Informer(self.client, resource, **self._kwargs)
            self._informers[resource] = inf
        return inf

    def start(self) -> None:
        for inf in self._informers.values():
            self._tasks.append(asyncio.create_task(inf.run(), name=f"informer-{inf.resource.plural}"))

    async def wait_synced(self, resources: list[Resource] | None = None) -> None:
        targets = [self._informers[r] for r in resources] if resources else list(self._informers.values())
        await asyncio.gather(*(inf.synced.wait() for inf in targets))

    async def stop(self) -> None:
        for inf in self._informers.values():
            inf.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


class Controller:
    """Base of a queue-driven controller; subclasses implement reconcile(key)."""

    name = "controller"
    workers = 1

    def __init__(self, client: Any, informers: SharedInformers):
        self.client = client
        self.informers = informers
        self.queue = WorkQueue()

    def watched(self) -> list[Resource]:
        """Resources whose caches must be synced before workers start."""
        return []

    async def reconcile(self, key: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def resync(self) -> None:
        """Enqueues everything once the caches are synced (subclasses decide what)."""

    async def run(self, stop: asyncio.Event) -> None:
        await self.informers.wait_synced(self.watched())
        await self.resync()
        workers = [asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}") for i in range(self.workers)]
        try:
            await stop.wait()
        finally:
            self.queue.shutdown()
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            if key is None:
                return
            try:
                await self.reconcile(key)
                self.queue.forget(key)
            except RequeueAfter as exc:
                self.queue.add_after(key, exc.delay)
            except (ApiError, ApiConnectionError) as exc:
                delay = self.queue.add_rate_limited(key)
                level = logging.INFO if isinstance(exc, ApiError) and exc.code == 409 else logging.WARNING
                log.log(level, "%s: %s: %s (retry in %.2fs)", self.name, key, exc, delay)
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = self.queue.add_rate_limited(key)
                log.exception("%s: reconcile %s failed (retry in %.2fs)", self.name, key, delay)
            finally:
                self.queue.done(key)
