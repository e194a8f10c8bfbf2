"""One poisoned object never stops the node's other Services, in every host mode (iptables nft
and legacy, nftables, userspace): the real proxier (in-process informers over a fake API
client) programs a real backend in a node namespace, and real packets reach the other Services.

The poisons: a Service whose name the kernel refuses (the apiserver would reject it, no Python
check does): 300 characters, longer than an nf_tables chain name may be (256: the kernel
answers ERANGE), with a double quote, which ends iptables-restore's quoted comment early ("Bad
argument"; iptables truncates long comments instead); a ClusterIP that does not parse (translate
leaves the Service out); and the padded source range of issue 14 item 2 on a LoadBalancer
Service that must still work."""
from __future__ import annotations

import asyncio

import pytest

from kproxy.agent.config import AgentConfig
from kproxy.agent.proxier import Proxier
from tests.kernel.backends import config_for, open_backend
from tests.kernel.topology import POD_PORT, single_node
from tests.unit.test_agent_proxier import FakeClient, gauge, wait_for

pytestmark = pytest.mark.kernel

LONG_NAME = 'poison"' + "x" * 293
FAST = {"min_sync_period": 0.0, "sync_period": 1000.0}
MODES = ("iptables-nft", "iptables-legacy", "nftables", "userspace")  # ids: tests/kernel/backends.py


@pytest.fixture(scope="module")
def topo():
    with single_node(["a", "b"], tag="poi") as topology:
        yield topology


def service(name: str, cluster_ip: str, **spec) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": "1"},
            "spec": {"clusterIP": cluster_ip, "ports": [{"name": "p", "port": 80, "protocol": "TCP"}], **spec}}


def endpoint_slice(service_name: str, topo, pods: list[str]) -> dict:
    return {"metadata": {"name": f"{service_name[:40]}-1", "namespace": "default", "resourceVersion": "1",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": [{"name": "p", "port": POD_PORT, "protocol": "TCP"}],
            "endpoints": [{"addresses": [topo.pods[p].ip], "nodeName": "n1"} for p in pods]}


def objects(topo) -> dict:
    lb = service("lb", "10.96.0.11", type="LoadBalancer", loadBalancerSourceRanges=[" 10.200.0.0/24"])
    lb["spec"]["ports"][0]["nodePort"] = 30080
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
    return {
        "services": [service("web", "10.96.0.10"), lb, service(LONG_NAME, "10.96.0.12"),
                     service("badip", "10.96.0.999")],
        "endpointslices": [endpoint_slice("web", topo, ["a", "b"]), endpoint_slice("lb", topo, ["a"]),
                           endpoint_slice(LONG_NAME, topo, ["b"]), endpoint_slice("badip", topo, ["a"])],
    }


def run_poisoned(topo, config: AgentConfig, first_sync_timeout: float = 60.0) -> None:
    """Runs the proxier over objects(topo) with `config`'s backend and checks the outcome."""
    with open_backend(topo.node, config) as backend:
        asyncio.run(_check_poisoned(topo, config, backend, first_sync_timeout))


async def _check_poisoned(topo, config: AgentConfig, backend, first_sync_timeout: float) -> None:
    proxier = Proxier(config, "n1", FakeClient(objects(topo)), backend, backend.netns)
    task = asyncio.create_task(proxier.run())
    try:
        await wait_for(lambda: proxier.sync_count >= 1, timeout=first_sync_timeout)
        assert set(proxier.quarantine.skipped) == {f"default/{LONG_NAME}:p"}
        assert proxier.quarantine.skipped[f"default/{LONG_NAME}:p"].stage == "kernel"
        assert gauge(proxier, "kubeproxy_sync_proxy_rules_skipped_service_ports", stage="kernel") == 1
        loop = asyncio.get_running_loop()
        web = {(await loop.run_in_executor(None, topo.tcp, topo.client, "10.96.0.10", 80))[0] for _ in range(12)}
        assert web <= {"a", "b"} and web
        pod, _ = await loop.run_in_executor(None, topo.tcp, topo.client, "192.0.2.10", 80)
        assert pod == "a"  # the LoadBalancer IP, allowed by the (trimmed) source range of the client
    finally:
        proxier.stop()
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_poisoned_object_does_not_stop_the_others(topo, mode):
    run_poisoned(topo, config_for(mode, iptables=FAST, nftables=FAST))
