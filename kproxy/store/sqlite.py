"""The embedded store: one SQLite database in WAL mode, implementing kproxy.store.base.Store.

Guarantees beyond the contract in base.py:
- Durability: `synchronous=FULL` makes every COMMIT fsync the WAL before it returns, and a write
  returns only after the COMMIT that holds it. Concurrent writers are group-committed: a thread
  that finds the commit lock free takes every write queued so far and commits them in one
  transaction (one fsync); each of them returns after that commit, never before. Revisions are
  assigned in queue order, so the result is exactly that of running the writes one by one.
- The revision counter lives in the database (table `meta`) and is written in the same
  transaction as the change it numbers, so it never goes back, also after `kill -9`.
- The event log (table `events`) keeps the last `history` events, also across a restart, so a
  watcher can resume from a revision it saw before the process died. `Gone.oldest` is the
  oldest `from_revision` a watch still accepts (the highest trimmed revision).
- A watch replays retained history and subscribes while holding the commit lock, so no event
  is lost or delivered twice. Live events are delivered on the committing thread, after the
  commit and before the writes of that batch return: when `create` returns, every matching
  watcher has already been handed its event. An event's value dicts are decoded once and
  shared by every watcher that receives it: watchers must treat them as read-only (copy
  before changing). `prev_value` is None for ADDED, the replaced value for MODIFIED and the
  last value (same as `value`) for DELETED.
- `list` runs in one read transaction on a reader connection and returns the revision that
  transaction saw; reads never wait for writers (WAL).
- Values are stored as JSON text: what `create`/`update` return (and what get, list and watch
  later give) is the stored form, a fresh copy (non-string dict keys become strings, tuples
  become lists). Non-dict values, NaN/Infinity and non-JSON types raise ValueError; a value
  whose JSON is over MAX_VALUE_BYTES raises TooLarge, and nothing is written.
- One process at a time: the database is guarded by an exclusive flock on "<path>.lock".
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from kproxy.store.base import (
    ADDED,
    DELETED,
    MODIFIED,
    AlreadyExists,
    Conflict,
    Event,
    MAX_VALUE_BYTES,
    Gone,
    KeyValue,
    KeyValues,
    NotFound,
    Store,
    StoreError,
    TooLarge,
    WatchCallback,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    key             TEXT PRIMARY KEY,
    value           TEXT NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    revision   INTEGER PRIMARY KEY,
    type       TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    prev_value TEXT,
    prev_revision INTEGER,   -- the replaced version's mod_revision (NULL for ADDED)
    create_revision INTEGER  -- the key's create_revision when the event happened
);
"""
# columns added to `events` after schema 1 was first released: added in place when missing
_EVENT_COLUMNS_ADDED = (("prev_revision", "INTEGER"), ("create_revision", "INTEGER"))

_CREATE, _UPDATE, _DELETE = "create", "update", "delete"


@dataclass
class _Write:
    """One queued write and, once its batch committed, its outcome."""

    op: str
    key: str
    value_json: str | None
    expected_revision: int | None
    done: bool = False
    result: KeyValue | None = None
    error: BaseException | None = None
    event: tuple[str, str, str, str | None, int] | None = None  # type, key, value, prev, revision


@dataclass
class _Subscription:
    prefix: str
    after: int  # deliver only revisions greater than this
    callback: WatchCallback
    active: bool = True


def _encode(value: Any) -> str:
    if not isinstance(value, dict):
        raise ValueError(f"store values must be dicts, not {type(value).__name__}")
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"store value is not JSON-serialisable: {exc}") from None
    if len(text) > MAX_VALUE_BYTES and len(text.encode("utf-8")) > MAX_VALUE_BYTES:
        raise TooLarge(len(text.encode("utf-8")), MAX_VALUE_BYTES)
    return text


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError("store keys must be non-empty strings")
    if "\x00" in key:
        raise ValueError("store keys must not contain NUL")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("store keys must be valid Unicode (no lone surrogates)") from None


