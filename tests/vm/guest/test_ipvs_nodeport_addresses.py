"""ipvs mode inside the test VM, with real IPVS: NodePort virtual servers on the node's interface
addresses through the Proxier (scenario: tests/kernel/test_nodeport_addresses_kernel.py), and
detectLocalMode InterfaceNamePrefix (tests/kernel/test_detect_local_kernel.py)."""
from __future__ import annotations

import asyncio
import subprocess

import pytest

from tests.kernel.backends import config_for, open_backend
from tests.kernel.test_detect_local_kernel import check_pod_traffic_told_by_interface
from tests.kernel.test_nodeport_addresses_kernel import (
    EXTRA_IP, NODE_PORT, agent_config, answer, nodeport_topology, objects, running_agent, serve_nodeports)
from tests.kernel.topology import NODE_IP

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def topo():
    subprocess.run(["modprobe", "ip_vs"], check=True)
    with nodeport_topology("ipnp") as topology:
        yield topology


def test_nodeport_served_on_interface_addresses_in_the_listed_cidrs(topo):
    subprocess.run(["ip", "-n", topo.node, "addr", "replace", f"{EXTRA_IP}/24", "dev", "eth0"], check=True)
    asyncio.run(serve_nodeports(topo, agent_config("ipvs")))


async def _without_node_object(topo) -> None:
    async with running_agent(topo, agent_config("ipvs", node_port_addresses=()), objects(topo, with_node=False)):
        servers = subprocess.run(["ip", "netns", "exec", topo.node, "ipvsadm", "-Ln"], capture_output=True,
                                 text=True, check=True).stdout
        assert f"{NODE_IP}:{NODE_PORT}" in servers and f"{EXTRA_IP}:{NODE_PORT}" in servers
        assert await asyncio.to_thread(answer, topo, NODE_IP) in {"a", "b"}
        assert await asyncio.to_thread(answer, topo, EXTRA_IP) in {"a", "b"}


def test_nodeport_exists_without_a_node_object(topo):
    subprocess.run(["ip", "-n", topo.node, "addr", "replace", f"{EXTRA_IP}/24", "dev", "eth0"], check=True)
    asyncio.run(_without_node_object(topo))


def test_interface_name_prefix_tells_pod_traffic(topo):
    """detectLocalMode InterfaceNamePrefix in ipvs mode (scenario: tests/kernel/test_detect_local_kernel.py)."""
    with open_backend(topo.node, config_for("ipvs-auto")) as backend:
        check_pod_traffic_told_by_interface(topo, lambda st: backend.apply(backend.render(st), None))
