"""Controller expectations, as client-go's ControllerExpectations: a controller that has just
created or deleted pods waits until its informer has seen those writes before it counts pods
again, so a slow informer never makes it create (or delete) the same pods twice.

Expectations expire after `ttl` seconds (a lost watch event must not stall an owner forever).
Single event loop; not thread-safe.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

EXPECTATIONS_TTL = 300.0


@dataclass
class _Pending:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)  # keys of pods we asked to delete
    since: float = 0.0


class Expectations:
    def __init__(self, ttl: float = EXPECTATIONS_TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._pending: dict[str, _Pending] = {}

    def satisfied(self, owner: str) -> bool:
        """True when every expected create and delete of `owner` has been observed (or the
        expectations expired, or none were ever set)."""
        p = self._pending.get(owner)
        if p is None:
            return True
        if (p.adds <= 0 and not p.deletes) or self.clock() - p.since > self.ttl:
            del self._pending[owner]
            return True
        return False

    def expect_creations(self, owner: str, n: int) -> None:
        p = self._pending.setdefault(owner, _Pending(since=self.clock()))
        p.adds += n
        p.since = self.clock()

    def expect_deletions(self, owner: str, keys: list[str]) -> None:
        p = self._pending.setdefault(owner, _Pending(since=self.clock()))
        p.deletes.update(keys)
        p.since = self.clock()

    def creation_observed(self, owner: str) -> None:
        """One expected pod of `owner` showed up (or its create failed)."""
        p = self._pending.get(owner)
        if p is not None and p.adds > 0:
            p.adds -= 1

    def deletion_observed(self, owner: str, key: str) -> None:
        p = self._pending.get(owner)
        if p is not None:
            p.deletes.discard(key)

    def forget(self, owner: str) -> None:
        self._pending.pop(owner, None)


class WrittenVersions:
    """The resourceVersions a controller wrote, per owner, until its informer cache holds
    them: `stale(owner, cache)` is True while a cached object is older than (or lacks) what we
    wrote, so a reconcile never acts on specs it has just changed (and so never scales the
    same ReplicaSet twice). Entries expire after `ttl` seconds."""

    def __init__(self, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._written: dict[str, dict[str, tuple[int, float]]] = {}

    def wrote(self, owner: str, key: str, resource_version: str | None) -> None:
        try:
            rv = int(resource_version or "")
        except ValueError:
            return
        self._written.setdefault(owner, {})[key] = (rv, self.clock() + self.ttl)

    def stale(self, owner: str, cache: dict[str, dict], *, gone_is_fresh: bool = False) -> bool:
        """`gone_is_fresh`: an object missing from `cache` was deleted after our write, which
        the cache has therefore seen (rather than not yet created by it)."""
        entries = self._written.get(owner)
        if not entries:
            return False
        now = self.clock()
        for key, (rv, deadline) in list(entries.items()):
            cached = cache.get(key)
            try:
                cached_rv = int(((cached or {}).get("metadata") or {}).get("resourceVersion") or 0)
            except ValueError:
                cached_rv = 0
            if now > deadline or cached_rv >= rv or (gone_is_fresh and cached is None):
                del entries[key]
        if not entries:
            del self._written[owner]
            return False
        return True

    def forget(self, owner: str) -> None:
        self._written.pop(owner, None)
