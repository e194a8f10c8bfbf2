"""detectLocalMode InterfaceNamePrefix with real packets: the pods' host-side veths are named
vp0, vp1, ... (tests/kernel/topology.py), so prefix "vp" marks pod traffic. No cluster CIDR is
configured, so only the interface can tell: a pod reaching a ClusterIP keeps its own address,
the client (in on eth0) is masqueraded to the node's. ipvs: tests/vm/guest."""
from __future__ import annotations

import pytest

from tests.kernel.topology import NODE_IP, ep, service, single_node, state

pytestmark = pytest.mark.kernel

PREFIX = dict(detect_local_mode="InterfaceNamePrefix", detect_local_interface="vp", cluster_cidr=None)


@pytest.fixture(scope="module")
def topo():
    with single_node(["a", "b", "c"], tag="dlk") as topology:
        yield topology


@pytest.fixture(params=["nft", "legacy", "nftables"])
def mode(request):
    return request.param  # the backend fixture: tests/kernel/conftest.py


def check_pod_traffic_told_by_interface(topo, apply) -> None:
    """`apply(state)` programs a ClusterIP over every pod but the last; then the ClusterIP
    answers the last pod with its own address and the client with the node's."""
    *servers, last = topo.pods
    apply(state(service("web", "10.96.0.10", [ep(topo, p) for p in servers]), **PREFIX))
    client_pod = topo.pods[last]
    for _ in range(6):
        assert topo.tcp(client_pod.netns, "10.96.0.10", 80)[1] == client_pod.ip  # in on a vp veth: pod traffic
        assert topo.tcp(topo.client, "10.96.0.10", 80)[1] == NODE_IP  # in on eth0: masqueraded


def test_interface_name_prefix_tells_pod_traffic(topo, backend):
    check_pod_traffic_told_by_interface(topo, lambda st: backend.apply(backend.render(st), None))
