"""Controllers against the real apiserver: a `kproxy apiserver --no-controllers` subprocess and
run_controllers in a thread of the test process (short node grace period), driven through
the blocking kproxy.client.sync.Client."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from kproxy.api.resources import NODES, PODS, SERVICES
from kproxy.client.rest import ApiClient
from kproxy.client.sync import Client
from kproxy.controllers.manager import run_controllers
from tests.apiserver.fixtures import ApiserverProcess, start_apiserver
from tests.controllers.fake_kubelet import FakeKubelet
from tests.controllers.loopthread import LoopThread

NODE_GRACE = 2.0


class ControllersThread(LoopThread):
    """run_controllers on its own loop in a thread; stop() ends it and joins."""

    name = "test-controllers"

    def __init__(self, kubeconfig: str, **kwargs):
        self._kubeconfig = kubeconfig
        self._kwargs = kwargs
        super().__init__()

    async def body(self, stop: asyncio.Event) -> None:
        self.started()
        async with ApiClient.from_kubeconfig(self._kubeconfig) as client:
            await run_controllers(client, stop, **self._kwargs)


@dataclass
class Env:
    server: ApiserverProcess
    client: Client


@pytest.fixture
def controller_options() -> dict:
    """More keyword arguments for run_controllers; a test module overrides it (a clock)."""
    return {}


@pytest.fixture
def env(tmp_path, controller_options):
    server = start_apiserver(tmp_path, ["--no-controllers"])
    controllers = None
    client = None
    try:
        client = Client.from_kubeconfig(server.kubeconfig)
        controllers = ControllersThread(server.kubeconfig, node_grace_period=NODE_GRACE, node_monitor_period=0.2,
                                        **controller_options)
        yield Env(server, client)
        assert controllers.error is None, f"controllers crashed: {controllers.error!r}"
    finally:
        if controllers is not None:
            controllers.stop()
        if client is not None:
            client.close()
        server.stop()


@pytest.fixture
def kubelet_options() -> dict:
    """Keyword arguments for the `kubelet` fixture's FakeKubelet; a test module overrides it."""
    return {}


@pytest.fixture
def kubelet(env, kubelet_options):
    """A FakeKubelet running the pods of `env`'s apiserver."""
    k = FakeKubelet(env.server.kubeconfig, **kubelet_options)
    try:
        yield k
    finally:
        k.stop()


# -- object helpers ------------------------------------------------------------------------

def make_service(client: Client, name: str, ns: str = "default", *, selector=None, ports=None,
                 publish=False, labels=None) -> dict:
    spec = {"selector": selector if selector is not None else {"app": name},
            "ports": ports or [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    if publish:
        spec["publishNotReadyAddresses"] = True
    if selector == {}:
        del spec["selector"]
    return client.create(SERVICES, {"metadata": {"name": name, "namespace": ns, "labels": labels or {}}, "spec": spec})


def make_pod(client: Client, name: str, ip: str | None, *, ns: str = "default", labels=None, ready=True,
             node: str | None = "node1", container_ports=None, grace: int | None = None) -> dict:
    """Creates a pod, then sets its status (IP, Running, Ready) through /status as a kubelet."""
    spec = {"containers": [{"name": "app", "image": "echo", "ports": container_ports or []}]}
    if node:
        spec["nodeName"] = node
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    pod = client.create(PODS, {"metadata": {"name": name, "namespace": ns, "labels": labels or {}}, "spec": spec})
    return set_pod_status(client, pod, ip, ready)


def set_pod_status(client: Client, pod: dict, ip: str | None, ready: bool) -> dict:
    status = {"phase": "Running",
              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status.update(podIP=ip, podIPs=[{"ip": ip}])
    return client.update_status(PODS, {**pod, "status": status})


def make_node(client: Client, name: str, *, zone: str | None = None, heartbeat: str = "2026-01-01T00:00:00Z") -> dict:
    labels = {"topology.kubernetes.io/zone": zone} if zone else {}
    node = client.create(NODES, {"metadata": {"name": name, "labels": labels}})
    node["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                      "lastHeartbeatTime": heartbeat}]}
    return client.update_status(NODES, node)


def wait_status(client: Client, resource, name: str, want: dict, *, ns: str = "default", timeout: float = 30) -> dict:
    """Waits until the object's status has every field of `want` with that value; returns it."""
    def check(c):
        status = c.get(resource, name, ns).get("status") or {}
        return status if all(status.get(k) == v for k, v in want.items()) else None
    return client.wait_for(check, timeout=timeout)
