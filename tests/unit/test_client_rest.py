"""ApiClient request shapes and error mapping against a small recording aiohttp server,
plus the blocking sync.Client over the same server."""
from __future__ import annotations

import asyncio
import json
import threading

import pytest
from aiohttp import web

from kproxy.api.resources import ENDPOINT_SLICES, NAMESPACES, NODES, PODS
from kproxy.api.status import ApiError
from kproxy.client.kubeconfig import ClusterConfig
from kproxy.client.rest import ApiClient
from kproxy.client.sync import Client


class Recording:
    """Answers every request with `self.answer` (status, body) and records it."""

    def __init__(self):
        self.seen: list[dict] = []
        self.answer: tuple[int, object] = (200, {"kind": "Pod", "metadata": {"name": "x"}})

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append({"method": request.method, "path": request.path, "query": dict(request.query),
                          "content_type": request.headers.get("Content-Type"),
                          "auth": request.headers.get("Authorization"),
                          "body": json.loads(body) if body else None})
        code, payload = self.answer
        if isinstance(payload, (bytes, str)):
            return web.Response(status=code, body=payload)
        return web.json_response(payload, status=code)


async def serve(rec: Recording):
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def run_against(rec: Recording, body, **cfg):
    async def main():
        runner, url = await serve(rec)
        try:
            async with ApiClient(ClusterConfig(server=url, **cfg)) as client:
                return await body(client)
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def test_verbs_paths_and_bodies():
    rec = Recording()

    async def body(c: ApiClient):
        await c.create(PODS, {"metadata": {"name": "p", "namespace": "n1"}})
        await c.create(NODES, {"metadata": {"name": "node1"}})
        await c.get(PODS, "p")  # default namespace from the config
        await c.update(ENDPOINT_SLICES, {"metadata": {"name": "s", "namespace": "n2", "resourceVersion": "3"}})
        await c.update_status(PODS, {"metadata": {"name": "p", "namespace": "n1"}})
        await c.patch(PODS, "p", {"metadata": {"labels": {"a": "b"}}}, "n1", patch_type="strategic")
        await c.patch(PODS, "p", [{"op": "remove", "path": "/x"}], "n1", patch_type="json")
        await c.delete(PODS, "p", "n1", resource_version="9")
        await c.list(PODS, label_selector="app=web", field_selector="spec.nodeName=n")
        await c.finalize_namespace({"metadata": {"name": "gone"}, "spec": {"finalizers": []}})

    run_against(rec, body, token="tok")
    s = rec.seen
    assert [(r["method"], r["path"]) for r in s] == [
        ("POST", "/api/v1/namespaces/n1/pods"),
        ("POST", "/api/v1/nodes"),
        ("GET", "/api/v1/namespaces/default/pods/p"),
        ("PUT", "/apis/discovery.k8s.io/v1/namespaces/n2/endpointslices/s"),
        ("PUT", "/api/v1/namespaces/n1/pods/p/status"),
        ("PATCH", "/api/v1/namespaces/n1/pods/p"),
        ("PATCH", "/api/v1/namespaces/n1/pods/p"),
        ("DELETE", "/api/v1/namespaces/n1/pods/p"),
        ("GET", "/api/v1/pods"),
        ("PUT", "/api/v1/namespaces/gone/finalize"),
    ]
    assert s[0]["body"]["kind"] == "Pod" and s[0]["body"]["apiVersion"] == "v1"
    assert s[3]["body"]["apiVersion"] == "discovery.k8s.io/v1"
    assert s[5]["content_type"] == "application/strategic-merge-patch+json"
    assert s[6]["content_type"] == "application/json-patch+json"
    assert s[7]["body"]["preconditions"] == {"resourceVersion": "9"}
    assert s[8]["query"] == {"labelSelector": "app=web", "fieldSelector": "spec.nodeName=n"}
    assert all(r["auth"] == "Bearer tok" for r in s)


def test_status_error_becomes_api_error():
    rec = Recording()
    rec.answer = (422, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid",
                        "code": 422, "message": "bad port",
                        "details": {"causes": [{"reason": "FieldValueInvalid", "field": "spec.ports[0].port"}]}})

    async def body(c):
        with pytest.raises(ApiError) as info:
            await c.create(PODS, {"metadata": {"name": "p"}})
        return info.value

    err = run_against(rec, body)
    assert (err.code, err.reason) == (422, "Invalid")
    assert err.causes[0]["field"] == "spec.ports[0].port"


