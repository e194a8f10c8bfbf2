"""Proxier logic in-process with a fake API client and a fake backend (kernel and apiserver
paths are covered by tests/agent): first sync waits for every informer, failures force a full
resync and count, health and the no-local-endpoints gauge follow the state."""
from __future__ import annotations

import asyncio
import contextlib
import copy

from kproxy.agent.backend import ApplyError, ApplyResult, Backend
from kproxy.agent.config import AgentConfig, IptablesConfig
from kproxy.agent.proxier import Proxier
from kproxy.agent.state import FULL, Changes
from kproxy.api.resources import ENDPOINT_SLICES, NODES, SERVICES
from kproxy.netns import NetNS


class FakeClient:
    """list() serves fixed objects (a resource can be held back); watch() streams queued events."""

    def __init__(self, objects: dict) -> None:
        self.objects = objects
        self.queues: dict[str, asyncio.Queue] = {}
        self.hold: dict[str, asyncio.Event] = {}
        self.list_calls: list[tuple[str, str | None, str | None]] = []

    async def list(self, resource, namespace=None, label_selector=None, field_selector=None):
        self.list_calls.append((resource.plural, label_selector, field_selector))
        if resource.plural in self.hold:
            await self.hold[resource.plural].wait()
        items = copy.deepcopy(self.objects.get(resource.plural, []))
        return {"items": items, "metadata": {"resourceVersion": "1"}}

    async def watch(self, resource, **_):
        queue = self.queues.setdefault(resource.plural, asyncio.Queue())
        while True:
            yield await queue.get()

    def send(self, resource, etype, obj) -> None:
        self.queues.setdefault(resource.plural, asyncio.Queue()).put_nowait((etype, copy.deepcopy(obj)))


class FakeBackend(Backend):
    name = "fake"

    def __init__(self) -> None:
        super().__init__(NetNS(None), None)
        self.applied: list[tuple[object, bool]] = []
        self.changes: list[Changes | None] = []  # what each render was told changed
        self.fail = 0

    def render(self, state, previous=None, changes=None):
        self.changes.append(changes)
        return state

    def apply(self, ruleset, previous):
        if self.fail:
            self.fail -= 1
            raise ApplyError("injected")
        self.applied.append((ruleset, previous is None))
        return ApplyResult(full=previous is None)

    def inspect(self):
        return None

    def cleanup(self):
        pass


CONFIG = AgentConfig(iptables=IptablesConfig(min_sync_period=0.0, sync_period=1000.0))


def service(name, rv="1", **spec):
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": rv},
            "spec": {"clusterIP": "10.96.0.9", "ports": [{"name": "p", "port": 80}], **spec}}


def endpoint_slice(name, svc, nodes, rv="1"):
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": rv,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "p", "port": 8080}],
            "endpoints": [{"addresses": [f"10.244.0.{i + 1}"], "nodeName": n} for i, n in enumerate(nodes)]}


