"""The Informer and ApiClient against the real apiserver: watch streams, 410 Gone from an
expired resourceVersion followed by a diffing relist, and reconnecting across a restart."""
from __future__ import annotations

import asyncio

import pytest

from kproxy.api.resources import NAMESPACES, SERVICE_ACCOUNTS
from kproxy.api.status import ApiError
from kproxy.client.informer import Informer
from kproxy.client.rest import ApiClient
from tests.apiserver.fixtures import start_apiserver


class GatedClient(ApiClient):
    """Counts lists; a watch waits for `gate` before it is opened (lets a test make the
    informer's resourceVersion expire while it is not watching)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lists = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()

    async def list(self, *a, **kw):
        self.lists += 1
        return await super().list(*a, **kw)

    async def watch(self, *a, **kw):
        if not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        async for event in super().watch(*a, **kw):
            yield event


class Log:
    def __init__(self):
        self.events = []
        self.changed = asyncio.Event()

    def on_add(self, obj):
        self._log("add", obj)

    def on_update(self, old, new):
        self._log("update", new)

    def on_delete(self, obj):
        self._log("delete", obj)

    def _log(self, kind, obj):
        self.events.append((kind, obj["metadata"].get("namespace"), obj["metadata"]["name"]))
        self.changed.set()


async def wait_until(pred, timeout=20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


@pytest.fixture
def server(tmp_path):
    s = start_apiserver(tmp_path, ["--no-controllers", "--store-history", "5"])
    try:
        yield s
    finally:
        s.stop()


def sa(name, ns="default"):
    return {"metadata": {"name": name, "namespace": ns}}


def test_watch_from_expired_rv_raises_410(server):
    async def main():
        async with ApiClient.from_kubeconfig(server.kubeconfig) as c:
            rv = (await c.list(SERVICE_ACCOUNTS))["metadata"]["resourceVersion"]
            for i in range(10):
                await c.create(SERVICE_ACCOUNTS, sa(f"x{i}"))
            with pytest.raises(ApiError) as info:
                async for _ in c.watch(SERVICE_ACCOUNTS, resource_version=rv):
                    pass
            return info.value

    assert asyncio.run(main()).code == 410


def test_informer_relists_on_410_and_reports_only_real_changes(server):
    async def main():
        client = GatedClient.from_kubeconfig(server.kubeconfig)
        log = Log()
        inf = Informer(client, SERVICE_ACCOUNTS, namespace="default", handler=log,
                       backoff_initial=0.05, backoff_max=0.2)
        await client.create(NAMESPACES, {"metadata": {"name": "other"}})
        await client.create(SERVICE_ACCOUNTS, sa("keep"))
        await client.create(SERVICE_ACCOUNTS, sa("drop"))
        task = asyncio.create_task(inf.run())
        try:
            await asyncio.wait_for(inf.synced.wait(), 20)
            assert sorted(log.events) == [("add", "default", "drop"), ("add", "default", "keep")]
            await client.create(SERVICE_ACCOUNTS, sa("live"))
            await wait_until(lambda: ("add", "default", "live") in log.events)
            log.events.clear()
            # Close the watch door, break the stream, then make the informer's RV expire.
            client.gate.clear()
            server.restart()
            await asyncio.wait_for(client.waiting.wait(), 20)
            await client.delete(SERVICE_ACCOUNTS, "drop", "default")
            for i in range(8):
                await client.create(SERVICE_ACCOUNTS, sa(f"new{i}", "other"))  # history churn elsewhere
            await client.create(SERVICE_ACCOUNTS, sa("late"))
            lists_before = client.lists
            client.gate.set()
            await wait_until(lambda: ("add", "default", "late") in log.events and
                             ("delete", "default", "drop") in log.events)
            assert client.lists == lists_before + 1  # exactly one relist, after the 410
            # only real changes: "keep" and "live" were unchanged, other namespaces not watched
            assert sorted(log.events) == [("add", "default", "late"), ("delete", "default", "drop")]
            assert sorted(inf.cache) == ["default/keep", "default/late", "default/live"]
            # and it keeps watching after the relist
            await client.create(SERVICE_ACCOUNTS, sa("after"))
            await wait_until(lambda: ("add", "default", "after") in log.events)
        finally:
            inf.stop()
            await asyncio.wait_for(task, 10)
            await client.close()

    asyncio.run(main())


def test_informer_reconnects_after_apiserver_restart(server):
    async def main():
        client = ApiClient.from_kubeconfig(server.kubeconfig)
        log = Log()
        inf = Informer(client, NAMESPACES, handler=log, backoff_initial=0.05, backoff_max=0.5)
        task = asyncio.create_task(inf.run())
        try:
            await asyncio.wait_for(inf.synced.wait(), 20)
            server.kill()  # connection refused for a while: the informer retries with backoff
            await asyncio.sleep(0.5)
            assert not task.done()
            server.start()
            await client.create(NAMESPACES, {"metadata": {"name": "after-restart"}})
            await wait_until(lambda: ("add", None, "after-restart") in log.events)
            assert "after-restart" in inf.cache
        finally:
            inf.stop()
            await asyncio.wait_for(task, 10)
            await client.close()

    asyncio.run(main())
