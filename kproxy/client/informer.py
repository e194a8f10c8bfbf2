"""Informer: a local cache of one resource kept current by list + watch.

Guarantees:
- `cache` maps "ns/name" (or "name" for cluster-scoped resources) to the latest object seen.
- Handlers see each real change once, in server order: on_add(obj), on_update(old, new),
  on_delete(obj). A relist (after 410 Gone) is diffed against the cache by resourceVersion,
  so unchanged objects produce no calls, objects that vanished meanwhile produce on_delete,
  and an object recreated meanwhile (new uid) produces on_delete(old) then on_add(new).
- `synced` is set once the first list has been delivered to the handlers.
- Connection errors and other failures never end run(): it retries with capped exponential
  backoff with jitter, resuming the watch from the last seen resourceVersion. Only stop()
  (or cancelling the task running run()) ends it.
- BOOKMARK events only advance the resourceVersion.
Handler methods may be plain functions or coroutines; an exception in a handler is logged and
does not disturb the informer.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from typing import Any, Protocol

from kproxy.api.resources import Resource
from kproxy.api.status import ApiError
from kproxy.client.errors import ApiConnectionError

log = logging.getLogger(__name__)


class EventHandler(Protocol):
    def on_add(self, obj: dict) -> Any: ...

    def on_update(self, old: dict, new: dict) -> Any: ...

    def on_delete(self, obj: dict) -> Any: ...


def object_key(obj: dict) -> str:
    """The cache key of an object: "namespace/name", or "name" when it has no namespace."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def resource_version(obj: dict) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


def _uid(obj: dict) -> str | None:
    return (obj.get("metadata") or {}).get("uid")


class Backoff:
    """Capped exponential backoff with full jitter in [delay/2, delay]."""

    def __init__(self, initial: float = 0.8, maximum: float = 30.0, factor: float = 2.0):
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        return delay / 2 + random.random() * delay / 2

    def reset(self) -> None:
        self._next = self.initial


def identity(obj: dict) -> dict:
    """What a metadata-only cache keeps of an object."""
    md = obj.get("metadata") or {}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
            "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in md}}


