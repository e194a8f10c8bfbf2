"""Informer logic against a tiny scripted aiohttp server (a fake is fine for this logic):
list -> handler diffs -> watch from RV, relist on 410 (HTTP and ERROR event), reconnect with
backoff, bookmarks, partial lines, server-closed streams."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web

from kproxy.api.resources import PODS
from kproxy.client.errors import ApiConnectionError
from kproxy.client.informer import Backoff, Informer
from kproxy.client.kubeconfig import ClusterConfig
from kproxy.client.rest import ApiClient


def pod(name: str, rv: str, ns: str = "default") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "resourceVersion": rv}}


def line(etype: str, obj: dict) -> bytes:
    return json.dumps({"type": etype, "object": obj}).encode() + b"\n"


GONE = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410,
        "message": "too old resource version"}


class ScriptedServer:
    """Lists answer `lists.pop(0)` (items, rv); each watch request runs the next script: a list
    of steps, each bytes (written), a float (sleep), ("status", code, body) (a plain answer).
    When the scripts run out, a watch stays open until the test ends."""

    def __init__(self):
        self.lists: list[tuple[list[dict], str]] = []
        self.scripts: list[list] = []
        self.requests: list[dict] = []  # query params of each request, in order
        self.idle = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        self.requests.append(params)
        if params.get("watch") != "1":
            items, rv = self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]
            return web.json_response({"kind": "PodList", "apiVersion": "v1",
                                      "metadata": {"resourceVersion": rv}, "items": items})
        if not self.scripts:
            self.idle.set()
            await asyncio.sleep(3600)
        script = self.scripts.pop(0)
        if script and isinstance(script[0], tuple):
            _, code, body = script[0]
            return web.json_response(body, status=code)
        resp = web.StreamResponse()
        resp.content_type = "application/json"
        await resp.prepare(request)
        for step in script:
            if isinstance(step, float):
                await asyncio.sleep(step)
            else:
                await resp.write(step)
        return resp

    def watches(self) -> list[dict]:
        return [r for r in self.requests if r.get("watch") == "1"]


class Recorder:
    def __init__(self):
        self.calls: list[tuple] = []

    def on_add(self, obj):
        self.calls.append(("add", obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))

    def on_update(self, old, new):
        self.calls.append(("update", new["metadata"]["name"], old["metadata"]["resourceVersion"],
                           new["metadata"]["resourceVersion"]))

    def on_delete(self, obj):
        self.calls.append(("delete", obj["metadata"]["name"]))


async def with_server(server: ScriptedServer, body):
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = ApiClient(ClusterConfig(server=f"http://127.0.0.1:{port}"))
    try:
        return await body(client)
    finally:
        await client.close()
        await runner.cleanup()


async def run_until_idle(client, server, recorder, **kwargs) -> Informer:
    """Runs an informer until the server has no watch script left, then stops it."""
    inf = Informer(client, PODS, handler=recorder, backoff_initial=0.01, backoff_max=0.05, **kwargs)
    task = asyncio.create_task(inf.run())
    await asyncio.wait_for(server.idle.wait(), 10)
    inf.stop()
    await asyncio.wait_for(task, 5)
    return inf


def test_list_then_watch_from_list_rv():
    server = ScriptedServer()
    server.lists = [([pod("a", "5"), pod("b", "6")], "7")]
    server.scripts = [[line("ADDED", pod("c", "8")), line("MODIFIED", pod("a", "9")), line("DELETED", pod("b", "10"))]]
    rec = Recorder()

    async def body(client):
        return await run_until_idle(client, server, rec)

    inf = asyncio.run(with_server(server, body))
    assert rec.calls == [("add", "a", "5"), ("add", "b", "6"), ("add", "c", "8"), ("update", "a", "5", "9"),
                         ("delete", "b")]
    assert inf.synced.is_set()
    assert sorted(inf.cache) == ["default/a", "default/c"]
    assert inf.cache["default/a"]["metadata"]["resourceVersion"] == "9"
    watches = server.watches()
    assert watches[0]["resourceVersion"] == "7"
    # the stream ended after its events: the informer resumed from the last event's RV, no relist
    assert watches[1]["resourceVersion"] == "10"
    assert sum(1 for r in server.requests if r.get("watch") != "1") == 1


def test_error_event_410_relists_and_diffs():
    server = ScriptedServer()
    server.lists = [([pod("keep", "1"), pod("change", "2"), pod("gone", "3")], "3"),
                    ([pod("keep", "1"), pod("change", "20"), pod("new", "21")], "22")]
    server.scripts = [[line("ERROR", GONE)]]
    rec = Recorder()

    async def body(client):
        return await run_until_idle(client, server, rec)

    inf = asyncio.run(with_server(server, body))
    after_first = rec.calls[3:]
    assert rec.calls[:3] == [("add", "keep", "1"), ("add", "change", "2"), ("add", "gone", "3")]
    # only real changes: no call for "keep"
    assert sorted(after_first) == sorted([("update", "change", "2", "20"), ("add", "new", "21"), ("delete", "gone")])
    assert sorted(inf.cache) == ["default/change", "default/keep", "default/new"]
    assert server.watches()[-1]["resourceVersion"] == "22"


def test_metadata_only_cache_keeps_identities_and_still_diffs_a_relist():
    def fat(name, rv):
        return {**pod(name, rv), "spec": {"containers": [{"name": "c", "image": "x" * 100}]}}

    server = ScriptedServer()
    server.lists = [([fat("keep", "1"), fat("change", "2"), fat("gone", "3")], "3"),
                    ([fat("keep", "1"), fat("change", "20"), fat("new", "21")], "22")]
    server.scripts = [[line("MODIFIED", fat("keep", "4")), line("ERROR", GONE)]]
    rec = Recorder()

    async def body(client):
        return await run_until_idle(client, server, rec, metadata_only=True)

    inf = asyncio.run(with_server(server, body))
    assert all(set(obj) == {"apiVersion", "kind", "metadata"} for obj in inf.cache.values())
    assert inf.cache["default/new"]["metadata"] == {"name": "new", "namespace": "default", "resourceVersion": "21"}
    # the same calls as with full objects: the relist is diffed by resourceVersion
    assert rec.calls[:4] == [("add", "keep", "1"), ("add", "change", "2"), ("add", "gone", "3"),
                             ("update", "keep", "1", "4")]
    assert sorted(rec.calls[4:]) == sorted([("update", "keep", "4", "1"), ("update", "change", "2", "20"),
                                            ("add", "new", "21"), ("delete", "gone")])


def test_http_410_on_watch_relists():
    server = ScriptedServer()
    server.lists = [([pod("a", "1")], "1"), ([pod("a", "1")], "50")]
    server.scripts = [[("status", 410, GONE)]]
    rec = Recorder()

    async def body(client):
        return await run_until_idle(client, server, rec)

    asyncio.run(with_server(server, body))
    assert rec.calls == [("add", "a", "1")]
    assert [r.get("resourceVersion") for r in server.watches()] == ["1", "50"]
    assert sum(1 for r in server.requests if r.get("watch") != "1") == 2


def test_server_errors_retry_from_same_rv_without_relist():
    server = ScriptedServer()
    server.lists = [([pod("a", "1")], "4")]
    err = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500,
           "message": "boom"}
    server.scripts = [[("status", 500, err)], [("status", 503, err)], [line("MODIFIED", pod("a", "5"))]]
    rec = Recorder()

    async def body(client):
        return await run_until_idle(client, server, rec)

    asyncio.run(with_server(server, body))
    assert [r.get("resourceVersion") for r in server.watches()] == ["4", "4", "4", "5"]
    assert sum(1 for r in server.requests if r.get("watch") != "1") == 1
    assert rec.calls == [("add", "a", "1"), ("update", "a", "1", "5")]


def test_bookmark_moves_rv_only():
    server = ScriptedServer()
    server.lists = [([pod("a", "1")], "1")]
    bookmark = {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "77"}}
    server.scripts = [[line("BOOKMARK", bookmark)]]
    rec = Recorder()

    async def body(client):
        return await run_until_idle(client, server, rec)

    inf = asyncio.run(with_server(server, body))
    assert rec.calls == [("add", "a", "1")]
    assert list(inf.cache) == ["default/a"]
    assert server.watches()[-1]["resourceVersion"] == "77"


def test_event_split_across_chunks():
    server = ScriptedServer()
    server.lists = [([], "1")]
    data = line("ADDED", pod("x", "2")) + line("ADDED", pod("y", "3"))
    server.scripts = [[data[:10], 0.05, data[10:60], 0.05, data[60:]]]
    rec = Recorder()

    async def body(client):
        return await run_until_idle(client, server, rec)

    asyncio.run(with_server(server, body))
    assert rec.calls == [("add", "x", "2"), ("add", "y", "3")]


def test_connection_refused_is_retried_with_backoff():
    """Against a port nobody listens on: the informer keeps retrying (never raises) and is
    not synced; stop() ends it."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on `port` now
    calls = []

    class CountingClient(ApiClient):
        async def list(self, *a, **kw):
            calls.append(time.monotonic())
            return await super().list(*a, **kw)

    async def main():
        client = CountingClient(ClusterConfig(server=f"http://127.0.0.1:{port}"))
        inf = Informer(client, PODS, backoff_initial=0.02, backoff_max=0.08)
        task = asyncio.create_task(inf.run())
        deadline = time.monotonic() + 10
        while len(calls) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        inf.stop()
        await asyncio.wait_for(task, 5)
        await client.close()
        return inf

    inf = asyncio.run(main())
    assert len(calls) >= 5
    assert not inf.synced.is_set()


