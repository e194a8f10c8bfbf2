"""The bytes of one watch stream, sans I/O: store events and the time go in, newline-delimited
JSON frames (or length-delimited protobuf WatchEvents) come out (ADDED/MODIFIED/DELETED,
BOOKMARK, the WatchList initial-events-end bookmark, ERROR 410 for a too-old resourceVersion
or a watcher that fell behind), and the framer says how long the pump may wait and when the
stream is over (timeoutSeconds).

The pump in rest.py owns the socket, the subscription and the clock; it hands everything it
gets to a `WatchFramer` and writes what comes back.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from kproxy.api.resources import Resource
from kproxy.apiserver import protobuf, watch
from kproxy.store import base as sb

# JSON (str) or protobuf (bytes) of an object version, keyed by (revision, store key) so
# watchers can share it
Encode = Callable[[tuple[int, str], dict[str, Any]], Any]
# the Table of one object: (object, with column definitions) -> Table
RenderTable = Callable[[dict[str, Any], bool], dict[str, Any]]


def _line(obj: Any) -> bytes:
    return (json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


@dataclass(frozen=True)
class WatchRequest:
    """What a watch request asks for, parsed from its query and headers."""
    label_selector: Any = None
    field_selector: Any = None
    start: int | None = None  # resourceVersion to resume after; None: the current state first
    timeout: int | None = None  # timeoutSeconds; None or 0: until the client or server ends it
    bookmarks: bool = False  # allowWatchBookmarks
    send_initial: bool = False  # sendInitialEvents (WatchList): initial-events-end bookmark
    table: RenderTable | None = None  # the form Accept asked for (Table, PartialObjectMetadata)
    protobuf: bool = False  # Accept asked for protobuf: `encode` gives protobuf bytes


class WatchFramer:
    def __init__(self, resource: Resource, request: WatchRequest, encode: Encode,
                 bookmark_interval: float, idle_check_interval: float):
        self.resource = resource
        self.request = request
        self.encode = encode
        self.bookmark_interval = bookmark_interval
        self.idle_check_interval = idle_check_interval
        self.last = 0  # the revision up to which the watcher has seen everything
        self.finished = False
        self._deadline: float | None = None
        self._next_bookmark = 0.0
        self._columns_sent = False

    def _event(self, event: dict[str, Any]) -> bytes:
        """A bookmark or ERROR event, framed as the stream's other events."""
        if self.request.protobuf:
            return protobuf.watch_frame(event["type"], protobuf.encode(event["object"]))
        return _line(event)

    def _frame(self, event_type: str, obj: dict[str, Any], cache_key: tuple[int, str]) -> bytes:
        if self.request.table is not None:
            table = self.request.table(obj, not self._columns_sent)
            self._columns_sent = True
            return _line({"type": event_type, "object": table})
        if self.request.protobuf:
            return protobuf.watch_frame(event_type, self.encode(cache_key, obj))
        return f'{{"type":"{event_type}","object":{self.encode(cache_key, obj)}}}\n'.encode()

    def _frames(self, events: Iterable[sb.Event]) -> list[bytes]:
        lines = []
        for event in events:
            self.last = max(self.last, event.revision)
            ev = watch.translate(event, self.request.label_selector, self.request.field_selector)
            if ev:
                lines.append(self._frame(ev[0], ev[1], (event.revision, event.key)))
        return lines

    def open(self, listed: Iterable[sb.KeyValue], revision: int, now: float) -> bytes:
        """The start of the stream once subscribed at `revision`: the listed current state as
        ADDED events (empty when resuming) and, for WatchList, the initial-events-end bookmark."""
        self.last = revision
        if self.request.timeout:
            self._deadline = now + self.request.timeout
        self._next_bookmark = now + self.bookmark_interval
        lines = self._frames(sb.Event(sb.ADDED, kv.key, kv.value, kv.mod_revision) for kv in listed)
        self.last = revision
        if self.request.send_initial and self.request.bookmarks:
            lines.append(self._event(watch.bookmark(self.resource, revision, initial_events_end=True)))
        return b"".join(lines)

    def too_old(self, requested: Any, oldest: Any) -> bytes:
        """The whole stream when the requested resourceVersion is compacted away: 410."""
        self.finished = True
        return self._event(watch.expired(f"too old resource version: {requested} ({oldest})"))

    def overflowed(self) -> bytes:
        """The end of a stream whose watcher fell too far behind: 410, so it relists."""
        self.finished = True
        return self._event(watch.expired(
            "the watch fell too far behind the event stream; relist and watch again"))

    def wait_time(self, now: float) -> float:
        """How long the pump may wait for events before calling `events` again; sets
        `finished` when the timeout has passed."""
        if self._deadline is not None and now >= self._deadline:
            self.finished = True
            return 0.0
        wait = self.idle_check_interval
        if self._deadline is not None:
            wait = min(wait, self._deadline - now)
        if self.request.bookmarks:
            wait = min(wait, max(0.0, self._next_bookmark - now))
        return max(0.0, wait)

    def events(self, events: Iterable[sb.Event], now: float) -> bytes:
        """Frames for the store events that arrived, plus a bookmark when one is due."""
        lines = self._frames(events)
        if self.request.bookmarks and now >= self._next_bookmark:
            lines.append(self._event(watch.bookmark(self.resource, self.last)))
            self._next_bookmark = now + self.bookmark_interval
        return b"".join(lines)
