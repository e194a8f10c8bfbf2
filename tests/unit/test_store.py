"""SQLiteStore against the kproxy.store.base contract: real SQLite files in tmp_path, real threads.

The hypothesis state machine at the end is the main correctness proof: random sequences of
creates, updates, deletes, lists, watches and close/reopen are checked step by step against a
plain dict model of the contract."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kproxy.store import open_store
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
    StoreError,
)
from kproxy.store.sqlite import SQLiteStore, _prefix_upper_bound


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(str(tmp_path / "store.db"))
    try:
        yield s
    finally:
        s.close()


def wait_for(predicate, timeout=10.0):
    """Bounded polling wait; returns whether `predicate` became true before the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# ---- CRUD and revisions ---------------------------------------------------------------------


def test_empty_store_is_at_revision_zero(store):
    assert store.revision == 0
    assert store.list("") == ([], 0)
    with pytest.raises(NotFound):
        store.get("/a")


def test_create_get_update_delete(store):
    created = store.create("/registry/core/services/default/web", {"spec": {"port": 80}})
    assert created == KeyValue("/registry/core/services/default/web", {"spec": {"port": 80}}, 1, 1)
    assert store.get("/registry/core/services/default/web") == created

    updated = store.update("/registry/core/services/default/web", {"spec": {"port": 81}})
    assert (updated.mod_revision, updated.create_revision, updated.value) == (2, 1, {"spec": {"port": 81}})
    assert store.get("/registry/core/services/default/web") == updated

    deleted = store.delete("/registry/core/services/default/web")
    assert deleted == KeyValue("/registry/core/services/default/web", {"spec": {"port": 81}}, 3, 1)
    with pytest.raises(NotFound):
        store.get("/registry/core/services/default/web")
    assert store.revision == 3


def test_create_existing_key_raises_and_changes_nothing(store):
    store.create("/k", {"v": 1})
    with pytest.raises(AlreadyExists):
        store.create("/k", {"v": 2})
    assert store.get("/k").value == {"v": 1}
    assert store.revision == 1


def test_update_and_delete_of_missing_key_raise_not_found(store):
    with pytest.raises(NotFound):
        store.update("/missing", {"v": 1})
    with pytest.raises(NotFound):
        store.update("/missing", {"v": 1}, expected_revision=5)
    with pytest.raises(NotFound):
        store.delete("/missing")
    assert store.revision == 0


def test_revision_increments_by_one_per_write_and_never_goes_back(tmp_path):
    path = str(tmp_path / "s.db")
    seen = []
    with SQLiteStore(path) as s:
        seen.append(s.create("/a", {}).mod_revision)
        seen.append(s.create("/b", {}).mod_revision)
        seen.append(s.update("/a", {"x": 1}).mod_revision)
        seen.append(s.delete("/a").mod_revision)
        seen.append(s.delete("/b").mod_revision)
        assert s.list("") == ([], 5)
    assert seen == [1, 2, 3, 4, 5]
    # Every key is gone; the counter still continues after a reopen (like etcd, unlike max(rowid)).
    with SQLiteStore(path) as s:
        assert s.revision == 5
        assert s.create("/a", {}) == KeyValue("/a", {}, 6, 6)


def test_recreated_key_gets_a_new_create_revision(store):
    store.create("/k", {"gen": 1})
    store.delete("/k")
    again = store.create("/k", {"gen": 2})
    assert (again.create_revision, again.mod_revision) == (3, 3)


def test_returned_values_are_copies(store):
    value = {"spec": {"ports": [1, 2]}}
    kv = store.create("/k", value)
    value["spec"]["ports"].append(3)
    kv.value["spec"]["ports"].append(4)
    store.get("/k").value["spec"]["ports"].append(5)
    assert store.get("/k").value == {"spec": {"ports": [1, 2]}}


def test_values_round_trip_as_json(store):
    value = {"s": "ünïcödé \u2603 \U0001F600", "n": None, "f": 1.5, "b": True, "l": [{"a": []}], "big": 2**62}
    store.create("/k", value)
    assert store.get("/k").value == value
    assert store.list("/")[0][0].value == value


def test_returned_value_is_what_json_stored(store):
    """JSON has only string keys and arrays: the returned KeyValue shows the stored form."""
    kv = store.create("/k", {1: (1, 2), "n": {None: True}})
    assert kv.value == {"1": [1, 2], "n": {"null": True}}
    assert store.get("/k") == kv


