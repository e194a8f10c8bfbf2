"""The store contract: a revisioned key-value store of JSON objects, like etcd's.

Guarantees every implementation gives (SQLite embedded, etcd later):
- One global revision counter. Every successful create/update/delete increments it by exactly
  one and stamps the written key with that revision (its `mod_revision`). It never goes back,
  also across a restart or a `kill -9`.
- A write that returned has been committed durably (fsync) before it returned.
- `update`/`delete` with `expected_revision` succeed only if the key's current mod_revision
  equals it (optimistic concurrency), else raise Conflict.
- `watch(prefix, from_revision, callback)` delivers, in revision order and exactly once, every
  event with revision > from_revision for keys under `prefix`: first the retained history, then
  live events. If from_revision is older than the retained history, it raises Gone.
  Callbacks run on the writer's thread right after commit, before the write returns; they must
  be quick and must not write, watch or close the store (hand the event to a queue). An event's
  values are shared between watchers: treat them as read-only.
Values are JSON-serialisable dicts. The store never interprets them; the apiserver puts the
revision into metadata.resourceVersion on the way out.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"


class StoreError(Exception):
    """Base of every error the store raises."""


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


class Conflict(StoreError):
    """expected_revision did not match the key's current mod_revision."""


class TooLarge(StoreError):
    """The encoded value is over MAX_VALUE_BYTES (etcd's limit is about 1.5 MiB per request)."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"the object is {size} bytes, over the store's limit of {limit} bytes")
        self.size = size
        self.limit = limit


MAX_VALUE_BYTES = 1536 * 1024  # etcd's default --max-request-bytes, which bounds one object there


class Gone(StoreError):
    """The requested revision is older than the retained watch history (compacted).
    `oldest` is the oldest from_revision a watch still accepts (the highest trimmed revision)."""

    def __init__(self, requested: int, oldest: int):
        super().__init__(f"revision {requested} is older than the oldest retained {oldest}")
        self.requested = requested
        self.oldest = oldest


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: dict[str, Any]
    mod_revision: int
    create_revision: int


@dataclass(frozen=True)
class Event:
    type: str  # ADDED | MODIFIED | DELETED
    key: str
    value: dict[str, Any]  # the new value; for DELETED the last value before deletion
    revision: int  # the revision of this change
    prev_value: dict[str, Any] | None = None


WatchCallback = Callable[[Event], None]
KeyValues = list[KeyValue]  # a name the Store classes can use: their `list` method hides the builtin


class Store(abc.ABC):
    @abc.abstractmethod
    def get(self, key: str) -> KeyValue:
        """The key's current value; raises NotFound."""

    @abc.abstractmethod
    def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        """All keys under `prefix` sorted by key, and the store revision they are consistent at."""

    def list_at(self, prefix: str, revision: int) -> KeyValues:
        """All keys under `prefix` as they were at `revision`, sorted by key (etcd's Range at a
        revision: what a paged list needs to serve every page from one snapshot). Raises Gone
        when the store can no longer show that state, ValueError for a future revision. This
        default serves the current revision only."""
        kvs, current = self.list(prefix)
        if revision > current:
            raise ValueError(f"revision {revision} is newer than the current revision {current}")
        if revision != current:
            raise Gone(revision, current)
        return kvs

    @abc.abstractmethod
    def create(self, key: str, value: dict[str, Any]) -> KeyValue:
        """Creates `key`; raises AlreadyExists. Returns the stored KeyValue."""

    @abc.abstractmethod
    def update(self, key: str, value: dict[str, Any], expected_revision: int | None = None) -> KeyValue:
        """Replaces `key`'s value; raises NotFound or Conflict. Returns the stored KeyValue."""

    @abc.abstractmethod
    def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        """Deletes `key`; raises NotFound or Conflict. Returns the deleted value with the
        revision of the deletion as mod_revision."""

    @abc.abstractmethod
    def watch(self, prefix: str, from_revision: int, callback: WatchCallback) -> Callable[[], None]:
        """Subscribes `callback` to events under `prefix` after `from_revision` (see module doc).
        Returns a function that cancels the subscription. Raises Gone."""

    @property
    @abc.abstractmethod
    def revision(self) -> int:
        """The current global revision (0 for an empty new store)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Releases files and connections; pending watches are cancelled."""
