"""PrefixMirror against a real SQLite store: it starts from what is stored, follows every
write under its prefix before the write returns, and ignores other prefixes."""
from __future__ import annotations

from kproxy.store.mirror import LazyMirror, PrefixMirror
from kproxy.store.sqlite import SQLiteStore


def test_mirror_follows_writes_under_its_prefix(tmp_path):
    with SQLiteStore(str(tmp_path / "store.db")) as store:
        store.create("/registry/core/resourcequotas/a/q1", {"n": 1})
        store.create("/registry/core/pods/a/p1", {"n": 2})
        mirror = PrefixMirror(store, "/registry/core/resourcequotas/")
        assert mirror.values("/registry/core/resourcequotas/a/") == [{"n": 1}]

        store.create("/registry/core/resourcequotas/b/q2", {"n": 3})
        kv = store.update("/registry/core/resourcequotas/a/q1", {"n": 4})
        store.create("/registry/core/pods/a/p2", {"n": 5})
        assert mirror.values("/registry/core/resourcequotas/a/") == [{"n": 4}]
        assert sorted(v["n"] for v in mirror.values("/registry/core/resourcequotas/")) == [3, 4]

        store.delete("/registry/core/resourcequotas/a/q1", kv.mod_revision)
        assert mirror.values("/registry/core/resourcequotas/a/") == []
        mirror.close()
        store.create("/registry/core/resourcequotas/a/q3", {"n": 6})
        assert mirror.values("/registry/core/resourcequotas/a/") == []  # closed: no longer follows


def test_mirror_get_follows_one_key(tmp_path):
    with SQLiteStore(str(tmp_path / "store.db")) as store:
        store.create("/registry/core/namespaces/a", {"phase": "Active"})
        mirror = PrefixMirror(store, "/registry/core/namespaces/")
        assert mirror.get("/registry/core/namespaces/a") == {"phase": "Active"}
        assert mirror.get("/registry/core/namespaces/b") is None
        store.create("/registry/core/namespaces/b", {"phase": "Active"})
        kv = store.update("/registry/core/namespaces/a", {"phase": "Terminating"})
        assert mirror.get("/registry/core/namespaces/b") == {"phase": "Active"}  # seen before create returned
        assert mirror.get("/registry/core/namespaces/a") == {"phase": "Terminating"}
        store.delete("/registry/core/namespaces/a", kv.mod_revision)
        assert mirror.get("/registry/core/namespaces/a") is None
        mirror.close()


def test_lazy_mirror_is_made_once_on_first_use(tmp_path):
    with SQLiteStore(str(tmp_path / "store.db")) as store:
        lazy = LazyMirror(store, "/registry/core/namespaces/")
        store.create("/registry/core/namespaces/a", {"n": 1})  # before first use: listed when made
        first = lazy()
        assert first is lazy()
        assert first.get("/registry/core/namespaces/a") == {"n": 1}
        first.close()