def test_non_status_error_body_is_wrapped():
    rec = Recording()
    rec.answer = (503, "upstream down")

    async def body(c):
        with pytest.raises(ApiError) as info:
            await c.get(NAMESPACES, "x")
        return info.value

    err = run_against(rec, body)
    assert (err.code, err.reason) == (503, "ServiceUnavailable")
    assert "upstream down" in str(err)


def test_unknown_patch_type_is_value_error():
    rec = Recording()

    async def body(c):
        with pytest.raises(ValueError, match="unknown patch type"):
            await c.patch(PODS, "p", {}, patch_type="yaml")

    run_against(rec, body)
    assert rec.seen == []


def test_list_follows_continue_pages():
    pages = [
        {"kind": "PodList", "metadata": {"resourceVersion": "10", "continue": "t1"}, "items": [{"metadata": {"name": "a"}}]},
        {"kind": "PodList", "metadata": {"resourceVersion": "10", "continue": ""}, "items": [{"metadata": {"name": "b"}}]},
    ]

    class Pager(Recording):
        async def handle(self, request):
            self.seen.append(dict(request.query))
            return web.json_response(pages[len(self.seen) - 1])

    rec = Pager()

    async def body(c):
        return await c.list(PODS, limit=1)

    result = run_against(rec, body)
    assert [i["metadata"]["name"] for i in result["items"]] == ["a", "b"]
    assert result["metadata"]["resourceVersion"] == "10"
    assert rec.seen[1]["continue"] == "t1"


def test_sync_client_blocks_and_raises():
    rec = Recording()
    ready = threading.Event()
    state = {}

    def server_thread():
        loop = asyncio.new_event_loop()
        runner, url = loop.run_until_complete(serve(rec))
        state.update(loop=loop, runner=runner, url=url)
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    t = threading.Thread(target=server_thread, daemon=True)
    t.start()
    ready.wait(10)
    try:
        with Client(ClusterConfig(server=state["url"])) as client:
            assert client.get(PODS, "x", "ns")["metadata"]["name"] == "x"
            rec.answer = (404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
                                "message": 'pods "y" not found'})
            assert client.get_or_none(PODS, "y", "ns") is None
            with pytest.raises(ApiError) as info:
                client.delete(PODS, "y", "ns")
            assert info.value.code == 404
            with pytest.raises(TimeoutError):
                client.wait_for(lambda c: c.get_or_none(PODS, "y", "ns"), timeout=0.3, interval=0.05)
        with pytest.raises(RuntimeError, match="closed"):
            client.get(PODS, "x")
    finally:
        state["loop"].call_soon_threadsafe(state["loop"].stop)
        t.join(10)


class Streaming:
    """Answers a watch with `chunks` (bytes written one by one), then closes the stream."""

    def __init__(self, chunks):
        self.chunks = chunks

    async def handle(self, request):
        resp = web.StreamResponse()
        await resp.prepare(request)
        for chunk in self.chunks:
            await resp.write(chunk)
            await asyncio.sleep(0.01)
        return resp


def watch_all(chunks):
    async def main():
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", Streaming(chunks).handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        events, error = [], None
        try:
            async with ApiClient(ClusterConfig(server=f"http://127.0.0.1:{runner.addresses[0][1]}")) as c:
                try:
                    async for etype, obj in c.watch(PODS, "default", resource_version="5"):
                        events.append((etype, obj["metadata"]["name"]))
                except ApiError as exc:
                    error = exc
        finally:
            await runner.cleanup()
        return events, error

    return asyncio.run(main())


def ev(etype, name):
    return json.dumps({"type": etype, "object": {"metadata": {"name": name}}}).encode() + b"\n"


def test_watch_stream_end_just_ends_iteration():
    data = ev("ADDED", "a") + ev("MODIFIED", "a") + b"\n" + ev("DELETED", "a")
    events, error = watch_all([data[:7], data[7:50], data[50:]])
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert error is None


def test_watch_error_events_raise_with_their_status():
    status_500 = {"kind": "Status", "status": "Failure", "code": 500, "reason": "InternalError", "message": "x"}
    events, error = watch_all([ev("ADDED", "a"), json.dumps({"type": "ERROR", "object": status_500}).encode() + b"\n",
                               ev("ADDED", "never")])
    assert events == [("ADDED", "a")]
    assert error.code == 500
    events, error = watch_all([b"{not json}\n"])
    assert events == [] and error.code == 500 and "malformed watch event" in str(error)