def test_connection_refused_raises_connection_error():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()

    async def main():
        async with ApiClient(ClusterConfig(server=f"http://127.0.0.1:{port}")) as client:
            with pytest.raises(ApiConnectionError):
                await client.list(PODS)
            with pytest.raises(ApiConnectionError):
                async for _ in client.watch(PODS):
                    pass

    asyncio.run(main())


def test_backoff_grows_with_jitter_and_caps():
    b = Backoff(initial=1.0, maximum=8.0)
    delays = [b.next_delay() for _ in range(6)]
    nominal = [1, 2, 4, 8, 8, 8]
    for d, n in zip(delays, nominal):
        assert n / 2 <= d <= n
    b.reset()
    assert 0.5 <= b.next_delay() <= 1.0


def test_handler_exception_does_not_stop_informer():
    server = ScriptedServer()
    server.lists = [([pod("a", "1")], "1")]
    server.scripts = [[line("ADDED", pod("b", "2"))]]
    seen = []

    class Broken:
        def on_add(self, obj):
            seen.append(obj["metadata"]["name"])
            raise RuntimeError("handler bug")

    async def body(client):
        return await run_until_idle(client, server, Broken())

    inf = asyncio.run(with_server(server, body))
    assert seen == ["a", "b"]
    assert sorted(inf.cache) == ["default/a", "default/b"]


