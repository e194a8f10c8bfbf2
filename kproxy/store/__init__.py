"""Revisioned key-value stores for the apiserver (contract in kproxy.store.base).

`open_store(target)` is the one way to open a store from a command-line value:
- a directory path (created if missing): the SQLite store in DIR/store.db;
- "sqlite:///path/to/file.db": that SQLite file (an existing directory gets DIR/store.db);
- "etcd://..." / "http(s)://...": the etcd backend, which does not exist yet (StoreError).
"""
from __future__ import annotations

import os

from kproxy.store.base import (
    ADDED,
    DELETED,
    MODIFIED,
    AlreadyExists,
    Conflict,
    Event,
    Gone,
    KeyValue,
    NotFound,
    Store,
    StoreError,
)

DEFAULT_DB_NAME = "store.db"

__all__ = [
    "ADDED", "DELETED", "MODIFIED", "AlreadyExists", "Conflict", "Event", "Gone", "KeyValue",
    "NotFound", "Store", "StoreError", "open_store", "DEFAULT_DB_NAME",
]


def open_store(target: str, history: int = 10000) -> Store:
    """Opens the store named by `target` (see module doc). Raises StoreError with a one-line
    message for anything it cannot open."""
    from kproxy.store.sqlite import SQLiteStore

    if not isinstance(target, str) or not target.strip():
        raise StoreError("store target is empty: give a data directory or sqlite:///path")
    target = target.strip()
    scheme, sep, rest = target.partition("://")
    if sep:
        scheme = scheme.lower()
        if scheme in ("etcd", "etcd3", "http", "https", "unix"):
            raise StoreError(f"etcd store {target!r} is not supported yet; use a data directory or sqlite:///path")
        if scheme != "sqlite":
            raise StoreError(f"unsupported store URL {target!r}; use a data directory or sqlite:///path")
        if not rest.startswith("/"):
            raise StoreError(f"sqlite URL needs an absolute path (sqlite:///abs/path), got {target!r}")
        path = rest
        if os.path.isdir(path):
            path = os.path.join(path, DEFAULT_DB_NAME)
    else:
        if os.path.exists(target) and not os.path.isdir(target):
            raise StoreError(f"store directory {target!r} is not a directory")
        try:
            os.makedirs(target, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store directory {target!r}: {exc.strerror}") from None
        path = os.path.join(target, DEFAULT_DB_NAME)
    return SQLiteStore(path, history=history)
