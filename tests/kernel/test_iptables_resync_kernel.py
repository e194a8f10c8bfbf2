"""The real proxier in iptables mode with a short sync period: between full syncs the periodic
sync only checks the canary chain, and a table flushed by someone else (`iptables -t nat -F` in
the node namespace) is rewritten in full by the next periodic sync. Each variant, real packets."""
from __future__ import annotations

import asyncio

import pytest

from kproxy.agent.proxier import Proxier
from kproxy.iptables.backend import IptablesBackend
from tests.kernel.backends import config_for, open_backend
from tests.kernel.topology import CLUSTER_CIDR, POD_PORT, single_node
from tests.unit.test_agent_proxier import FakeClient

pytestmark = pytest.mark.kernel

SYNC_PERIOD = 0.5
GENEROUS = 60.0  # a bound for a poll, never a measured speed
CLUSTER_IP = "10.96.0.10"


@pytest.fixture(scope="module")
def topo():
    with single_node(["a"], tag="iptrs") as topology:
        yield topology


class CountingBackend(IptablesBackend):
    """IptablesBackend recording whether each apply was full and what each drift check said."""

    def __init__(self, netns, config) -> None:
        super().__init__(netns, config)
        self.applies: list[bool] = []
        self.checks: list[bool] = []

    def apply(self, ruleset, previous):
        result = super().apply(ruleset, previous)
        self.applies.append(previous is None)
        return result

    def drifted(self) -> bool:
        verdict = super().drifted()
        self.checks.append(verdict)
        return verdict


def objects(pod_ip: str) -> dict:
    svc = {"metadata": {"name": "web", "namespace": "default", "resourceVersion": "1"},
           "spec": {"clusterIP": CLUSTER_IP, "ports": [{"port": 80, "targetPort": POD_PORT}]}}
    eps = {"metadata": {"name": "web-1", "namespace": "default", "resourceVersion": "1",
                        "labels": {"kubernetes.io/service-name": "web"}},
           "addressType": "IPv4", "ports": [{"port": POD_PORT}],
           "endpoints": [{"addresses": [pod_ip], "nodeName": "n1", "conditions": {"ready": True}}]}
    return {"services": [svc], "endpointslices": [eps]}


async def until(predicate, what: str) -> None:
    """Polls `predicate` (a plain or an async function) until true, failing after GENEROUS."""
    deadline = asyncio.get_running_loop().time() + GENEROUS
    while not (await predicate() if asyncio.iscoroutinefunction(predicate) else predicate()):
        assert asyncio.get_running_loop().time() < deadline, f"not reached: {what}"
        await asyncio.sleep(0.05)


async def _flushed_nat_table_is_repaired(topo, config, backend: CountingBackend) -> None:
    proxier = Proxier(config, "n1", FakeClient(objects(topo.pods["a"].ip)), backend, backend.netns)

    async def served() -> bool:
        try:
            reply = await asyncio.to_thread(topo.tcp, topo.client, CLUSTER_IP, 80, timeout=1)
        except (TimeoutError, OSError):
            return False
        return reply[0] == "a"

    task = asyncio.create_task(proxier.run())
    try:
        await until(served, "the Service answers after the first sync")
        # nothing changes: periodic syncs only ask the canary, they rewrite nothing
        await until(lambda: len(backend.checks) >= 3, "three periodic checks")
        assert backend.applies == [True]
        assert backend.checks[:3] == [False, False, False]

        topo.run(topo.node, [backend.variant.iptables, "-w", "5", "-t", "nat", "-F"])
        await until(lambda: True in backend.checks, "a check sees the flush")
        await until(lambda: len(backend.applies) >= 2, "the sync after it")
        assert backend.applies[:2] == [True, True]  # the repair was a full sync
        assert await served()
    finally:
        proxier.stop()
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("variant", ["nft", "legacy"])
def test_a_flushed_nat_table_is_repaired_by_the_next_periodic_sync(topo, variant):
    config = config_for(variant, cluster_cidr=CLUSTER_CIDR,
                        iptables={"min_sync_period": 0.0, "sync_period": SYNC_PERIOD})
    with open_backend(topo.node, config, CountingBackend) as backend:
        asyncio.run(_flushed_nat_table_is_repaired(topo, config, backend))
