"""The sans-IO watch framer: events and times in, frames out, no sockets."""
from __future__ import annotations

import json
from typing import Any

from kproxy.api import resources as R
from kproxy.api.selectors import parse_label_selector
from kproxy.apiserver.watchframe import WatchFramer, WatchRequest
from kproxy.store import base as sb

KEY = "/registry/core/pods/default/"


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "namespace": "default", "labels": labels}}


def encode(cache_key: tuple[int, str], obj: dict[str, Any]) -> str:
    return json.dumps(obj)


def framer(request: WatchRequest = WatchRequest(), bookmark_interval: float = 60.0,
           idle: float = 5.0) -> WatchFramer:
    return WatchFramer(R.PODS, request, encode, bookmark_interval, idle)


def frames(data: bytes) -> list[dict[str, Any]]:
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(line) for line in data.decode().splitlines()]


def kv(name: str, revision: int, **labels: str) -> sb.KeyValue:
    return sb.KeyValue(KEY + name, pod(name, **labels), revision, revision)


def test_open_sends_the_listed_state_as_added_events():
    f = framer()
    out = frames(f.open([kv("a", 3), kv("b", 5)], 7, now=0.0))
    assert [(e["type"], e["object"]["metadata"]["name"], e["object"]["metadata"]["resourceVersion"])
            for e in out] == [("ADDED", "a", "3"), ("ADDED", "b", "5")]
    assert f.last == 7 and not f.finished


def test_open_resuming_sends_nothing_and_selectors_filter_the_listing():
    assert framer().open((), 9, now=0.0) == b""
    f = framer(WatchRequest(label_selector=parse_label_selector("app=web")))
    out = frames(f.open([kv("a", 3, app="web"), kv("b", 4, app="db")], 4, now=0.0))
    assert [e["object"]["metadata"]["name"] for e in out] == ["a"]


def test_watch_list_ends_the_initial_events_with_a_bookmark():
    f = framer(WatchRequest(bookmarks=True, send_initial=True))
    out = frames(f.open([kv("a", 3)], 8, now=0.0))
    assert out[0]["type"] == "ADDED"
    assert out[1] == {"type": "BOOKMARK", "object": {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"resourceVersion": "8", "annotations": {"k8s.io/initial-events-end": "true"}}}}
    # without allowWatchBookmarks the client gets no bookmark at all
    assert [e["type"] for e in frames(framer(WatchRequest(send_initial=True)).open([kv("a", 3)], 8, 0.0))] == ["ADDED"]


def test_events_become_frames_and_a_label_change_is_added_or_deleted():
    f = framer(WatchRequest(label_selector=parse_label_selector("app=web")))
    f.open((), 10, now=0.0)
    events = [
        sb.Event(sb.ADDED, KEY + "a", pod("a", app="web"), 11),
        sb.Event(sb.MODIFIED, KEY + "a", pod("a", app="db"), 12, prev_value=pod("a", app="web")),
        sb.Event(sb.ADDED, KEY + "b", pod("b", app="db"), 13),
    ]
    out = frames(f.events(events, now=1.0))
    assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in out] == [("ADDED", "11"), ("DELETED", "12")]
    assert f.last == 13  # the filtered-out event still moves the watcher's revision


def test_bookmarks_come_when_due_with_the_last_revision():
    f = framer(WatchRequest(bookmarks=True), bookmark_interval=10.0)
    f.open((), 4, now=100.0)
    assert f.wait_time(104.0) == 5.0  # the idle check comes before the bookmark
    assert f.wait_time(107.0) == 3.0
    assert f.events([sb.Event(sb.ADDED, KEY + "a", pod("a"), 6)], now=105.0).count(b"\n") == 1
    out = frames(f.events([], now=110.0))
    assert out == [{"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "6"}}}]
    assert f.events([], now=111.0) == b""  # the next one is 10s later
    assert framer().events([], now=1e9) == b""  # not asked for: never


def test_timeout_finishes_the_stream():
    f = framer(WatchRequest(timeout=3))
    f.open((), 1, now=50.0)
    assert f.wait_time(52.0) == 1.0 and not f.finished
    assert f.wait_time(53.0) == 0.0 and f.finished
    endless = framer()
    endless.open((), 1, now=50.0)
    assert endless.wait_time(1e9) == 5.0 and not endless.finished


def test_too_old_and_overflow_end_the_stream_with_410():
    f = framer()
    gone = frames(f.too_old(3, 40))
    assert f.finished and gone[0]["type"] == "ERROR"
    assert gone[0]["object"]["code"] == 410 and gone[0]["object"]["reason"] == "Expired"
    assert "too old resource version: 3 (40)" in gone[0]["object"]["message"]
    g = framer()
    g.open((), 1, now=0.0)
    over = frames(g.overflowed())
    assert g.finished and over[0]["object"]["code"] == 410 and "fell too far behind" in over[0]["object"]["message"]


def test_table_frames_carry_columns_only_once():
    calls: list[bool] = []

    def table(obj: dict[str, Any], with_columns: bool) -> dict[str, Any]:
        calls.append(with_columns)
        return {"kind": "Table", "rows": [obj["metadata"]["name"]]}

    f = framer(WatchRequest(table=table))
    out = frames(f.open([kv("a", 1), kv("b", 2)], 2, now=0.0))
    assert calls == [True, False]
    assert out[0] == {"type": "ADDED", "object": {"kind": "Table", "rows": ["a"]}}


def test_encode_gets_the_revision_and_key_to_share_work_between_watchers():
    seen: list[tuple[int, str]] = []

    def recording(cache_key: tuple[int, str], obj: dict[str, Any]) -> str:
        seen.append(cache_key)
        return "{}"

    f = WatchFramer(R.PODS, WatchRequest(), recording, 60.0, 5.0)
    f.open((), 1, now=0.0)
    assert f.events([sb.Event(sb.ADDED, KEY + "a", pod("a"), 2)], now=0.0) == b'{"type":"ADDED","object":{}}\n'
    assert seen == [(2, KEY + "a")]
