"""Topology hints and LB ipMode Proxy with real packets, in every host mode (tests/kernel/topology.py).

- Zone hints: a Service whose endpoints are hinted for zones; on a node in zone-a, every
  connection (ClusterIP and NodePort) reaches the one endpoint hinted for zone-a; on a node of a
  zone no endpoint is hinted for, hints are ignored and every endpoint answers.
- ipMode Proxy: pod "lb" plays the load balancer and holds both LB IPs. Traffic to the ingress IP
  in ipMode Proxy passes the node untouched and reaches the load balancer; traffic to the VIP
  ingress IP is taken by the node's rules to the Service's endpoint.
"""
from __future__ import annotations

import pytest

from kproxy.agent import translate
from tests.flows import runner
from tests.kernel.backends import sync
from tests.kernel.topology import NODE_IP, POD_PORT, ep, service, single_node, state

pytestmark = pytest.mark.kernel

TRIES = 20  # P(one of 3 endpoints never answers in 20 tries) < 3 * (2/3)^20
NODE_PORT = 30300
PROXY_LB, VIP_LB = "192.0.2.10", "192.0.2.11"  # the client routes 192.0.2.0/24 via the node


@pytest.fixture(scope="module")
def topo():
    with single_node(["a", "b", "c", "lb"], tag="topo") as topology:
        lb = topology.pods["lb"]
        host_if = f"vp{list(topology.pods).index('lb')}"
        for ip in (PROXY_LB, VIP_LB):
            topology.run(lb.netns, ["ip", "addr", "add", f"{ip}/32", "dev", "eth0"])
            topology.run(topology.node, ["ip", "route", "add", f"{ip}/32", "dev", host_if])
        yield topology


@pytest.fixture(params=runner.HOST_MODES)
def mode(request):
    return request.param


@pytest.fixture
def programmed(backend):
    """apply(state) programs the node in the parametrised mode (a full sync); the `backend`
    fixture (tests/kernel/conftest.py) cleans up after."""
    return lambda st: sync(backend, st)


def reached(topo, ip: str, port: int, tries: int = TRIES) -> set[str]:
    return {topo.tcp(topo.client, ip, port)[0] for _ in range(tries)}


def hinted_service(topo):
    return service("hinted", "10.96.3.1", [
        ep(topo, "a", local=False, zone_hints=("zone-a",)),
        ep(topo, "b", local=False, zone_hints=("zone-b",)),
        ep(topo, "c", local=True, zone_hints=("zone-b",))], port=80, node_port=NODE_PORT)


def test_zone_hints_keep_traffic_in_the_node_zone(topo, programmed):
    programmed(state(hinted_service(topo), node_zone="zone-a"))
    assert reached(topo, "10.96.3.1", 80) == {"a"}
    assert reached(topo, NODE_IP, NODE_PORT) == {"a"}


def test_hints_for_other_zones_only_are_ignored(topo, programmed):
    programmed(state(hinted_service(topo), node_zone="zone-c"))
    assert reached(topo, "10.96.3.1", 80) == {"a", "b", "c"}


def _lb_state(topo):
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "default", "name": "lb"},
           "spec": {"type": "LoadBalancer", "clusterIP": "10.96.3.2",
                    "ports": [{"port": POD_PORT, "protocol": "TCP", "nodePort": NODE_PORT + 1}]},
           "status": {"loadBalancer": {"ingress": [{"ip": PROXY_LB, "ipMode": "Proxy"}, {"ip": VIP_LB, "ipMode": "VIP"}]}}}
    slc = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
           "metadata": {"namespace": "default", "name": "lb-1", "labels": {"kubernetes.io/service-name": "lb"}},
           "endpoints": [{"addresses": [topo.pods["a"].ip], "nodeName": "n2"}],
           "ports": [{"port": POD_PORT, "protocol": "TCP"}]}
    ports = translate.build_service_ports(svc, [translate.slice_view(slc, "n1")])
    return state(*ports.values())


def test_ip_mode_proxy_ingress_reaches_the_load_balancer(topo, programmed):
    programmed(_lb_state(topo))
    assert reached(topo, PROXY_LB, POD_PORT, tries=3) == {"lb"}  # untouched: the load balancer answers
    assert reached(topo, VIP_LB, POD_PORT, tries=3) == {"a"}  # VIP: the node sends it to the endpoint


def test_the_lb_state_is_what_translation_makes():
    """The ipMode test's state really has the VIP ingress IP only (else it would prove nothing)."""
    topo = type("T", (), {"pods": {"a": type("P", (), {"ip": "10.244.1.2"})()}})()
    (sp,) = _lb_state(topo).services.values()
    assert sp.load_balancer_ips == (VIP_LB,)
    assert [e.ip for e in sp.endpoints] == ["10.244.1.2"]
