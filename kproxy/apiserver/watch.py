"""Watch fan-out: store events -> one bounded queue per HTTP watcher -> watch frames.

The store calls `WatchQueue.push` on its writer thread; push never blocks and never waits for
the watcher. A watcher that falls more than `limit` events behind is marked overflowed; its
stream then ends with an ERROR event carrying 410 Expired so the client relists, and the
writer is never slowed down by it.
"""
from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any

from kproxy.api import status as st
from kproxy.api.resources import Resource
from kproxy.store import base as sb


class Waker:
    """One loop wakeup for every queue a store event reaches.

    A write seen by thousands of watchers would otherwise cost thousands of
    `call_soon_threadsafe` calls (each a write to the loop's self-pipe) on the store's writer
    thread. Queues with news are marked here; the first mark since the loop last flushed
    schedules one call that wakes all of them.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._lock = threading.Lock()
        self._ready: list[WatchQueue] = []

    def mark(self, queue: WatchQueue) -> None:
        with self._lock:
            self._ready.append(queue)
            if len(self._ready) > 1:
                return  # a flush is already scheduled
        try:
            self._loop.call_soon_threadsafe(self._flush)
        except RuntimeError:
            pass  # the loop is closed: the server is shutting down

    def _flush(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for queue in ready:
            queue.wake()


class WatchQueue:
    def __init__(self, waker: Waker, limit: int):
        self._waker = waker
        self._limit = limit
        self._lock = threading.Lock()
        self._events: collections.deque[sb.Event] = collections.deque()
        self._wakeup = asyncio.Event()
        self._wake_pending = False
        self.overflowed = False

    def push(self, event: sb.Event) -> None:
        """Called by the store on its writer thread: O(1), never blocks."""
        with self._lock:
            if self.overflowed:
                return
            if len(self._events) >= self._limit:
                self.overflowed = True
                self._events.clear()
            else:
                self._events.append(event)
            if self._wake_pending:
                return
            self._wake_pending = True
        self._waker.mark(self)

    def wake(self) -> None:
        """Wakes the consumer (on the loop: from the waker, and on shutdown)."""
        self._wakeup.set()

    async def wait(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):  # no task per wait, unlike wait_for
                await self._wakeup.wait()
        except TimeoutError:
            pass

    def drain(self) -> list[sb.Event]:
        with self._lock:
            events = list(self._events)
            self._events.clear()
            self._wake_pending = False
            self._wakeup.clear()
        return events


def translate(event: sb.Event, label_selector: Any, field_selector: Any) -> tuple[str, dict[str, Any]] | None:
    """The watch event a watcher with these selectors sees for a store event, or None.

    As in Kubernetes, an object that stops matching is DELETED for this watcher and one that
    starts matching is ADDED. The object carries the event's revision as resourceVersion.
    """
    def matches(obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        if label_selector is not None and not label_selector.matches((obj.get("metadata") or {}).get("labels")):
            return False
        if field_selector is not None and not field_selector.matches(obj):
            return False
        return True

    new = event.value
    if event.type in (sb.DELETED, sb.ADDED):
        kind = event.type if matches(new) else None
    else:
        now_matches = matches(new)
        before_matches = matches(event.prev_value) if event.prev_value is not None else now_matches
        if now_matches:
            kind = sb.MODIFIED if before_matches else sb.ADDED
        else:
            kind = sb.DELETED if before_matches else None
    if kind is None:
        return None
    # The store hands every watcher its own copy of the value, so it is stamped in place.
    meta = new.get("metadata")
    if not isinstance(meta, dict):
        meta = new["metadata"] = {}
    meta["resourceVersion"] = str(event.revision)
    return kind, new


def bookmark(resource: Resource, revision: int, initial_events_end: bool = False) -> dict[str, Any]:
    """A BOOKMARK event: only the kind and the resourceVersion up to which the watcher has
    seen everything (plus the WatchList end-of-initial-events annotation when asked)."""
    meta: dict[str, Any] = {"resourceVersion": str(revision)}
    if initial_events_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"type": "BOOKMARK", "object": {"kind": resource.kind, "apiVersion": resource.group_version,
                                           "metadata": meta}}


def expired(message: str) -> dict[str, Any]:
    return {"type": "ERROR", "object": st.gone(message).status}
