"""An in-memory copy of every value under one store prefix, kept current by a store watch.

For hot reads on every request that would otherwise query the store each time (the quota
admission reads a namespace's ResourceQuotas before every namespaced write). The watch
callback runs on the store's writer thread before the write returns to its caller, so a read
made after a write has returned sees it, as a read of the store would.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from kproxy.store import base as sb


class PrefixMirror:
    def __init__(self, store: sb.Store, prefix: str):
        self._lock = threading.Lock()
        listed, revision = store.list(prefix)
        self._values: dict[str, dict[str, Any]] = {kv.key: kv.value for kv in listed}
        self._cancel: Callable[[], None] | None = store.watch(prefix, revision, self._apply)

    def _apply(self, event: sb.Event) -> None:
        with self._lock:
            if event.type == sb.DELETED:
                self._values.pop(event.key, None)
            else:
                self._values[event.key] = event.value

    def get(self, key: str) -> dict[str, Any] | None:
        """The value at `key` (read-only: it is shared), None when there is none."""
        with self._lock:
            return self._values.get(key)

    def values(self, prefix: str) -> list[dict[str, Any]]:
        """The values whose keys start with `prefix` (read-only: they are shared)."""
        with self._lock:
            return [value for key, value in self._values.items() if key.startswith(prefix)]

    def close(self) -> None:
        if self._cancel is not None:
            self._cancel()
            self._cancel = None


class LazyMirror:
    """A PrefixMirror made on first use (it lists and watches the store when made)."""

    def __init__(self, store: sb.Store, prefix: str):
        self._store, self._prefix = store, prefix
        self._mirror: PrefixMirror | None = None
        self._lock = threading.Lock()

    def __call__(self) -> PrefixMirror:
        with self._lock:
            if self._mirror is None:
                self._mirror = PrefixMirror(self._store, self._prefix)
            return self._mirror