def test_async_handlers_are_awaited():
    server = ScriptedServer()
    server.lists = [([pod("a", "1")], "1")]
    seen = []

    class AsyncHandler:
        async def on_add(self, obj):
            await asyncio.sleep(0)
            seen.append(obj["metadata"]["name"])

    async def body(client):
        return await run_until_idle(client, server, AsyncHandler())

    asyncio.run(with_server(server, body))
    assert seen == ["a"]


def test_namespace_index_follows_events_and_relists():
    server = ScriptedServer()
    server.lists = [([pod("a", "1", "ns1"), pod("b", "2", "ns2")], "2"),
                    ([pod("c", "9", "ns1")], "9")]
    server.scripts = [[line("ADDED", pod("d", "3", "ns2")), line("DELETED", pod("b", "4", "ns2")),
                       line("ERROR", GONE)]]
    seen = {}

    async def body(client):
        inf = Informer(client, PODS, backoff_initial=0.01, backoff_max=0.05)

        class Snapshot:
            def on_add(self, obj):
                if obj["metadata"]["name"] == "d":
                    seen["ns2_after_d"] = sorted(o["metadata"]["name"] for o in inf.list("ns2"))

        inf.add_handler(Snapshot())
        task = asyncio.create_task(inf.run())
        await asyncio.wait_for(server.idle.wait(), 10)
        inf.stop()
        await asyncio.wait_for(task, 5)
        return inf

    inf = asyncio.run(with_server(server, body))
    assert seen["ns2_after_d"] == ["b", "d"]
    assert [o["metadata"]["name"] for o in inf.list("ns1")] == ["c"]  # after the relist
    assert inf.list("ns2") == []
    assert inf.get("c", "ns1")["metadata"]["resourceVersion"] == "9"


def test_relist_reports_recreated_object_as_delete_then_add():
    server = ScriptedServer()
    old, new = pod("a", "1"), pod("a", "7")
    old["metadata"]["uid"], new["metadata"]["uid"] = "uid-1", "uid-2"
    server.lists = [([old], "1"), ([new], "7")]
    server.scripts = [[line("ERROR", GONE)]]
    rec = Recorder()

    async def body(client):
        return await run_until_idle(client, server, rec)

    asyncio.run(with_server(server, body))
    assert rec.calls == [("add", "a", "1"), ("delete", "a"), ("add", "a", "7")]