@pytest.mark.parametrize(
    "value",
    [[1, 2], "text", None, {"x": float("nan")}, {"x": float("inf")}, {"x": object()}, {"x": {1, 2}}],
    ids=["list", "str", "none", "nan", "inf", "object", "set"],
)
def test_bad_values_are_refused_without_a_write(store, value):
    with pytest.raises(ValueError):
        store.create("/k", value)
    store.create("/ok", {})
    with pytest.raises(ValueError):
        store.update("/ok", value)
    assert store.revision == 1
    assert store.get("/ok").value == {}


@pytest.mark.parametrize("key", ["", "a\x00b", "\ud800", None, 5, b"/k"], ids=["empty", "nul", "surrogate", "none", "int", "bytes"])
def test_bad_keys_are_refused(store, key):
    with pytest.raises(ValueError):
        store.create(key, {})
    with pytest.raises(ValueError):
        store.get(key)
    with pytest.raises(ValueError):
        store.delete(key)
    assert store.revision == 0


# ---- optimistic concurrency -----------------------------------------------------------------


def test_update_with_stale_revision_conflicts(store):
    first = store.create("/k", {"v": 1})
    second = store.update("/k", {"v": 2}, expected_revision=first.mod_revision)
    with pytest.raises(Conflict):
        store.update("/k", {"v": 3}, expected_revision=first.mod_revision)
    with pytest.raises(Conflict):
        store.delete("/k", expected_revision=first.mod_revision)
    assert store.get("/k") == second
    assert store.revision == 2
    assert store.delete("/k", expected_revision=second.mod_revision).mod_revision == 3


