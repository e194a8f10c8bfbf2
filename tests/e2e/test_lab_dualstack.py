"""The lab's network in dual-stack and IPv6-only form, with real packets between direct pod
addresses (no Services: the agents' side is tested elsewhere): the client reaches pods on
both nodes over both families, pod-to-pod keeps the IPv6 source, and teardown leaves nothing.
Then `kproxy lab up --ip-family dual` itself: apiserver, kubelets and pods with both addresses."""
from __future__ import annotations

import ipaddress
import subprocess
import sys

import pytest

from kproxy.api.resources import NODES
from kproxy.kubelet import podnet
from kproxy.lab import netsetup, topology, traffic
from kproxy.lab.lab import Lab, wait_until
from tests import nsutil

pytestmark = pytest.mark.kernel


def test_plan_addresses_per_family():
    dual = topology.plan_lab("lab", 3, "dual")
    n2 = dual.node("node2")
    assert n2.pod_cidr == "10.244.2.0/24,fd00:10:244:2::/64" and n2.ip6 == "fd00:10:200::12"
    assert dual.service_cidr == "10.96.0.0/12,fd00:10:96::/112"
    assert dual.cluster_cidr == "10.244.0.0/16,fd00:10:244::/56"
    assert topology.Route("fd00:10:244:3::/64", "fd00:10:200::13") in n2.routes
    assert topology.Route("fd00:10:96::/112", "fd00:10:200::11") in dual.client.routes
    v6 = topology.plan_lab("lab", 2, "ipv6")
    assert v6.node("node1").pod_cidr == "fd00:10:244:1::/64" and v6.service_cidr == "fd00:10:96::/112"
    assert all(":" in r.dest for r in v6.client.routes)
    v4 = topology.plan_lab("lab", 2)
    assert v4 == topology.plan_lab("lab", 2, "ipv4") and not v4.node("node1").ip6 and not v4.client.ip6
    with pytest.raises(topology.PlanError):
        topology.plan_lab("lab", 2, "ipv5")
    # a node's /64s stay inside the cluster's /56 up to the last node
    last = topology.plan_lab("lab", topology.MAX_NODES, "dual").node(f"node{topology.MAX_NODES}")
    assert ipaddress.ip_network(last.pod_cidr.split(",")[1]).subnet_of(ipaddress.ip_network(topology.CLUSTER_CIDR6))


def _pod(plan: topology.LabPlan, name: str, node: str, slot: int) -> podnet.PodPlan:
    n = plan.node(node)
    return podnet.pod_plan(f"{n.netns}-pod-", n.pod_cidr, "default", name, node, slot)


@pytest.fixture(params=["dual", "ipv6"])
def network(request):
    plan = topology.plan_lab(nsutil.unique_name("ds"), 2, request.param)
    procs: list[subprocess.Popen] = []
    pods = [a, b] = [_pod(plan, "a", "node1", 2), _pod(plan, "b", "node2", 3)]
    try:
        netsetup.create_lab_network(plan)
        for pod in pods:
            podnet.attach_pod_network(pod, plan.node(pod.node).netns)
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", pod.netns, sys.executable, "-m", "kproxy.lab.echo",
                 "--name", pod.name, "--port", "8080"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for pod in pods:
            wait_until(lambda: traffic.tcp_request(pod.netns, pod.ips[-1], 8080, timeout=1.0), 60, f"echo in {pod.name}")
        # a fresh lab's links finish IPv6 duplicate address detection within seconds
        for ip in (b.ips[-1], a.ips[-1]):
            wait_until(lambda: traffic.tcp_request(plan.client.netns, ip, 8080, timeout=1.0), 60, f"{ip} from the client")
        yield plan, pods
    finally:
        for p in procs:
            p.kill()
            p.wait()
        netsetup.teardown(plan)


def test_client_reaches_pods_over_every_family(network):
    plan, pods = network
    want = {"dual": 2, "ipv6": 1}[plan.ip_family]
    for pod in pods:
        assert len(pod.ips) == want and ":" in pod.ips[-1]
        for ip in pod.ips:
            source = plan.client.ip6 if ":" in ip else plan.client.ip
            for request in (traffic.tcp_request, traffic.udp_request):
                reply = traffic.Reply.parse(request(plan.client.netns, ip, 8080))
                assert (reply.pod, reply.client_ip) == (pod.name, source)  # routed, no NAT


def test_pod_to_pod_across_nodes_keeps_the_ipv6_source(network):
    _, (a, b) = network
    reply = traffic.Reply.parse(wait_until(lambda: traffic.tcp_request(a.netns, b.ips[-1], 8080), 30, "b from a"))
    assert (reply.pod, reply.client_ip) == ("b", a.ips[-1])


def test_teardown_removes_the_dual_stack_lab():
    plan = topology.plan_lab(nsutil.unique_name("dt"), 1, "dual")
    try:
        netsetup.create_lab_network(plan)
        pod = _pod(plan, "x", "node1", 2)
        podnet.attach_pod_network(pod, plan.node("node1").netns)
    finally:
        deleted = netsetup.teardown(plan)
    assert set(plan.namespaces) | {pod.netns} <= set(deleted)
    assert not netsetup.lab_namespaces(plan, netsetup.list_namespaces())


@pytest.mark.e2e
def test_lab_up_dual_stack_pods_answer_on_both_addresses(tmp_path):
    """The pod sits on node1, the client's gateway: a remote node's pod is not reachable by
    its address from the client once the agents run (the reply skips node1, whose conntrack
    then drops the client's next packet as INVALID), in an IPv4 lab as well."""
    lab = Lab(nsutil.unique_name("lu"), base_dir=str(tmp_path))
    try:
        lab.up(nodes=2, mode="iptables", ip_family="dual")
        rec = lab.add_pod("web-1", "node1", {"app": "web"})
        assert len(rec.ips) == 2 and rec.ips[0] == rec.ip and ":" in rec.ips[1]
        client, node2 = lab.plan.client, lab.plan.node("node2")
        for ip in rec.ips:
            for netns, source in ((client.netns, client.ip6 if ":" in ip else client.ip),
                                  (node2.netns, node2.ip6 if ":" in ip else node2.ip)):
                reply = traffic.Reply.parse(traffic.tcp_request(netns, ip, rec.port))
                assert (reply.pod, reply.client_ip) == ("web-1", source)
        node = lab.client.get(NODES, "node1")
        assert node["spec"]["podCIDRs"] == lab.plan.node("node1").pod_cidr.split(",")
        assert [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"] == [
            lab.plan.node("node1").ip, lab.plan.node("node1").ip6]
    finally:
        lab.down()
        lab.close()