def _prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None: no bound).

    SQLite's BINARY collation compares UTF-8 bytes, which orders like code points, so a
    half-open range [prefix, bound) selects exactly the keys that start with `prefix`."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be stored; skip past them
                nxt = 0xE000
            return prefix[:-1] + chr(nxt)
        prefix = prefix[:-1]
    return None


def _key_range(prefix: str) -> tuple[str, tuple[str, ...]]:
    """The SQL condition (and its parameters) that selects the keys starting with `prefix`."""
    upper = _prefix_upper_bound(prefix)
    if upper is None:
        return "key >= ?", (prefix,)
    return "key >= ? AND key < ?", (prefix, upper)


_LaterEvent = tuple[str, str, str, str | None, int | None, int | None]


def _rewind(rows: list[tuple[str, str, int, int]], later: list[_LaterEvent], revision: int,
            compacted: int) -> list[KeyValue]:
    """The keys at `revision`, from today's `rows` (key, value, create, mod) and the events
    after `revision` in revision order (key, type, value, prev value, prev mod_revision,
    create_revision). A key's first event after `revision` tells its state then: ADDED means
    it did not exist, otherwise it held that event's previous version. An event written
    before the store recorded previous revisions cannot be undone: Gone."""
    state = {key: (value, create, mod) for key, value, create, mod in rows}
    seen: set[str] = set()
    for key, kind, value, prev, prev_revision, create in later:
        if key in seen:
            continue
        seen.add(key)
        if kind == ADDED:
            state.pop(key, None)
        elif prev_revision is None or create is None:
            raise Gone(revision, compacted)
        else:
            state[key] = (prev if prev is not None else value, create, prev_revision)
    return [KeyValue(key, json.loads(value), mod, create)
            for key, (value, create, mod) in sorted(state.items())]


def _decode(raw: tuple[str, str, str, str | None, int]) -> Event:
    kind, key, value_json, prev_json, revision = raw
    value = json.loads(value_json)
    if prev_json is None:
        prev = None
    elif kind == DELETED:  # the last value is both the value and the previous one
        prev = value
    else:
        prev = json.loads(prev_json)
    return Event(kind, key, value, revision, prev)