def test_concurrent_read_modify_write_loses_no_update(store):
    store.create("/counter", {"n": 0})
    threads, per_thread = 6, 40
    conflicts = []

    def increment():
        for _ in range(per_thread):
            while True:
                current = store.get("/counter")
                try:
                    store.update("/counter", {"n": current.value["n"] + 1}, expected_revision=current.mod_revision)
                    break
                except Conflict:
                    conflicts.append(1)

    workers = [threading.Thread(target=increment) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    final = store.get("/counter")
    assert final.value["n"] == threads * per_thread
    # Only successful updates consume revisions: 1 create + one per increment.
    assert final.mod_revision == store.revision == 1 + threads * per_thread


# ---- list -----------------------------------------------------------------------------------


def test_list_is_sorted_and_prefix_exact(store):
    for key in ["/a/b", "/a/a", "/ab", "/a", "/a/\U0010ffff", "/a0", "/b", "/a/\u00e9"]:
        store.create(key, {"k": key})
    items, revision = store.list("/a/")
    assert [kv.key for kv in items] == ["/a/a", "/a/b", "/a/\u00e9", "/a/\U0010ffff"]
    assert revision == 8
    assert [kv.key for kv in store.list("/a")[0]] == sorted(["/a", "/a/a", "/a/b", "/a/\u00e9", "/a/\U0010ffff", "/a0", "/ab"])
    assert [kv.key for kv in store.list("")[0]] == sorted(["/a/b", "/a/a", "/ab", "/a", "/a/\U0010ffff", "/a0", "/b", "/a/\u00e9"])
    assert store.list("/c") == ([], 8)
    assert all(kv.value == {"k": kv.key} for kv in store.list("")[0])


def test_prefix_upper_bound():
    assert _prefix_upper_bound("") is None
    assert _prefix_upper_bound("/a/") == "/a0"
    assert _prefix_upper_bound("a\U0010ffff") == "b"
    assert _prefix_upper_bound("\U0010ffff") is None
    assert _prefix_upper_bound("a\ud7ff") == "a\ue000"


def test_list_is_one_consistent_snapshot_under_concurrent_writes(store):
    """Key i is created at revision i+1, so a consistent list at revision R holds exactly keys
    0..R-1; a list mixing two moments would break that. Three readers share the reader pool
    while one thread writes."""
    total = 400
    writer = threading.Thread(target=lambda: [store.create(f"/k/{i:05d}", {"i": i}) for i in range(total)])
    failures: list[str] = []
    counts: list[int] = []

    def reader():
        lists = 0
        try:
            while writer.is_alive() or lists < 5:
                items, revision = store.list("/k/")
                if [kv.key for kv in items] != [f"/k/{i:05d}" for i in range(revision)]:
                    failures.append(f"list at revision {revision} holds {len(items)} keys")
                if any(kv.mod_revision > revision for kv in items):
                    failures.append(f"list at revision {revision} holds a newer key")
                if items and store.get(items[-1].key) != items[-1]:
                    failures.append(f"get disagrees with list for {items[-1].key}")
                lists += 1
        finally:
            counts.append(lists)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    writer.start()
    for r in readers:
        r.start()
    writer.join()
    for r in readers:
        r.join()
    assert failures == []
    assert len(counts) == 3 and min(counts) >= 5
    assert store.list("/k/")[1] == total


# ---- watch ----------------------------------------------------------------------------------


def test_watch_delivers_history_then_live_events_with_prev_values(store):
    store.create("/a/1", {"v": 1})
    store.create("/b/1", {"v": 1})
    store.update("/a/1", {"v": 2})
    events: list[Event] = []
    cancel = store.watch("/a/", 0, events.append)
    try:
        assert events == [
            Event(ADDED, "/a/1", {"v": 1}, 1, None),
            Event(MODIFIED, "/a/1", {"v": 2}, 3, {"v": 1}),
        ]
        store.delete("/a/1")  # delivered before delete returns
        store.create("/b/2", {})
        assert events[2:] == [Event(DELETED, "/a/1", {"v": 2}, 4, {"v": 2})]
    finally:
        cancel()


def test_watch_from_current_revision_sees_only_new_events(store):
    store.create("/a", {})
    events = []
    cancel = store.watch("", store.revision, events.append)
    store.create("/b", {})
    cancel()
    store.create("/c", {})
    assert [(e.key, e.revision) for e in events] == [("/b", 2)]


def test_watch_from_a_future_revision_skips_until_then(store):
    events = []
    cancel = store.watch("", 2, events.append)
    for key in "abcd":
        store.create(f"/{key}", {})
    cancel()
    assert [e.revision for e in events] == [3, 4]


def test_event_values_are_not_the_writers_objects(store):
    """Watchers share one decoded event (read-only by contract), but it is never the dict the
    writer passed in or got back, so neither side's later changes reach the other."""
    first, second = [], []
    c1 = store.watch("", 0, first.append)
    c2 = store.watch("", 0, second.append)
    value = {"l": [1]}
    kv = store.create("/k", value)
    c1()
    c2()
    value["l"].append(2)
    kv.value["l"].append(3)
    assert first[0].value == second[0].value == {"l": [1]}


def test_failing_callback_does_not_fail_the_write_or_other_watchers(store, caplog):
    good = []

    def bad(event):
        raise RuntimeError("watcher bug")

    c1 = store.watch("", 0, bad)
    c2 = store.watch("", 0, good.append)
    assert store.create("/k", {}).mod_revision == 1
    c1()
    c2()
    assert [e.key for e in good] == ["/k"]
    assert "watcher bug" in caplog.text


def test_callback_may_read_but_not_write_watch_or_close(store):
    """Reads work from a callback; what would deadlock on the commit lock is refused."""
    errors, reads = [], []

    def callback(event):
        reads.append(store.get(event.key).mod_revision)
        for call in (lambda: store.create("/from-callback", {}), lambda: store.delete(event.key),
                     lambda: store.watch("", 0, lambda e: None), store.close):
            try:
                call()
            except StoreError as exc:
                errors.append(str(exc))

    cancel = store.watch("", 0, callback)
    store.create("/k", {})
    cancel()
    assert reads == [1]
    assert len(errors) == 4 and all("watch callback must not" in e for e in errors)
    with pytest.raises(NotFound):
        store.get("/from-callback")
    assert store.get("/k").mod_revision == store.revision == 1


def test_callback_may_cancel_itself(store):
    events = []
    holder = {}

    def callback(event):
        events.append(event.revision)
        holder["cancel"]()

    holder["cancel"] = store.watch("", 0, callback)
    store.create("/a", {})
    store.create("/b", {})
    assert events == [1]


def test_watch_arguments_are_checked(store):
    with pytest.raises(ValueError):
        store.watch("", -1, lambda e: None)
    with pytest.raises(ValueError):
        store.watch(None, 0, lambda e: None)


def test_concurrent_writers_and_watchers_get_every_event_once_in_order(store):
    """8 writer threads; watchers join at revision 0, mid-stream and at the end. Each must see
    exactly the revisions after its start, each once, in increasing order."""
    writers, per_writer = 8, 60
    total = writers * per_writer
    logs: list[tuple[int, list[Event]]] = []
    cancels = []
    logs_lock = threading.Lock()

    def add_watcher(from_revision):
        events: list[Event] = []
        cancel = store.watch("", from_revision, events.append)
        with logs_lock:
            logs.append((from_revision, events))
            cancels.append(cancel)

    def write(worker):
        for i in range(per_writer):
            key = f"/w/{worker}/{i % 7}"
            try:
                store.create(key, {"i": i})
            except AlreadyExists:
                if i % 2:
                    store.update(key, {"i": i})
                else:
                    store.delete(key)

    writer_threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]

    def late_watchers():
        while any(t.is_alive() for t in writer_threads):
            add_watcher(store.revision)
            time.sleep(0.002)

    add_watcher(0)
    threads = writer_threads + [threading.Thread(target=late_watchers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert store.revision == total
        assert len(logs) > 2
        for start, events in logs:
            assert [e.revision for e in events] == list(range(start + 1, total + 1)), start
        # The full log replays to exactly what the store holds.
        model = {}
        for event in logs[0][1]:
            if event.type == DELETED:
                del model[event.key]
            else:
                model[event.key] = event.value
        assert {kv.key: kv.value for kv in store.list("")[0]} == model
    finally:
        for cancel in cancels:
            cancel()


def test_watch_older_than_history_is_gone(tmp_path):
    with SQLiteStore(str(tmp_path / "s.db"), history=5) as s:
        for i in range(12):
            s.create(f"/k{i}", {})
        assert s.compacted_revision == 7
        with pytest.raises(Gone) as info:
            s.watch("", 6, lambda e: None)
        assert (info.value.requested, info.value.oldest) == (6, 7)
        events = []
        s.watch("", 7, events.append)()
        assert [e.revision for e in events] == [8, 9, 10, 11, 12]
        with pytest.raises(Gone):
            s.watch("", 0, lambda e: None)


def test_history_survives_reopen_so_watchers_resume(tmp_path):
    path = str(tmp_path / "s.db")
    with SQLiteStore(path) as s:
        s.create("/a", {"v": 1})
        s.update("/a", {"v": 2})
        s.create("/b", {})
    with SQLiteStore(path) as s:
        events = []
        s.watch("", 1, events.append)()
        assert [(e.type, e.key, e.revision, e.value, e.prev_value) for e in events] == [
            (MODIFIED, "/a", 2, {"v": 2}, {"v": 1}),
            (ADDED, "/b", 3, {}, None),
        ]


def test_reopen_with_smaller_history_trims_and_reports_gone(tmp_path):
    path = str(tmp_path / "s.db")
    with SQLiteStore(path, history=100) as s:
        for i in range(10):
            s.create(f"/k{i}", {})
    with SQLiteStore(path, history=3) as s:
        assert s.compacted_revision == 7
        with pytest.raises(Gone):
            s.watch("", 6, lambda e: None)
        count = sqlite3.connect(path).execute("SELECT count(*) FROM events").fetchone()[0]
        assert count == 3


# ---- lifecycle, files, durability settings ----------------------------------------------------


def test_second_open_of_the_same_file_is_refused(tmp_path):
    path = str(tmp_path / "s.db")
    with SQLiteStore(path):
        with pytest.raises(StoreError, match="already open"):
            SQLiteStore(path)
    with SQLiteStore(path) as again:  # the lock is released on close
        assert again.revision == 0


def test_closed_store_refuses_calls_and_cancels_watches(tmp_path):
    s = SQLiteStore(str(tmp_path / "s.db"))
    events = []
    s.watch("", 0, events.append)
    s.close()
    s.close()  # idempotent
    for call in (lambda: s.create("/k", {}), lambda: s.get("/k"), lambda: s.list(""),
                 lambda: s.watch("", 0, events.append)):
        with pytest.raises(StoreError, match="closed"):
            call()
    assert events == []


def test_missing_directory_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        SQLiteStore(str(tmp_path / "nope" / "s.db"))


def test_directory_as_database_path_is_a_store_error(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(StoreError, match="cannot open store"):
        SQLiteStore(str(tmp_path / "dir"))
    with SQLiteStore(str(tmp_path / "s.db")):  # nothing was left locked by the failure
        pass


def test_garbage_file_is_a_store_error(tmp_path):
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        SQLiteStore(str(path))


def test_database_is_wal_with_full_sync(store):
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    # synchronous is per connection: check the store's own writer.
    assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_every_acknowledged_write_is_fsynced(tmp_path):
    """Counts the fsync family of syscalls of a real process doing N sequential writes: each
    acknowledged write must have been followed by its own sync."""
    script = (
        "import sys; from kproxy.store.sqlite import SQLiteStore\n"
        "s = SQLiteStore(sys.argv[1])\n"
        "print('opened', flush=True)\n"
        "for i in range(20): s.create('/k%d' % i, {'i': i})\n"
        "s.close()\n"
    )
    trace = tmp_path / "trace"
    subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", str(trace),
         sys.executable, "-c", script, str(tmp_path / "s.db")],
        check=True, capture_output=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    syncs = [line for line in trace.read_text().splitlines() if "sync(" in line]
    assert len(syncs) >= 20


def test_failed_commit_changes_nothing_and_the_store_recovers(store):
    """A full database (SQLITE_FULL via max_page_count) fails the write with StoreError: no
    revision is used, no event is sent, and writes work again once there is room."""
    store.create("/small", {})
    events = []
    cancel = store.watch("", store.revision, events.append)
    pages = store._writer.execute("PRAGMA page_count").fetchone()[0]
    store._writer.execute(f"PRAGMA max_page_count = {pages}")
    try:
        with pytest.raises(StoreError, match="store write failed"):
            store.create("/big", {"blob": "x" * 100_000})
        assert store.revision == 1
        assert events == []
        with pytest.raises(NotFound):
            store.get("/big")
    finally:
        store._writer.execute("PRAGMA max_page_count = 1073741823")
    assert store.create("/big", {"blob": "x"}).mod_revision == 2
    cancel()
    assert [e.revision for e in events] == [2]


# ---- open_store -----------------------------------------------------------------------------


def test_open_store_directory_creates_it(tmp_path):
    target = tmp_path / "data" / "dir"
    with open_store(str(target)) as s:
        s.create("/k", {})
        assert s.path == str(target / "store.db")
    with open_store(f"sqlite://{target}") as s:  # an existing directory in a URL
        assert s.get("/k").mod_revision == 1


def test_open_store_sqlite_url_names_a_file(tmp_path):
    with open_store(f"sqlite://{tmp_path}/custom.db") as s:
        assert s.path == f"{tmp_path}/custom.db"


@pytest.mark.parametrize("target,message", [
    ("etcd://127.0.0.1:2379", "not supported yet"),
    ("http://127.0.0.1:2379", "not supported yet"),
    ("ftp://host/x", "unsupported store URL"),
    ("sqlite://relative.db", "absolute path"),
    ("", "empty"),
])
def test_open_store_refuses_what_it_cannot_open(target, message):
    with pytest.raises(StoreError, match=message):
        open_store(target)


def test_open_store_refuses_a_file_as_directory(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        open_store(str(file))


# ---- the model-based proof ------------------------------------------------------------------

KEYS = ["/a", "/a/x", "/a/y", "/a/x/1", "/ab", "/b/x", "/b/\u00e9"]
PREFIXES = ["", "/", "/a", "/a/", "/a/x", "/b/", "/c"]
HISTORY = 6
values = st.dictionaries(
    st.text(max_size=3),
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False) | st.lists(st.integers(), max_size=3),
    max_size=3,
)


class StoreMachine(RuleBasedStateMachine):
    """Runs the store and a dict model side by side. Two long-lived watchers (all keys and
    "/a/") are resumed across every reopen from the revision they had reached, as an apiserver
    informer would."""

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="kproxy-store-model-")
        self.path = os.path.join(self.dir, "s.db")
        self.store = SQLiteStore(self.path, history=HISTORY)
        self.model: dict[str, KeyValue] = {}
        self.revision = 0
        self.log: list[Event] = []
        self.watched: dict[str, list[Event]] = {"": [], "/a/": []}
        self.cancels = []
        self._subscribe(0)

    def _subscribe(self, from_revision):
        self.cancels = [self.store.watch(prefix, from_revision, events.append)
                        for prefix, events in self.watched.items()]

    def _expected_events(self, prefix, after):
        return [e for e in self.log if e.revision > after and e.key.startswith(prefix)]

    def _current(self, key):
        return self.model.get(key)

    @rule(key=st.sampled_from(KEYS), value=values)
    def create(self, key, value):
        if key in self.model:
            with pytest.raises(AlreadyExists):
                self.store.create(key, value)
            return
        kv = self.store.create(key, value)
        self.revision += 1
        assert kv == KeyValue(key, json.loads(json.dumps(value)), self.revision, self.revision)
        self.model[key] = kv
        self.log.append(Event(ADDED, key, kv.value, self.revision, None))

    @rule(key=st.sampled_from(KEYS), value=values, expected=st.sampled_from(["none", "current", "stale"]))
    def update(self, key, value, expected):
        old = self.model.get(key)
        expected_revision = None
        if expected == "current" and old is not None:
            expected_revision = old.mod_revision
        elif expected == "stale":
            expected_revision = (old.mod_revision - 1) if old is not None else 1
        if old is None:
            with pytest.raises(NotFound):
                self.store.update(key, value, expected_revision)
            return
        if expected == "stale":
            with pytest.raises(Conflict):
                self.store.update(key, value, expected_revision)
            return
        kv = self.store.update(key, value, expected_revision)
        self.revision += 1
        assert kv == KeyValue(key, json.loads(json.dumps(value)), self.revision, old.create_revision)
        self.model[key] = kv
        self.log.append(Event(MODIFIED, key, kv.value, self.revision, old.value))

    @rule(key=st.sampled_from(KEYS), expected=st.sampled_from(["none", "current", "stale"]))
    def delete(self, key, expected):
        old = self.model.get(key)
        expected_revision = None
        if expected == "current" and old is not None:
            expected_revision = old.mod_revision
        elif expected == "stale":
            expected_revision = (old.mod_revision + 1) if old is not None else 1
        if old is None:
            with pytest.raises(NotFound):
                self.store.delete(key, expected_revision)
            return
        if expected == "stale":
            with pytest.raises(Conflict):
                self.store.delete(key, expected_revision)
            return
        kv = self.store.delete(key, expected_revision)
        self.revision += 1
        assert kv == KeyValue(key, old.value, self.revision, old.create_revision)
        del self.model[key]
        self.log.append(Event(DELETED, key, old.value, self.revision, old.value))

    @rule(key=st.sampled_from(KEYS))
    def get(self, key):
        if key in self.model:
            assert self.store.get(key) == self.model[key]
        else:
            with pytest.raises(NotFound):
                self.store.get(key)

    @rule(prefix=st.sampled_from(PREFIXES))
    def list(self, prefix):
        items, revision = self.store.list(prefix)
        assert revision == self.revision
        assert items == [self.model[k] for k in sorted(self.model) if k.startswith(prefix)]

    @rule(prefix=st.sampled_from(PREFIXES), data=st.data())
    def watch_from(self, prefix, data):
        from_revision = data.draw(st.integers(0, self.revision + 2), label="from_revision")
        compacted = max(0, self.revision - HISTORY)
        if from_revision < compacted:
            with pytest.raises(Gone) as info:
                self.store.watch(prefix, from_revision, lambda e: None)
            assert (info.value.requested, info.value.oldest) == (from_revision, compacted)
            return
        events = []
        self.store.watch(prefix, from_revision, events.append)()
        assert events == self._expected_events(prefix, from_revision)

    @rule()
    def reopen(self):
        self.store.close()
        self.store = SQLiteStore(self.path, history=HISTORY)
        self._subscribe(self.revision)

    @invariant()
    def revision_matches(self):
        assert self.store.revision == self.revision

    @invariant()
    def long_lived_watchers_saw_everything_once(self):
        for prefix, events in self.watched.items():
            assert events == self._expected_events(prefix, 0)

    def teardown(self):
        try:
            self.store.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


TestStoreModel = StoreMachine.TestCase
TestStoreModel.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
