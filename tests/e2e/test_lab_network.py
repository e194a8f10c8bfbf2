"""The lab network alone (no apiserver, no agent), with real packets: pods on two nodes reach
each other and the client reaches them through the node routes; teardown leaves nothing."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kproxy.kubelet import podnet
from kproxy.lab import netsetup, topology, traffic
from kproxy.lab.lab import wait_until
from tests import nsutil

pytestmark = pytest.mark.kernel


def _pod(plan: topology.LabPlan, name: str, node: str, slot: int) -> podnet.PodPlan:
    """A pod of `node` as its kubelet lays it out (the kubelet's pod network on the lab's nodes)."""
    n = plan.node(node)
    return podnet.pod_plan(f"{n.netns}-pod-", n.pod_cidr, "default", name, node, slot)


@pytest.fixture
def network():
    plan = topology.plan_lab(nsutil.unique_name("net"), 2)
    procs: list[subprocess.Popen] = []
    pods = [_pod(plan, "a", "node1", 2), _pod(plan, "b", "node2", 3)]
    try:
        netsetup.create_lab_network(plan)
        for pod in pods:
            podnet.attach_pod_network(pod, plan.node(pod.node).netns)
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", pod.netns, sys.executable, "-m", "kproxy.lab.echo",
                 "--name", pod.name, "--port", "8080"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for pod in pods:
            wait_until(lambda: traffic.tcp_request(pod.netns, "127.0.0.1", 8080, 1.0), 20, f"echo in {pod.name}")
        yield plan, pods
    finally:
        for p in procs:
            p.kill()
            p.wait()
        netsetup.teardown(plan)


def test_client_reaches_pods_on_both_nodes_over_tcp_and_udp(network):
    plan, pods = network
    for pod in pods:
        for request in (traffic.tcp_request, traffic.udp_request):
            reply = traffic.Reply.parse(request(plan.client.netns, pod.ip, 8080))
            assert reply.pod == pod.name
            assert reply.client_ip == plan.client.ip  # routed, no NAT in the lab itself


def test_pod_to_pod_across_nodes_keeps_source_ip(network):
    plan, (a, b) = network
    reply = traffic.Reply.parse(traffic.tcp_request(a.netns, b.ip, 8080))
    assert (reply.pod, reply.client_ip) == ("b", a.ip)


def test_node_reaches_its_pod_and_the_other_node(network):
    plan, (a, b) = network
    node1 = plan.node("node1")
    assert traffic.Reply.parse(traffic.tcp_request(node1.netns, a.ip, 8080)).pod == "a"
    assert traffic.Reply.parse(traffic.tcp_request(node1.netns, b.ip, 8080)).pod == "b"


def test_closed_port_in_a_pod_is_refused(network):
    plan, (a, _) = network
    with pytest.raises(traffic.Refused):
        traffic.tcp_request(plan.client.netns, a.ip, 9, timeout=2)


def test_teardown_is_complete_and_idempotent():
    plan = topology.plan_lab(nsutil.unique_name("td"), 2)
    try:
        netsetup.create_lab_network(plan)
        pod = _pod(plan, "x", "node2", 2)
        podnet.attach_pod_network(pod, plan.node("node2").netns)
        present = set(netsetup.list_namespaces())
        assert set(plan.namespaces) | {pod.netns} <= present
    finally:
        deleted = netsetup.teardown(plan)
    assert pod.netns in deleted and set(plan.namespaces) <= set(deleted)
    assert not os.path.exists(podnet.uts_path(pod.netns))  # the pod's hostname namespace too
    assert not netsetup.lab_namespaces(plan, netsetup.list_namespaces())
    assert netsetup.teardown(plan) == []


def test_lab_namespaces_matches_only_this_lab():
    plan = topology.plan_lab("lab", 1)
    names = ["lab-net", "lab-node1", "lab-node7", "lab-client", "lab-pod-default-x", "lab-node2-pod-default-y",
             "lab2-node1", "lab-2-node1", "other", "lab-nodex", "lab2-node1-pod-default-z", "lab-nodex-pod-a"]
    found = netsetup.lab_namespaces(plan, names)
    assert sorted(found) == sorted(
        ["lab-net", "lab-node1", "lab-node7", "lab-client", "lab-pod-default-x", "lab-node2-pod-default-y"])
    assert set(found[:2]) == {"lab-pod-default-x", "lab-node2-pod-default-y"}  # pods go first


def _icmp_counter(netns: str, name: str) -> int:
    out = subprocess.run(["ip", "netns", "exec", netns, "nstat", "-asz", name],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith(name):
            return int(line.split()[1])
    raise AssertionError(f"no {name} in nstat output: {out!r}")


def test_client_is_not_redirected_away_from_node1(network):
    """A ClusterIP that is not programmed yet goes node1 -> gateway; node1 must not send the
    client an ICMP redirect, which would make the client bypass node1 once the rules exist."""
    plan, _ = network
    for _ in range(2):
        with pytest.raises(traffic.TrafficError):
            traffic.tcp_request(plan.client.netns, "10.96.0.77", 80, timeout=1.5)
    assert _icmp_counter(plan.node("node1").netns, "IpForwDatagrams") >= 2  # it did forward them
    assert _icmp_counter(plan.node("node1").netns, "IcmpOutRedirects") == 0
    assert _icmp_counter(plan.client.netns, "IcmpInRedirects") == 0


def test_a_pod_slot_is_reusable_at_once(network):
    """Deleting a pod and creating another in the same address slot right away works every
    time (the old veth is gone before the new one is made), and the new pod is reachable."""
    plan, _ = network
    node = plan.node("node1")
    for i in range(5):
        pod = _pod(plan, f"r{i}", "node1", 9)
        podnet.attach_pod_network(pod, node.netns)
        try:
            out = subprocess.run(["ip", "-n", node.netns, "route", "get", pod.ip],
                                 capture_output=True, text=True, check=True).stdout
            assert f"dev {pod.host_veth}" in out, out
        finally:
            podnet.detach_pod_network(pod, node.netns)
        assert not netsetup.namespace_exists(pod.netns)