class SQLiteStore(Store):
    """A durable revisioned key-value store in one SQLite file (see module doc)."""

    def __init__(self, path: str, history: int = 10000):
        if history < 1:
            raise ValueError("history must be at least 1")
        self.path = os.fspath(path)
        self.history = history
        self._closed = False
        self._lock_fd = self._acquire_file_lock(self.path + ".lock")
        try:
            self._writer = self._connect()
            self._revision, self._compacted = self._init_schema()
        except BaseException:
            os.close(self._lock_fd)
            raise
        # Serialises transactions, history replay + subscribe, and event dispatch.
        self._commit_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: list[_Write] = []
        self._subscriptions: list[_Subscription] = []
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._dispatching = threading.local()

    # ---- opening -------------------------------------------------------------------------

    @staticmethod
    def _acquire_file_lock(lock_path: str) -> int:
        directory = os.path.dirname(lock_path) or "."
        if not os.path.isdir(directory):
            raise StoreError(f"store directory {directory!r} does not exist")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open store lock file {lock_path!r}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"store {lock_path[:-5]!r} is already open (by this or another process)") from None
        return fd

    def _connect(self) -> sqlite3.Connection:
        """A connection in WAL mode that fsyncs the WAL on every commit."""
        try:
            # created 0600 whatever the umask; SQLite gives -wal and -shm the same mode
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except OSError as exc:
            raise StoreError(f"cannot open store {self.path!r}: {exc.strerror}") from None
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path!r}: {exc}") from None
        try:
            conn.execute("PRAGMA busy_timeout=10000")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"cannot put {self.path!r} in WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous=FULL")
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open store {self.path!r}: {exc}") from None
            raise
        return conn

    def _init_schema(self) -> tuple[int, int]:
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
            schema = meta.get("schema")
            if schema is None:
                conn.executemany(
                    "INSERT INTO meta(name, value) VALUES (?, ?)",
                    [("schema", SCHEMA_VERSION), ("revision", 0), ("compacted", 0)],
                )
                revision, compacted = 0, 0
            elif schema != SCHEMA_VERSION:
                raise StoreError(f"store {self.path!r} has schema {schema}, this kproxy reads {SCHEMA_VERSION}")
            else:
                revision, compacted = int(meta["revision"]), int(meta["compacted"])
                present = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
                for column, kind in _EVENT_COLUMNS_ADDED:
                    if column not in present:  # older rows keep NULL: list_at cannot rewind them
                        conn.execute(f"ALTER TABLE events ADD COLUMN {column} {kind}")
            # A smaller `history` than last time trims now, so Gone is decided consistently.
            compacted = self._trim(conn, revision, compacted)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreError(f"cannot open store {self.path!r}: {exc}") from None
            raise
        return revision, compacted

    def _trim(self, conn: sqlite3.Connection, revision: int, compacted: int) -> int:
        """Drops events older than the last `history`; returns the new compacted revision."""
        floor = revision - self.history
        if floor > compacted:
            conn.execute("DELETE FROM events WHERE revision <= ?", (floor,))
            conn.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (floor,))
            return floor
        return compacted

    # ---- reads ---------------------------------------------------------------------------

    def _reader(self) -> _ReaderLease:
        self._check_open()
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = self._connect()
            with self._readers_lock:
                self._all_readers.append(conn)
        return _ReaderLease(self, conn)

    def get(self, key: str) -> KeyValue:
        _check_key(key)
        with self._reader() as conn:
            row = conn.execute(
                "SELECT value, create_revision, mod_revision FROM kv WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            raise NotFound(key)
        return KeyValue(key, json.loads(row[0]), row[2], row[1])

    def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        if not isinstance(prefix, str):
            raise ValueError("prefix must be a string")
        upper = _prefix_upper_bound(prefix)
        with self._reader() as conn:
            conn.execute("BEGIN")  # one snapshot for the revision and the rows
            try:
                revision = conn.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0]
                if upper is None:
                    rows = conn.execute(
                        "SELECT key, value, create_revision, mod_revision FROM kv WHERE key >= ? ORDER BY key",
                        (prefix,),
                    ).fetchall()
                else:
                    rows = conn.execute(
                        "SELECT key, value, create_revision, mod_revision FROM kv "
                        "WHERE key >= ? AND key < ? ORDER BY key",
                        (prefix, upper),
                    ).fetchall()
            finally:
                conn.execute("COMMIT")
        return [KeyValue(k, json.loads(v), mod, create) for k, v, create, mod in rows], revision

    def list_at(self, prefix: str, revision: int) -> KeyValues:
        """The keys under `prefix` at an older `revision`, in one read transaction: today's
        rows with the retained events after `revision` undone (see base.Store.list_at)."""
        if not isinstance(prefix, str):
            raise ValueError("prefix must be a string")
        in_range, params = _key_range(prefix)
        with self._reader() as conn:
            conn.execute("BEGIN")  # one snapshot for the rows, the events and the counters
            try:
                meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
                current, compacted = int(meta["revision"]), int(meta["compacted"])
                if revision > current:
                    raise ValueError(f"revision {revision} is newer than the current revision {current}")
                if revision < compacted:
                    raise Gone(revision, compacted)
                rows = conn.execute(
                    f"SELECT key, value, create_revision, mod_revision FROM kv WHERE {in_range} ORDER BY key",
                    params).fetchall()
                later = conn.execute(
                    "SELECT key, type, value, prev_value, prev_revision, create_revision FROM events "
                    f"WHERE revision > ? AND {in_range} ORDER BY revision", (revision, *params)).fetchall()
            finally:
                conn.execute("COMMIT")
        return _rewind(rows, later, revision, compacted)

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def compacted_revision(self) -> int:
        """The oldest `from_revision` a watch accepts; older ones raise Gone."""
        return self._compacted

    # ---- writes --------------------------------------------------------------------------

    def create(self, key: str, value: dict[str, Any]) -> KeyValue:
        _check_key(key)
        return self._submit(_Write(_CREATE, key, _encode(value), None))

    def update(self, key: str, value: dict[str, Any], expected_revision: int | None = None) -> KeyValue:
        _check_key(key)
        return self._submit(_Write(_UPDATE, key, _encode(value), expected_revision))

    def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        _check_key(key)
        return self._submit(_Write(_DELETE, key, None, expected_revision))

    def _in_callback(self) -> bool:
        return getattr(self._dispatching, "active", False)

    def _refuse_in_callback(self, what: str) -> None:
        # The callback runs under the commit lock: writing, watching or closing from it would
        # deadlock, so it is refused with an error instead.
        if self._in_callback():
            raise StoreError(f"a watch callback must not {what} the store")

    def _submit(self, write: _Write) -> KeyValue:
        self._refuse_in_callback("write to")
        self._check_open()
        with self._pending_lock:
            self._pending.append(write)
        with self._commit_lock:
            if not write.done:  # nobody took it yet: lead a batch with everything queued
                self._check_open()
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._run_batch(batch)
        if write.error is not None:
            raise write.error
        assert write.result is not None
        return write.result

    def _run_batch(self, writes: list[_Write]) -> None:
        """Applies `writes` in one transaction, commits (fsync), then dispatches their events.
        Called with the commit lock held. Every write ends `done` with a result or an error."""
        conn = self._writer
        revision = self._revision
        compacted = self._compacted
        try:
            conn.execute("BEGIN IMMEDIATE")
            for write in writes:
                try:
                    write.result = self._apply(conn, write, revision + 1)
                except (NotFound, AlreadyExists, Conflict) as exc:
                    write.error = exc
                    continue
                revision += 1
            if revision != self._revision:
                conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (revision,))
                compacted = self._trim(conn, revision, compacted)
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("rollback after a failed store commit failed")
            error = StoreError(f"store write failed: {exc}") if isinstance(exc, sqlite3.Error) else exc
            for write in writes:
                write.result, write.error, write.event, write.done = None, error, None, True
            return
        self._revision, self._compacted = revision, compacted
        self._dispatch([w.event for w in writes if w.event is not None])
        for write in writes:
            write.done = True

    @staticmethod
    def _apply(conn: sqlite3.Connection, write: _Write, revision: int) -> KeyValue:
        """Stages one write inside the open transaction, numbered `revision`."""
        row = conn.execute(
            "SELECT value, create_revision, mod_revision FROM kv WHERE key = ?", (write.key,)
        ).fetchone()
        if write.op == _CREATE:
            if row is not None:
                raise AlreadyExists(write.key)
            conn.execute(
                "INSERT INTO kv(key, value, create_revision, mod_revision) VALUES (?, ?, ?, ?)",
                (write.key, write.value_json, revision, revision),
            )
            event = (ADDED, write.key, write.value_json, None, revision)
            create_revision, prev_revision = revision, None
        else:
            if row is None:
                raise NotFound(write.key)
            old_json, create_revision, mod_revision = row
            prev_revision = mod_revision
            if write.expected_revision is not None and write.expected_revision != mod_revision:
                raise Conflict(
                    f"{write.key}: expected revision {write.expected_revision}, current is {mod_revision}"
                )
            if write.op == _UPDATE:
                conn.execute(
                    "UPDATE kv SET value = ?, mod_revision = ? WHERE key = ?",
                    (write.value_json, revision, write.key),
                )
                event = (MODIFIED, write.key, write.value_json, old_json, revision)
            else:
                conn.execute("DELETE FROM kv WHERE key = ?", (write.key,))
                event = (DELETED, write.key, old_json, old_json, revision)
        conn.execute(
            "INSERT INTO events(revision, type, key, value, prev_value, prev_revision, create_revision) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (revision, event[0], event[1], event[2], event[3], prev_revision, create_revision),
        )
        write.event = event
        return KeyValue(write.key, json.loads(event[2]), revision, create_revision)

    # ---- watch ---------------------------------------------------------------------------

    def watch(self, prefix: str, from_revision: int, callback: WatchCallback) -> Callable[[], None]:
        if not isinstance(prefix, str):
            raise ValueError("prefix must be a string")
        if not isinstance(from_revision, int) or from_revision < 0:
            raise ValueError("from_revision must be a non-negative integer")
        self._refuse_in_callback("watch")
        subscription = _Subscription(prefix, from_revision, callback)
        with self._commit_lock:
            self._check_open()
            if from_revision < self._compacted:
                raise Gone(from_revision, self._compacted)
            for raw in self._history(prefix, from_revision):
                self._deliver(subscription, _decode(raw))
            if subscription.active:  # the callback may have cancelled during the replay
                self._subscriptions.append(subscription)

        def cancel() -> None:
            # Under the commit lock, so no event reaches the callback once cancel returns
            # (unless cancel is called from the callback itself, on the dispatching thread).
            if self._in_callback():
                subscription.active = False
                return
            with self._commit_lock:
                subscription.active = False
                if subscription in self._subscriptions:
                    self._subscriptions.remove(subscription)

        return cancel

    def _history(self, prefix: str, from_revision: int) -> Iterator[tuple[str, str, str, str | None, int]]:
        upper = _prefix_upper_bound(prefix)
        if upper is None:
            rows = self._writer.execute(
                "SELECT type, key, value, prev_value, revision FROM events "
                "WHERE revision > ? AND key >= ? ORDER BY revision",
                (from_revision, prefix),
            )
        else:
            rows = self._writer.execute(
                "SELECT type, key, value, prev_value, revision FROM events "
                "WHERE revision > ? AND key >= ? AND key < ? ORDER BY revision",
                (from_revision, prefix, upper),
            )
        return iter(rows.fetchall())

    def _dispatch(self, events: list[tuple[str, str, str, str | None, int]]) -> None:
        if not events or not self._subscriptions:
            return
        for raw in events:
            decoded: Event | None = None  # decoded once, only if someone wants it
            for subscription in list(self._subscriptions):
                if (subscription.active and raw[4] > subscription.after
                        and raw[1].startswith(subscription.prefix)):
                    if decoded is None:
                        decoded = _decode(raw)
                    self._deliver(subscription, decoded)
        self._subscriptions = [s for s in self._subscriptions if s.active]

    def _deliver(self, subscription: _Subscription, event: Event) -> None:
        self._dispatching.active = True
        try:
            subscription.callback(event)
        except Exception:  # a broken watcher must not fail a committed write or other watchers
            log.exception("store watch callback failed on %s at revision %d", event.key, event.revision)
        finally:
            self._dispatching.active = False

    # ---- lifecycle -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("store is closed")

    def close(self) -> None:
        self._refuse_in_callback("close")
        with self._commit_lock:
            if self._closed:
                return
            self._closed = True
            for subscription in self._subscriptions:
                subscription.active = False
            self._subscriptions = []
            with self._pending_lock:
                orphans, self._pending = self._pending, []
            for write in orphans:  # writers that queued behind a closing store
                write.error, write.done = StoreError("store is closed"), True
            self._writer.close()
            with self._readers_lock:
                for conn in self._all_readers:
                    conn.close()
                self._all_readers.clear()
            os.close(self._lock_fd)

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ReaderLease:
    """Borrows a reader connection from the pool for one `with` block."""

    def __init__(self, store: SQLiteStore, conn: sqlite3.Connection):
        self._store = store
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        return self._conn

    def __exit__(self, *exc: object) -> None:
        if self._store._closed:
            return
        self._store._readers.put(self._conn)