class Informer:
    def __init__(self, client: Any, resource: Resource, *, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 handler: EventHandler | None = None, backoff_initial: float = 0.8,
                 backoff_max: float = 30.0, watch_timeout: tuple[int, int] = (300, 600),
                 metadata_only: bool = False):
        # metadata_only: the cache keeps each object's identity (kind, name, namespace, uid,
        # resourceVersion) and not the object, for handlers that keep their own view (the
        # agent: its 10k Services and slices would otherwise be held twice). get()/list() and
        # the `old` of on_update and of a relist's on_delete are then those stubs.
        self.metadata_only = metadata_only
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.cache: dict[str, dict] = {}
        self._by_namespace: dict[str, dict[str, dict]] = {}  # index of cache, kept in step with it
        self.synced = asyncio.Event()
        self.resource_version: str | None = None
        self._handlers: list[EventHandler] = [handler] if handler is not None else []
        self._backoff = Backoff(backoff_initial, backoff_max)
        self._watch_timeout = watch_timeout
        self._stopping = False
        self._task: asyncio.Task | None = None

    # -- public ---------------------------------------------------------------------------

    def add_handler(self, handler: EventHandler) -> None:
        """Registers another handler. Objects already cached are not replayed: add handlers
        before run() starts."""
        self._handlers.append(handler)

    def get(self, name: str, namespace: str | None = None) -> dict | None:
        return self.cache.get(f"{namespace}/{name}" if namespace else name)

    def list(self, namespace: str | None = None) -> list[dict]:
        """Cached objects, all or those of one namespace."""
        if namespace is None:
            return list(self.cache.values())
        return list(self._by_namespace.get(namespace, {}).values())

    def _store(self, key: str, obj: dict) -> dict | None:
        old = self.cache.get(key)
        if self.metadata_only:
            obj = identity(obj)
        self.cache[key] = obj
        ns = (obj.get("metadata") or {}).get("namespace")
        if ns:
            self._by_namespace.setdefault(ns, {})[key] = obj
        return old

    def _forget(self, key: str) -> None:
        obj = self.cache.pop(key, None)
        ns = (obj or {}).get("metadata", {}).get("namespace")
        if ns and ns in self._by_namespace:
            self._by_namespace[ns].pop(key, None)
            if not self._by_namespace[ns]:
                del self._by_namespace[ns]

    def stop(self) -> None:
        """Ends run() (it returns normally)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()

    async def run(self) -> None:
        """Lists, then watches, forever until stop(). See the module doc."""
        if self._stopping:
            return
        self._task = asyncio.ensure_future(self._run_forever())
        try:
            await self._task
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        finally:
            self._task = None

    # -- the loop -------------------------------------------------------------------------

    async def _run_forever(self) -> None:
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list_and_deliver()
                    need_list = False
                    self._backoff.reset()
                quiet_end = await self._watch_once()
                if quiet_end:  # the server closed at once without events: do not spin
                    await asyncio.sleep(self._backoff.next_delay())
            except ApiError as exc:
                if exc.code == 410:
                    log.info("%s: resourceVersion %s expired, relisting", self.resource.plural, self.resource_version)
                    need_list = True
                    continue
                delay = self._backoff.next_delay()
                log.warning("%s: %s; retrying in %.1fs", self.resource.plural, exc, delay)
                await asyncio.sleep(delay)
                if exc.code in (400, 404, 422):
                    need_list = True  # the watch itself was refused: start over from a list
            except ApiConnectionError as exc:
                delay = self._backoff.next_delay()
                log.warning("%s: %s; retrying in %.1fs", self.resource.plural, exc, delay)
                await asyncio.sleep(delay)
                need_list = need_list or self.resource_version is None

    async def _list_and_deliver(self) -> None:
        result = await self.client.list(self.resource, namespace=self.namespace,
                                        label_selector=self.label_selector, field_selector=self.field_selector)
        fresh: dict[str, dict] = {}
        for item in result.get("items") or []:
            # List items may omit kind/apiVersion; handlers get complete objects.
            item.setdefault("kind", self.resource.kind)
            item.setdefault("apiVersion", self.resource.group_version)
            fresh[object_key(item)] = item
        old_cache = self.cache
        self.cache = {}
        self._by_namespace = {}
        for key, obj in fresh.items():
            self._store(key, obj)
        self.resource_version = (result.get("metadata") or {}).get("resourceVersion")
        for key, obj in fresh.items():
            old = old_cache.get(key)
            if old is None:
                await self._dispatch("on_add", obj)
            elif _uid(old) != _uid(obj):  # deleted and recreated while we were not watching
                await self._dispatch("on_delete", old)
                await self._dispatch("on_add", obj)
            elif resource_version(old) != resource_version(obj):
                await self._dispatch("on_update", old, obj)
        for key, old in old_cache.items():
            if key not in fresh:
                await self._dispatch("on_delete", old)
        self.synced.set()

    async def _watch_once(self) -> bool:
        """Watches from the current resourceVersion until the server ends the stream.
        Returns True when it ended quickly without delivering anything."""
        started = time.monotonic()
        delivered = False
        timeout = random.randint(*self._watch_timeout) if self._watch_timeout else None
        stream = self.client.watch(self.resource, namespace=self.namespace, resource_version=self.resource_version,
                                   label_selector=self.label_selector, field_selector=self.field_selector,
                                   timeout_seconds=timeout)
        try:
            async for etype, obj in stream:
                delivered = True
                self._backoff.reset()
                await self._apply_event(etype, obj)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        return not delivered and time.monotonic() - started < 1.0

    async def _apply_event(self, etype: str, obj: dict) -> None:
        rv = resource_version(obj)
        if etype == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        obj.setdefault("kind", self.resource.kind)
        obj.setdefault("apiVersion", self.resource.group_version)
        key = object_key(obj)
        if etype in ("ADDED", "MODIFIED"):
            old = self._store(key, obj)
            if rv:
                self.resource_version = rv
            if old is None:
                await self._dispatch("on_add", obj)
            elif resource_version(old) != rv:
                await self._dispatch("on_update", old, obj)
        elif etype == "DELETED":
            self._forget(key)
            if rv:
                self.resource_version = rv
            await self._dispatch("on_delete", obj)  # the final state the server sent
        else:
            log.warning("%s: ignoring unknown watch event type %r", self.resource.plural, etype)

    async def _dispatch(self, method: str, *args: dict) -> None:
        for handler in self._handlers:
            fn = getattr(handler, method, None)
            if fn is None:
                continue
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a broken handler must not stop the informer
                log.exception("%s: handler %s.%s failed", self.resource.plural, type(handler).__name__, method)
