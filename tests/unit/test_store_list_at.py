"""SQLiteStore.list_at: the keys under a prefix as they were at an older revision, checked
against snapshots taken with list() at every revision of random write sequences."""
from __future__ import annotations

import random
import sqlite3

import pytest

from kproxy.store.base import Gone
from kproxy.store.sqlite import SQLiteStore

PREFIX = "/registry/core/pods/a/"


def _as_rows(kvs):
    return [(kv.key, kv.value, kv.mod_revision, kv.create_revision) for kv in kvs]


def _random_writes(store: SQLiteStore, rng: random.Random, count: int) -> dict[int, list]:
    """Random creates/updates/deletes in and next to PREFIX; the list under PREFIX after each."""
    snapshots = {store.revision: _as_rows(store.list(PREFIX)[0])}
    names = [f"{PREFIX}{n}" for n in "abcdef"] + ["/registry/core/pods/b/x", "/registry/core/pods/a"]
    for step in range(count):
        key = rng.choice(names)
        try:
            current = store.get(key)
        except Exception:
            store.create(key, {"step": step})
        else:
            if rng.random() < 0.3:
                store.delete(key)
            else:
                store.update(key, {"step": step, "was": current.value["step"]})
        listed, revision = store.list(PREFIX)
        snapshots[revision] = _as_rows(listed)
    return snapshots


@pytest.mark.parametrize("seed", range(5))
def test_list_at_matches_the_list_seen_at_each_revision(tmp_path, seed):
    with SQLiteStore(str(tmp_path / "store.db")) as store:
        snapshots = _random_writes(store, random.Random(seed), 120)
        for revision, expected in snapshots.items():
            assert _as_rows(store.list_at(PREFIX, revision)) == expected, revision


def test_list_at_after_compaction_serves_what_history_shows_and_refuses_the_rest(tmp_path):
    with SQLiteStore(str(tmp_path / "store.db"), history=40) as store:
        snapshots = _random_writes(store, random.Random(7), 150)
        served = gone = 0
        for revision, expected in snapshots.items():
            if revision >= store.compacted_revision:  # every revision the history holds
                assert _as_rows(store.list_at(PREFIX, revision)) == expected, revision
                served += 1
            else:
                with pytest.raises(Gone):
                    store.list_at(PREFIX, revision)
                gone += 1
        assert served > 30 and gone > 30


def test_list_at_refuses_a_future_revision(tmp_path):
    with SQLiteStore(str(tmp_path / "store.db")) as store:
        store.create(PREFIX + "a", {})
        with pytest.raises(ValueError):
            store.list_at(PREFIX, store.revision + 1)


def test_a_store_from_before_prev_revisions_gains_the_columns(tmp_path):
    """Events written before the store recorded previous revisions cannot be undone (Gone);
    those written after can."""
    path = str(tmp_path / "store.db")
    with SQLiteStore(path) as store:
        store.create(PREFIX + "a", {"v": 1})
        store.update(PREFIX + "a", {"v": 2})
    conn = sqlite3.connect(path)  # as the first release of schema 1 left it
    conn.execute("ALTER TABLE events DROP COLUMN prev_revision")
    conn.execute("ALTER TABLE events DROP COLUMN create_revision")
    conn.commit()
    conn.close()
    with SQLiteStore(path) as store:
        store.update(PREFIX + "a", {"v": 3})
        assert _as_rows(store.list_at(PREFIX, 2)) == [(PREFIX + "a", {"v": 2}, 2, 1)]
        with pytest.raises(Gone):
            store.list_at(PREFIX, 1)
