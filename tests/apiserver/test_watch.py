"""Watch streams over real HTTP: ordering, resume from a resourceVersion, selectors,
410 Expired, bookmarks, timeoutSeconds."""
from __future__ import annotations

import pytest

from tests.apiserver.fixtures import start_apiserver

SVCS = "/api/v1/namespaces/default/services"


def svc(name, labels=None):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"ports": [{"port": 80, "protocol": "TCP"}]}}


@pytest.fixture
def api(bare_apiserver):
    return bare_apiserver.http()


def test_watch_from_resource_version_sees_every_change_in_order(api):
    rv = api.ok("GET", SVCS)["metadata"]["resourceVersion"]
    with api.watch(f"{SVCS}?watch=1&resourceVersion={rv}") as w:
        assert w.status == 200
        a = api.ok("POST", SVCS, svc("a"))
        a["metadata"]["labels"] = {"x": "1"}
        api.ok("PUT", f"{SVCS}/a", a)
        api.ok("DELETE", f"{SVCS}/a")
        events = [w.next() for _ in range(3)]
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3
    assert events[1]["object"]["metadata"]["labels"] == {"x": "1"}


def test_watch_without_resource_version_starts_with_current_state(api):
    api.ok("POST", SVCS, svc("pre"))
    with api.watch(f"{SVCS}?watch=true") as w:
        names = set()
        while "pre" not in names:
            ev = w.next()
            assert ev["type"] == "ADDED"
            names.add(ev["object"]["metadata"]["name"])
        api.ok("POST", SVCS, svc("post"))
        ev = w.next()
        assert (ev["type"], ev["object"]["metadata"]["name"]) == ("ADDED", "post")


def test_label_selector_transitions_are_added_and_deleted(api):
    rv = api.ok("GET", SVCS)["metadata"]["resourceVersion"]
    with api.watch(f"{SVCS}?watch=1&resourceVersion={rv}&labelSelector=app%3Dweb") as w:
        obj = api.ok("POST", SVCS, svc("s", {"app": "other"}))  # not seen
        obj["metadata"]["labels"] = {"app": "web"}
        obj = api.ok("PUT", f"{SVCS}/s", obj)  # enters the selector
        obj["metadata"]["labels"] = {"app": "web", "v": "2"}
        obj = api.ok("PUT", f"{SVCS}/s", obj)
        obj["metadata"]["labels"] = {"app": "gone"}
        api.ok("PUT", f"{SVCS}/s", obj)  # leaves it
        types = [w.next()["type"] for _ in range(3)]
    assert types == ["ADDED", "MODIFIED", "DELETED"]


def test_field_selector_by_name_and_legacy_watch_path(api):
    rv = api.ok("GET", SVCS)["metadata"]["resourceVersion"]
    with api.watch(f"/api/v1/watch/namespaces/default/services/b?resourceVersion={rv}") as w:
        api.ok("POST", SVCS, svc("a"))
        api.ok("POST", SVCS, svc("b"))
        ev = w.next()
    assert ev["object"]["metadata"]["name"] == "b"


def test_too_old_resource_version_gets_expired_error_event(tmp_path):
    server = start_apiserver(tmp_path, ["--no-controllers", "--store-history", "5"])
    try:
        api = server.http()
        for i in range(12):
            api.ok("POST", SVCS, svc(f"s{i}"))
        with api.watch(f"{SVCS}?watch=1&resourceVersion=1") as w:
            ev = w.next()
            assert ev["type"] == "ERROR"
            assert ev["object"]["code"] == 410 and ev["object"]["reason"] == "Expired"
            assert w.next() is None  # the stream ends
    finally:
        server.stop()


def test_bookmarks_and_timeout(tmp_path):
    server = start_apiserver(tmp_path, ["--no-controllers", "--watch-bookmark-interval", "0.2"])
    try:
        api = server.http()
        rv = api.ok("POST", SVCS, svc("a"))["metadata"]["resourceVersion"]
        with api.watch(f"{SVCS}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=2") as w:
            events = list(w.events())  # ends by itself after timeoutSeconds
        bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
        assert bookmarks
        assert int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) >= int(rv)
        assert bookmarks[-1]["object"]["kind"] == "Service"
    finally:
        server.stop()


def test_invalid_resource_version_is_bad_request(api):
    status, body = api.call("GET", f"{SVCS}?watch=1&resourceVersion=abc")
    assert status == 400 and body["reason"] == "BadRequest"


def test_slow_watcher_gets_expired_and_never_blocks_writers(tmp_path):
    server = start_apiserver(tmp_path, ["--no-controllers", "--watch-queue-limit", "5"])
    try:
        api = server.http()
        rv = api.ok("GET", SVCS)["metadata"]["resourceVersion"]
        w = api.watch(f"{SVCS}?watch=1&resourceVersion={rv}", timeout=60)  # never read while writing
        try:
            big = "x" * 200_000  # enough to fill the socket buffers quickly
            for i in range(60):
                obj = svc(f"s{i}")
                obj["metadata"]["annotations"] = {"pad": big}
                api.ok("POST", SVCS, obj)  # each write returns although the watcher is stuck
            events = []
            while True:
                ev = w.next()
                if ev is None:
                    break
                events.append(ev)
            assert events[-1]["type"] == "ERROR" and events[-1]["object"]["code"] == 410
            assert len(events) - 1 < 60  # it was cut off, not served everything
        finally:
            w.close()
        # the server is healthy and other watchers work
        with api.watch(f"{SVCS}?watch=1&resourceVersion={api.ok('GET', SVCS)['metadata']['resourceVersion']}") as w2:
            api.ok("POST", SVCS, svc("after"))
            assert w2.next()["object"]["metadata"]["name"] == "after"
    finally:
        server.stop()


def test_send_initial_events_ends_with_a_marked_bookmark(api):
    api.ok("POST", SVCS, svc("one"))
    with api.watch(f"{SVCS}?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
                   f"&resourceVersionMatch=NotOlderThan") as w:
        seen = []
        while True:
            ev = w.next()
            if ev["type"] == "BOOKMARK":
                break
            seen.append(ev["object"]["metadata"]["name"])
        assert "one" in seen
        assert ev["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        api.ok("POST", SVCS, svc("two"))
        assert w.next()["object"]["metadata"]["name"] == "two"
