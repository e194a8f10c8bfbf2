"""The lab address plan: names, addresses and routes follow the team's plan, interface names
fit the kernel's limit, and bad input is refused with PlanError."""
from __future__ import annotations


import pytest

from kproxy.lab import topology
from kproxy.lab.topology import PlanError, plan_lab


def test_namespaces_and_node_addresses():
    plan = plan_lab("kproxy-lab", 3)
    assert plan.net_netns == "kproxy-lab-net"
    assert plan.client.netns == "kproxy-lab-client"
    assert [n.netns for n in plan.nodes] == ["kproxy-lab-node1", "kproxy-lab-node2", "kproxy-lab-node3"]
    assert [n.name for n in plan.nodes] == ["node1", "node2", "node3"]
    assert [n.ip for n in plan.nodes] == ["10.200.0.11", "10.200.0.12", "10.200.0.13"]
    assert [n.pod_cidr for n in plan.nodes] == ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]
    assert plan.client.ip == "10.200.0.2"
    assert plan.namespaces == ("kproxy-lab-net", "kproxy-lab-node1", "kproxy-lab-node2",
                               "kproxy-lab-node3", "kproxy-lab-client")


def test_node_routes_reach_every_other_node_pod_cidr():
    plan = plan_lab("lab", 3)
    node2 = plan.node("node2")
    assert {(r.dest, r.via) for r in node2.routes} == {
        ("10.244.1.0/24", "10.200.0.11"), ("10.244.3.0/24", "10.200.0.13"), ("default", "10.200.0.1")}
    assert plan.gateway_ip == "10.200.0.1"


def test_client_routes_services_via_node1():
    plan = plan_lab("lab", 2)
    routes = {r.dest: r.via for r in plan.client.routes}
    assert routes[topology.SERVICE_CIDR] == "10.200.0.11"


@pytest.mark.parametrize("nodes", [1, 2, topology.MAX_NODES])
def test_interface_names_fit_the_kernel_limit(nodes):
    plan = plan_lab("a" * 40, nodes)
    names = [plan.bridge, plan.client.bridge_port, plan.client.interface]
    for n in plan.nodes:
        names += [n.bridge_port, n.interface]
    assert all(1 <= len(name) <= 15 for name in names), names
    bridge_ports = [n.bridge_port for n in plan.nodes] + [plan.client.bridge_port]
    assert len(set(bridge_ports)) == len(bridge_ports)


def test_plan_is_deterministic():
    assert plan_lab("x", 4) == plan_lab("x", 4)


@pytest.mark.parametrize("name", ["", "Has-Upper", "x" * 41, "-lead", "a/b", "sp ace"])
def test_bad_lab_names_are_refused(name):
    with pytest.raises(PlanError, match="invalid lab name"):
        plan_lab(name, 1)


@pytest.mark.parametrize("nodes", [0, -1, topology.MAX_NODES + 1])
def test_bad_node_counts_are_refused(nodes):
    with pytest.raises(PlanError, match="--nodes"):
        plan_lab("lab", nodes)


def test_check_ifname():
    assert topology.check_ifname("vp254") == "vp254"
    with pytest.raises(PlanError):
        topology.check_ifname("x" * 16)
    with pytest.raises(PlanError):
        topology.check_ifname("a/b")
