"""Issue 7, agent side: a real Proxier (real apiserver, real informers, real HTTP listeners on
loopback) whose backend can be made to hang inside apply. /healthz and /livez go unhealthy
when the sync loop is stuck with a change waiting, and healthy again when it recovers; /metrics
is parsed by prometheus-client's own text parser and carries kube-proxy's metric names."""
from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kproxy.agent.backend import ApplyResult, Backend
from kproxy.agent.config import load_config
from kproxy.agent.health import ProxierHealth
from kproxy.agent.metrics import ProxyMetrics
from kproxy.agent.proxier import Proxier
from kproxy.agent.servers import HttpListeners, healthz_app, metrics_app
from kproxy.api.resources import NAMESPACES, SERVICES
from kproxy.api.status import ApiError
from kproxy.client import ApiClient, load_kubeconfig
from kproxy.client.sync import Client
from kproxy.netns import NetNS
from tests.apiserver.fixtures import start_apiserver

HEALTH_TIMEOUT = 1.0  # seconds a queued change may wait before /healthz fails
WAIT = 30.0  # bounded polling deadline


class GateBackend(Backend):
    """Applies instantly while the gate is open; blocks inside apply while it is closed."""

    name = "gate"

    def __init__(self) -> None:
        super().__init__(NetNS(None), None)
        self.gate = threading.Event()
        self.gate.set()
        self.applied = 0
        self.inside = threading.Event()

    def render(self, state, previous=None, changes=None):
        return state.revision

    def apply(self, ruleset, previous):
        self.inside.set()
        self.gate.wait(WAIT)
        self.inside.clear()
        self.applied += 1
        return ApplyResult(full=previous is None)

    def inspect(self):
        return {}

    def cleanup(self) -> None:
        pass


class AgentThread:
    """Proxier + listeners on their own event loop thread; stop() always ends both."""

    def __init__(self, kubeconfig: str) -> None:
        self.config = load_config(None, {"min_sync_period": "0s", "sync_period": "30s"})
        self.backend = GateBackend()
        self.health = ProxierHealth(timeout=HEALTH_TIMEOUT)
        self.metrics = ProxyMetrics()
        self.kubeconfig = kubeconfig
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)
        self.urls: dict[str, str] = {}

    async def _main(self) -> None:
        client = ApiClient(load_kubeconfig(self.kubeconfig))
        self.proxier = Proxier(self.config, "node-1", client, self.backend, NetNS(None),
                               metrics=self.metrics, health=self.health)
        listeners = HttpListeners(NetNS(None))
        try:
            await listeners.start("healthz", "127.0.0.1:0", healthz_app(self.health))
            await listeners.start("metrics", "127.0.0.1:0", metrics_app(self.metrics, "gate"))
            self.urls = {k: "http://%s:%d" % v for k, v in listeners.addresses.items()}
            self.ready.set()
            await self.proxier.run()
        finally:
            await listeners.stop()
            await client.close()

    def start(self) -> "AgentThread":
        self.thread.start()
        assert self.ready.wait(WAIT), "listeners did not start"
        return self

    def stop(self) -> None:
        self.backend.gate.set()
        if self.ready.is_set():
            self.loop.call_soon_threadsafe(self.proxier.stop)
        self.thread.join(WAIT)

    def get(self, name: str, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.urls[name] + path, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def wait_for(check, what: str):
    deadline = time.monotonic() + WAIT
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}


@pytest.fixture
def cluster(tmp_path):
    server = start_apiserver(tmp_path, ["--no-controllers"])
    client = Client.from_kubeconfig(server.kubeconfig)
    try:
        try:
            client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        except ApiError as exc:
            if exc.code != 409:
                raise
        yield server, client
    finally:
        client.close()
        server.stop()


@pytest.fixture
def agent(cluster):
    a = AgentThread(cluster[0].kubeconfig).start()
    try:
        yield a
    finally:
        a.stop()


def test_healthz_fails_while_the_sync_loop_is_stuck_and_recovers(cluster, agent):
    _, client = cluster
    wait_for(lambda: agent.get("healthz", "/healthz")[0] == 200, "first sync")
    agent.backend.gate.clear()  # the next apply hangs
    client.create(SERVICES, service("a"))
    wait_for(agent.backend.inside.is_set, "the sync to enter apply")
    client.create(SERVICES, service("b"))  # queued behind the stuck sync
    wait_for(lambda: agent.get("healthz", "/healthz")[0] == 503, "healthz 503 while stuck")
    assert agent.get("healthz", "/livez")[0] == 503  # livez too: only eligibility differs
    applied = agent.backend.applied
    agent.backend.gate.set()
    wait_for(lambda: agent.get("healthz", "/healthz")[0] == 200, "healthz 200 after recovery")
    assert agent.get("healthz", "/livez")[0] == 200
    assert agent.backend.applied > applied


def test_metrics_parse_with_prometheus_clients_parser(cluster, agent):
    _, client = cluster
    wait_for(lambda: agent.get("healthz", "/healthz")[0] == 200, "first sync")
    client.create(SERVICES, service("m"))
    wait_for(lambda: agent.backend.applied >= 2, "second sync")
    status, text = agent.get("metrics", "/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("kubeproxy_sync_proxy_rules_duration_seconds", "kubeproxy_sync_full_proxy_rules_duration_seconds",
                 "kubeproxy_sync_partial_proxy_rules_duration_seconds",
                 "kubeproxy_network_programming_duration_seconds"):
        assert families[name].type == "histogram", name
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("kubeproxy_sync_proxy_rules_duration_seconds_count", ())] >= 2
    assert samples[("kubeproxy_sync_proxy_rules_last_timestamp_seconds", ())] > 0
    assert samples[("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", ())] > 0
    assert samples[("kubeproxy_sync_proxy_rules_service_changes_total", ())] >= 1
    assert samples[("kubeproxy_sync_proxy_rules_iptables_restore_failures_total", ())] == 0
    assert families["kubeproxy_sync_proxy_rules_service_changes"].type == "counter"
    assert agent.get("metrics", "/proxyMode") == (200, "gate")
