"""The conntrack executor against real entries: a UDP exchange through a DNAT rule in a test
namespace creates a ClusterIP-style entry; flush() deletes exactly the planned entries."""
from __future__ import annotations

import socket

import pytest

from kproxy.agent import conntrack
from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from kproxy.netns import NetNS
from tests import nsutil

pytestmark = pytest.mark.kernel

CLUSTER_IP, PORT = "10.96.0.10", 53
POD_IP, POD_PORT = "10.244.1.2", 5353
OTHER_PORT = 5354


@pytest.fixture
def ns():
    with nsutil.netns("ct") as name:
        for argv in (["ip", "-n", name, "addr", "add", f"{CLUSTER_IP}/32", "dev", "lo"],
                     ["ip", "-n", name, "addr", "add", f"{POD_IP}/32", "dev", "lo"],
                     ["ip", "netns", "exec", name, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", CLUSTER_IP,
                      "-p", "udp", "--dport", str(PORT), "-j", "DNAT", "--to-destination", f"{POD_IP}:{POD_PORT}"]):
            nsutil.run(argv)
        handle = NetNS(name)
        try:
            yield handle
        finally:
            handle.close()


def udp_exchange(ns: NetNS, dst: tuple[str, int], server_port: int) -> None:
    """One real request/response from a client socket to a server socket, both in `ns`."""
    def make() -> tuple[socket.socket, socket.socket]:
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind((POD_IP, server_port))
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind((POD_IP, 0))
        return server, client
    server, client = ns.run(make)
    try:
        server.settimeout(5)
        client.settimeout(5)
        client.sendto(b"ping", dst)
        data, peer = server.recvfrom(100)
        server.sendto(b"pong " + data, peer)
        assert client.recvfrom(100)[0] == b"pong ping"
    finally:
        server.close()
        client.close()


def entries(ns: NetNS) -> str:
    return ns.command(["conntrack", "-L", "-p", "udp"], check=False).stdout


def test_flush_deletes_only_the_planned_entries(ns):
    udp_exchange(ns, (CLUSTER_IP, PORT), POD_PORT)  # DNATed like a ClusterIP
    udp_exchange(ns, (POD_IP, OTHER_PORT), OTHER_PORT)  # unrelated flow
    before = entries(ns)
    assert f"dst={CLUSTER_IP}" in before and f"sport={POD_PORT}" in before
    assert f"dport={OTHER_PORT}" in before

    endpoint = Endpoint(POD_IP, POD_PORT)
    svc = ServicePort("default", "dns", "p", "UDP", PORT, cluster_ips=(CLUSTER_IP,), endpoints=(endpoint,))
    old = ProxyState(node_name="n", services={svc.key: svc}, revision=1)
    new = ProxyState(node_name="n", services={}, revision=2)
    filters = conntrack.plan_flush(old, new)
    assert filters == (conntrack.ConntrackFilter("udp", CLUSTER_IP, PORT, POD_IP, POD_PORT),)
    assert conntrack.flush(ns, filters) == 1

    after = entries(ns)
    assert f"dst={CLUSTER_IP}" not in after
    assert f"dport={OTHER_PORT}" in after  # never flushes what it was not asked to


def test_flush_without_matches_is_not_an_error(ns):
    assert conntrack.flush(ns, [conntrack.ConntrackFilter("udp", CLUSTER_IP, PORT)]) == 1