async def wait_for(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


def gauge(proxier, name, **labels) -> float:
    return proxier.metrics.registry.get_sample_value(name, labels or None)


@contextlib.asynccontextmanager
async def running_proxier(client, backend):
    """A Proxier over the fakes, running until the block ends (retries after 0.05 s)."""
    proxier = Proxier(CONFIG, "node-1", client, backend, NetNS(None))
    proxier.runner.retry_initial = 0.05
    task = asyncio.create_task(proxier.run())
    try:
        yield proxier
    finally:
        proxier.stop()
        await asyncio.wait_for(task, 10)


async def _first_sync_waits_for_all_informers():
    client = FakeClient({"services": [service("a")], "endpointslices": [endpoint_slice("a-1", "a", ["node-1"])]})
    client.hold["nodes"] = asyncio.Event()
    backend = FakeBackend()
    async with running_proxier(client, backend) as proxier:
        await wait_for(lambda: len(client.list_calls) == 3)
        await asyncio.sleep(0.2)
        assert backend.applied == []  # nodes not listed yet: no sync
        assert proxier.health.healthz().status == 503
        client.hold["nodes"].set()
        await wait_for(lambda: proxier.sync_count == 1)
        state, full = backend.applied[0]
        assert full and [e.ip for e in state.services["default/a:p"].endpoints] == ["10.244.0.1"]
        assert proxier.health.healthz().status == 200
        selectors = {plural: (label, field) for plural, label, field in client.list_calls}
        assert selectors["services"] == ("!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless",
                                         "spec.clusterIP!=None")
        assert selectors["endpointslices"] == ("!service.kubernetes.io/headless", None)
        assert selectors["nodes"] == (None, "metadata.name=node-1")


def test_first_sync_waits_for_all_informers():
    asyncio.run(_first_sync_waits_for_all_informers())


async def _failure_forces_full_and_no_local_gauge():
    svc = service("lb", type="NodePort", externalTrafficPolicy="Local")
    svc["spec"]["ports"][0]["nodePort"] = 30080
    client = FakeClient({"services": [svc], "endpointslices": [endpoint_slice("lb-1", "lb", ["node-2"])]})
    backend = FakeBackend()
    async with running_proxier(client, backend) as proxier:
        await wait_for(lambda: proxier.sync_count == 1)
        assert gauge(proxier, "kubeproxy_sync_proxy_rules_no_local_endpoints_total", traffic_policy="external") == 1
        assert gauge(proxier, "kubeproxy_sync_proxy_rules_no_local_endpoints_total", traffic_policy="internal") == 0

        backend.fail = 2
        client.send(ENDPOINT_SLICES, "MODIFIED", endpoint_slice("lb-1", "lb", ["node-2", "node-1"], rv="2"))
        await wait_for(lambda: proxier.sync_count == 2)
        state, full = backend.applied[1]
        assert full  # the retry after a failure is a full sync
        assert len(state.services["default/lb:p"].endpoints) == 2
        assert gauge(proxier, "kubeproxy_sync_proxy_rules_iptables_restore_failures_total") == 2
        assert gauge(proxier, "kubeproxy_sync_proxy_rules_no_local_endpoints_total", traffic_policy="external") == 0

        client.send(SERVICES, "DELETED", svc)
        await wait_for(lambda: proxier.sync_count == 3)
        state, full = backend.applied[2]
        assert not full and "default/lb:p" not in state.services
        client.send(NODES, "ADDED", {"metadata": {"name": "node-1", "resourceVersion": "5",
                                                   "deletionTimestamp": "2026-01-01T00:00:00Z"}})
        await wait_for(lambda: not proxier.health.node_eligible)
        assert proxier.health.healthz().status == 503 and proxier.health.livez().status == 200


def test_failure_forces_full_resync_and_gauges_follow():
    asyncio.run(_failure_forces_full_and_no_local_gauge())


def test_the_service_cidr_of_the_config_reaches_the_state():
    from dataclasses import replace
    proxier = Proxier(replace(CONFIG, service_cidr="10.96.0.0/12"), "node-1", FakeClient({}), FakeBackend(),
                      NetNS(None))
    assert proxier.builder.build_state().state.service_cidrs == ("10.96.0.0/12",)


async def _render_is_told_the_trackers_changes():
    client = FakeClient({"services": [service("a"), service("b")],
                         "endpointslices": [endpoint_slice("a-1", "a", ["node-1"]), endpoint_slice("b-1", "b", ["node-1"])]})
    backend = FakeBackend()
    async with running_proxier(client, backend) as proxier:
        await wait_for(lambda: proxier.sync_count == 1)
        assert backend.changes == [FULL]  # the first render starts from nothing
        client.send(ENDPOINT_SLICES, "MODIFIED", endpoint_slice("b-1", "b", ["node-1", "node-2"], rv="2"))
        await wait_for(lambda: proxier.sync_count == 2)
        assert backend.changes[1:] == [Changes(full=False, services=frozenset({"default/b:p"}))]
        assert backend.applied[1][0].services.keys() == {"default/a:p", "default/b:p"}

        backend.fail = 1  # the partial apply fails: the builder moved on, the kernel did not
        client.send(ENDPOINT_SLICES, "MODIFIED", endpoint_slice("a-1", "a", ["node-2"], rv="3"))
        await wait_for(lambda: proxier.sync_count == 3)
        assert backend.changes[2:] == [Changes(full=False, services=frozenset({"default/a:p"})), FULL]


def test_render_is_told_the_trackers_changes():
    asyncio.run(_render_is_told_the_trackers_changes())
