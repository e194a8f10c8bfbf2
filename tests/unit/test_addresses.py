"""The address helpers every backend shares."""
from __future__ import annotations

from kproxy.agent.addresses import ipv4, local_pod_cidr, nodeport_ips, nodeport_listen_ips
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


LOCAL = ("10.200.0.11", "127.0.0.1", "192.168.1.5", "10.244.1.1")


def test_nodeport_cidrs_select_the_interfaces_addresses_not_the_node_objects():
    # 192.168.1.5 is on an interface but not in the Node's status.addresses: still selected
    state = ProxyState("n", node_ips=("10.200.0.11",), local_ips=LOCAL,
                       node_port_addresses=("192.168.0.0/24", "192.168.1.0/24"))
    assert nodeport_ips(state) == ["192.168.1.5"]
    # a Node address that is on no interface is not a NodePort address
    gone = ProxyState("n", node_ips=("192.168.0.9",), local_ips=LOCAL, node_port_addresses=("192.168.0.0/24",))
    assert nodeport_ips(gone) == []


def test_nodeport_primary_means_the_node_objects_addresses_on_this_node():
    state = ProxyState("n", node_ips=("10.200.0.11", "203.0.113.9"), local_ips=LOCAL,
                       node_port_addresses=("primary", "192.168.1.0/24"))
    assert nodeport_ips(state) == ["10.200.0.11", "192.168.1.5"]


def test_nodeport_loopback_only_when_the_mode_serves_it():
    state = ProxyState("n", local_ips=LOCAL, node_port_addresses=("127.0.0.0/8", "10.0.0.0/8"))
    assert nodeport_ips(state) == ["10.200.0.11", "10.244.1.1"]
    assert nodeport_ips(state, include_loopback=True) == ["10.200.0.11", "127.0.0.1", "10.244.1.1"]


def test_nodeport_listen_ips_spells_out_every_local_address():
    # ipvs: with no Node object (node_ips empty) NodePorts still listen on the interfaces' addresses
    state = ProxyState("n", local_ips=LOCAL + ("fd00::1",))
    assert nodeport_listen_ips(state) == ["10.200.0.11", "192.168.1.5", "10.244.1.1"]
    narrowed = ProxyState("n", local_ips=LOCAL, node_port_addresses=("192.168.1.0/24",))
    assert nodeport_listen_ips(narrowed) == ["192.168.1.5"]
    # not read (offline rendering): the Node object's addresses stand in
    assert nodeport_listen_ips(ProxyState("n", node_ips=("10.200.0.11",))) == ["10.200.0.11"]
