"""NodePorts on the node's interface addresses (not the Node object's), with real packets, in
every host mode, through the agent's Proxier (fake apiserver client, real backend and kernel).

The node namespace holds 10.200.0.11 (the Node's status address) and 192.168.1.5 (on eth0,
not in the Node object). With nodePortAddresses [192.168.0.0/24, 192.168.1.0/24] the NodePort
must answer on 192.168.1.5, and on 192.168.1.6 once that address is added while the agent runs;
it must not answer on 10.200.0.11 (outside the listed CIDRs). ipvs: tests/vm/guest.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

import pytest

from kproxy.agent.config import AgentConfig
from kproxy.agent.proxier import Proxier
from tests import nsutil
from tests.kernel.backends import config_for, open_backend
from tests.kernel.topology import CLUSTER_CIDR, NODE_IP, POD_PORT, single_node
from tests.unit.test_agent_proxier import FakeClient, wait_for

pytestmark = pytest.mark.kernel

NODE = "n1"
EXTRA_IP, LATER_IP = "192.168.1.5", "192.168.1.6"
NODE_PORT = 30080
NODE_PORT_CIDRS = ("192.168.0.0/24", "192.168.1.0/24")
SYNC_WAIT = 300.0  # generous: the first ipvs sync under the VM's software emulation is slow
MODES = ("iptables-nft", "iptables-legacy", "nftables", "userspace")  # ids: tests/kernel/backends.py
FAST = {"min_sync_period": 0.0, "sync_period": 1000.0}


@contextlib.contextmanager
def nodeport_topology(tag: str):
    """single_node with pods a and b; the client routes 192.168.1.0/24 via the node."""
    with single_node(["a", "b"], tag=tag) as topology:
        nsutil.run(["ip", "-n", topology.client, "route", "add", "192.168.1.0/24", "via", NODE_IP])
        yield topology


@pytest.fixture(scope="module")
def topo():
    with nodeport_topology("npa") as topology:
        yield topology


def objects(topo, with_node: bool = True) -> dict:
    svc = {"metadata": {"name": "np", "namespace": "default", "resourceVersion": "1"},
           "spec": {"type": "NodePort", "clusterIP": "10.96.0.30",
                    "ports": [{"name": "p", "port": 80, "targetPort": POD_PORT, "nodePort": NODE_PORT}]}}
    eps = {"metadata": {"name": "np-1", "namespace": "default", "resourceVersion": "1",
                        "labels": {"kubernetes.io/service-name": "np"}},
           "addressType": "IPv4", "ports": [{"name": "p", "port": POD_PORT}],
           "endpoints": [{"addresses": [p.ip], "nodeName": NODE, "conditions": {"ready": True}}
                         for p in topo.pods.values()]}
    node = {"metadata": {"name": NODE, "resourceVersion": "1"},
            "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]}}
    return {"services": [svc], "endpointslices": [eps], "nodes": [node] if with_node else []}


def answer(topo, ip: str) -> str | None:
    """The pod that answered a NodePort connection to `ip`, None when refused or unanswered."""
    try:
        return topo.tcp(topo.client, ip, NODE_PORT, timeout=2.0)[0]
    except OSError:
        return None


def agent_config(mode_id: str, node_port_addresses=NODE_PORT_CIDRS) -> AgentConfig:
    return config_for(mode_id, cluster_cidr=CLUSTER_CIDR, hostname_override=NODE,
                      node_port_addresses=node_port_addresses, iptables={**FAST, "localhost_nodeports": False},
                      nftables=FAST, ipvs=FAST)


@contextlib.asynccontextmanager
async def running_agent(topo, config: AgentConfig, objects: dict) -> AsyncIterator[Proxier]:
    """A Proxier with config's real backend in the node namespace, after its first sync; on
    exit it stops and the backend's rules are removed."""
    with open_backend(topo.node, config) as backend:
        proxier = Proxier(config, NODE, FakeClient(objects), backend, backend.netns)
        task = asyncio.create_task(proxier.run())
        try:
            await wait_for(lambda: proxier.sync_count >= 1, timeout=SYNC_WAIT)
            yield proxier
        finally:
            proxier.stop()
            await asyncio.wait_for(task, SYNC_WAIT)


async def serve_nodeports(topo, config: AgentConfig) -> None:
    """The scenario of the module doc, for `config`'s mode."""
    try:
        async with running_agent(topo, config, objects(topo)) as proxier:
            assert await asyncio.to_thread(answer, topo, EXTRA_IP) in {"a", "b"}
            assert await asyncio.to_thread(answer, topo, NODE_IP) is None  # outside nodePortAddresses
            synced = proxier.sync_count
            await asyncio.to_thread(nsutil.run, ["ip", "-n", topo.node, "addr", "add", f"{LATER_IP}/24", "dev", "eth0"])
            await wait_for(lambda: proxier.sync_count > synced, timeout=SYNC_WAIT)
            assert LATER_IP in (proxier.builder.state.local_ips or ())
            assert await asyncio.to_thread(answer, topo, LATER_IP) in {"a", "b"}
    finally:
        nsutil.run(["ip", "-n", topo.node, "addr", "del", f"{LATER_IP}/24", "dev", "eth0"], check=False)


@pytest.mark.parametrize("mode_id", MODES)
def test_nodeport_served_on_interface_addresses_in_the_listed_cidrs(topo, mode_id):
    nsutil.run(["ip", "-n", topo.node, "addr", "replace", f"{EXTRA_IP}/24", "dev", "eth0"])
    asyncio.run(serve_nodeports(topo, agent_config(mode_id)))
