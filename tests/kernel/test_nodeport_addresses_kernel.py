"""NodePorts on the node's interface addresses (not the Node object's), with real packets, in
every host mode, through the agent's Proxier (fake apiserver client, real backend and kernel).

The node namespace holds 10.200.0.11 (the Node's status address) and 192.168.1.5 (on eth0,
not in the Node object). With nodePortAddresses [192.168.0.0/24, 192.168.1.0/24] the NodePort
must answer on 192.168.1.5, and on 192.168.1.6 once that address is added while the agent runs;
it must not answer on 10.200.0.11 (outside the listed CIDRs). ipvs: tests/vm/guest.
"""
from __future__ import annotations

import asyncio

import pytest

from kproxy.agent import backend as backends
from kproxy.agent.config import AgentConfig, IptablesConfig, NftablesConfig
from kproxy.agent.proxier import Proxier
from kproxy.netns import NetNS
from tests import nsutil
from tests.kernel.topology import CLUSTER_CIDR, NODE_IP, POD_PORT, single_node
from tests.unit.test_agent_proxier import FakeClient, wait_for

pytestmark = pytest.mark.kernel

NODE = "n1"
EXTRA_IP, LATER_IP = "192.168.1.5", "192.168.1.6"
NODE_PORT = 30080
MODES = {  # test id -> (mode, iptables variant)
    "iptables-nft": ("iptables", "nft"),
    "iptables-legacy": ("iptables", "legacy"),
    "nftables": ("nftables", "nft"),
    "userspace": ("userspace", "nft"),
}


@pytest.fixture(scope="module")
def topo():
    with single_node(["a", "b"], tag="npa") as topology:
        nsutil.run(["ip", "-n", topology.client, "route", "add", "192.168.1.0/24", "via", NODE_IP])
        yield topology


def objects(topo) -> dict:
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
    return {"services": [svc], "endpointslices": [eps], "nodes": [node]}


def answer(topo, ip: str) -> str | None:
    """The pod that answered a NodePort connection to `ip`, None when refused or unanswered."""
    try:
        return topo.tcp(topo.client, ip, NODE_PORT, timeout=2.0)[0]
    except OSError:
        return None


async def _serve_nodeports(topo, mode: str, variant: str) -> None:
    config = AgentConfig(mode=mode, cluster_cidr=CLUSTER_CIDR, hostname_override=NODE,
                         node_port_addresses=("192.168.0.0/24", "192.168.1.0/24"),
                         iptables=IptablesConfig(min_sync_period=0.0, sync_period=1000.0, backend=variant,
                                                 localhost_nodeports=False),
                         nftables=NftablesConfig(min_sync_period=0.0, sync_period=1000.0))
    netns = NetNS(topo.node)
    backend = backends.get(mode)(netns, config)
    proxier = Proxier(config, NODE, FakeClient(objects(topo)), backend, netns)
    task = asyncio.create_task(proxier.run())
    try:
        await wait_for(lambda: proxier.sync_count >= 1, timeout=30)
        assert await asyncio.to_thread(answer, topo, EXTRA_IP) in {"a", "b"}
        assert await asyncio.to_thread(answer, topo, NODE_IP) is None  # outside nodePortAddresses
        synced = proxier.sync_count
        await asyncio.to_thread(nsutil.run, ["ip", "-n", topo.node, "addr", "add", f"{LATER_IP}/24", "dev", "eth0"])
        await wait_for(lambda: proxier.sync_count > synced, timeout=30)
        assert proxier.builder.state.local_ips is not None and LATER_IP in proxier.builder.state.local_ips
        assert await asyncio.to_thread(answer, topo, LATER_IP) in {"a", "b"}
    finally:
        proxier.stop()
        await asyncio.wait_for(task, 30)
        try:
            await asyncio.to_thread(netns.run, backend.cleanup)
        finally:
            backend.close()
            netns.close()
            nsutil.run(["ip", "-n", topo.node, "addr", "del", f"{LATER_IP}/24", "dev", "eth0"], check=False)


@pytest.mark.parametrize("mode_id", list(MODES))
def test_nodeport_served_on_interface_addresses_in_the_listed_cidrs(topo, mode_id):
    nsutil.run(["ip", "-n", topo.node, "addr", "replace", f"{EXTRA_IP}/24", "dev", "eth0"])
    asyncio.run(_serve_nodeports(topo, *MODES[mode_id]))
