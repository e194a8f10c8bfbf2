"""The address helpers every backend shares."""
from __future__ import annotations

from kproxy.agent.addresses import ipv4, local_pod_cidr, nodeport_ips
from kproxy.agent.state import ProxyState


def test_ipv4_keeps_order_and_drops_ipv6_and_empty():
    assert ipv4(["10.0.0.2", "fd00::1", "", "10.0.0.1"]) == ["10.0.0.2", "10.0.0.1"]


def test_local_pod_cidr_first_ipv4_of_a_list():
    assert local_pod_cidr("fd00::/48, 10.244.0.0/16,10.1.0.0/16") == "10.244.0.0/16"
    assert local_pod_cidr("10.244.1.7/16") == "10.244.0.0/16"
    assert local_pod_cidr(None) is None and local_pod_cidr("junk, fd00::/48") is None


def test_nodeport_ips():
    state = ProxyState("n", node_ips=("10.200.0.11", "192.0.2.5", "fd00::5"))
    assert nodeport_ips(state) is None  # every local address
    sel = ProxyState("n", node_ips=state.node_ips, node_port_addresses=("10.200.0.0/24", "127.0.0.0/8"))
    assert nodeport_ips(sel) == ["10.200.0.11"]
    assert nodeport_ips(sel, include_loopback=True) == ["10.200.0.11", "127.0.0.1"]
    primary = ProxyState("n", node_ips=state.node_ips, node_port_addresses=("primary",))
    assert nodeport_ips(primary) == ["10.200.0.11", "192.0.2.5"]
