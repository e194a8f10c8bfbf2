"""A sample of the packet-flow table (tests/flows/cases.py) sent as real packets, in every host
mode: each sampled flow's scenario is programmed by the mode's Backend in the node namespace of
tests/kernel/topology.py, and the client sends the flow's packet from the flow's source address.

The scenario's addresses are moved onto the topology (pure, `rebase`): its endpoints become the
topology's pods (port POD_PORT), its node address the node's; the client routes the scenario's
Service addresses via the node. Expectations and the per-mode lists are tests/flows/test_flows.py's.
Only flows from off-node sources are sampled (the client namespace sends them); "pass-through"
flows are left out (where they go is the node's routing, not ours).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses

import pytest

from tests.flows import runner
from tests.flows.cases import NODE_IP as CASE_NODE_IP, SCENARIOS, Flow, Scenario, flow_id
from tests.flows.test_flows import MASQUERADE_NOT_COMPARED, expected_output, open_item
from tests.kernel.backends import config_for, open_backend
from tests.kernel.topology import NODE_IP, POD_PORT, single_node

pytestmark = pytest.mark.kernel

SAMPLE = (
    "TestNoEndpointsReject | external to NodePort with no endpoints",
    "TestNoEndpointsReject | external to LoadBalancer IP with no endpoints",
    "TestNodePorts/ipv4 | external to nodePort",
    "kproxy/TestLoadBalancer without whitespace | accepted external to LB1",
    "kproxy/TestLoadBalancer without whitespace | blocked external to LB1",  # LB1 accepts EXTERNAL_CLIENT
    "kproxy/TestLoadBalancer without whitespace | nodePort bypasses LoadBalancerSourceRanges",
    "TestExternalTrafficPolicyLocal | external to NodePort hits only local endpoint, unmasqueraded",
    "TestExternalTrafficPolicyLocal | external to LB IP hits only local endpoint, unmasqueraded",
    "TestExternalTrafficPolicyCluster | external to external IP hits both endpoints, masqueraded",
    "TestTerminatingEndpointsTrafficPolicyLocal/only terminating endpoints exist | external to LB",
)
PODS = ["a", "b", "c", "d", "e"]  # at least as many as any sampled scenario has endpoint addresses
SOURCES = ("203.0.113.2/24", "203.0.113.130/24")  # the table's external and blocked clients
SERVICE_ROUTES = ("172.30.0.0/16", "1.2.3.4/32", "5.6.7.8/32", "192.168.99.0/24")
TRIES = 20  # P(one of 2 endpoints never answers in 20 tries) = 2 * 2^-20
DROP_WAIT = 1.5  # seconds a dropped SYN is given before it counts as dropped


def _sampled() -> list:
    by_id = {flow_id(s, f): (s, f) for s in SCENARIOS for f in s.flows}
    out = []
    for mode in runner.HOST_MODES:
        for key in SAMPLE:
            scenario, flow = by_id[key]
            item = open_item(mode, scenario, flow)
            marks = [pytest.mark.xfail(strict=True, reason=item)] if item else []
            out.append(pytest.param(mode, scenario, flow, id=f"{mode}: {key}", marks=marks))
    return out


def rebase(scenario: Scenario, pod_ips: list[str]) -> tuple[Scenario, dict[str, str]]:
    """`scenario` with its endpoint addresses on `pod_ips` (port POD_PORT) and its node address
    NODE_IP; and the map old endpoint "ip:port" -> new pod ip."""
    old = sorted({e["addresses"][0] for s in scenario.slices for e in s["endpoints"]})
    assert len(old) <= len(pod_ips), "the topology needs more pods"
    to_pod = dict(zip(old, pod_ips))
    slices = copy.deepcopy(scenario.slices)
    moved: dict[str, str] = {}
    for slc in slices:
        for e in slc["endpoints"]:
            e["addresses"] = [to_pod[e["addresses"][0]]]
        for p in slc["ports"]:
            for ip in old:
                moved[f"{ip}:{p['port']}"] = to_pod[ip]
            p["port"] = POD_PORT
    node = lambda ip: NODE_IP if ip == CASE_NODE_IP else ip  # noqa: E731
    return dataclasses.replace(
        scenario, slices=slices, node_ips=tuple(node(ip) for ip in scenario.node_ips),
        local_addresses=(NODE_IP,),
        node_port_addresses=tuple(f"{NODE_IP}/32" if c == f"{CASE_NODE_IP}/32" else c
                                  for c in scenario.node_port_addresses)), moved


@pytest.fixture(scope="module")
def topo():
    with single_node(PODS, tag="flowk") as topology:
        for cidr in SOURCES:
            topology.run(topology.client, ["ip", "addr", "add", cidr, "dev", "eth0"])
        for cidr in SERVICE_ROUTES:
            topology.run(topology.client, ["ip", "route", "add", cidr, "via", NODE_IP])
        yield topology


class Programmed:
    """One mode's Backend holding one scenario at a time (a new scenario: cleanup, then a full
    sync), so the sampled flows of a scenario share one sync."""

    def __init__(self, topo) -> None:
        self.topo = topo
        self.key: tuple[str, str] | None = None
        self.backend = None
        self._opened = contextlib.ExitStack()
        self.moved: dict[str, str] = {}

    def program(self, mode: str, scenario: Scenario) -> dict[str, str]:
        if self.key == (mode, scenario.name):
            return self.moved
        self.close()
        rebased, self.moved = rebase(scenario, [self.topo.pods[p].ip for p in PODS])
        self.backend = self._opened.enter_context(open_backend(self.topo.node, config_for(mode)))
        self.key = (mode, scenario.name)
        self.backend.apply(self.backend.render(runner.build_state(rebased)), None)
        return self.moved

    def close(self) -> None:
        self.backend = self.key = None
        self._opened.close()  # the backend's cleanup (tests/kernel/backends.py)


@pytest.fixture(scope="module")
def programmed(topo):
    p = Programmed(topo)
    try:
        yield p
    finally:
        p.close()


def _send(topo, flow: Flow, dst: str) -> str:
    """One connection: "<pod> <seen source ip>", "REJECT" (refused) or "DROP" (no answer)."""
    try:
        pod, seen = topo.tcp(topo.client, dst, flow.port, timeout=DROP_WAIT, source=flow.src)
    except ConnectionRefusedError:
        return "REJECT"
    except TimeoutError:
        return "DROP"
    return f"{pod} {seen}"


@pytest.mark.parametrize("mode,scenario,flow", _sampled())
def test_flow_with_real_packets(topo, programmed, mode, scenario, flow):
    moved = programmed.program(mode, scenario)
    pod_of = {p.ip: name for name, p in topo.pods.items()}
    want = flow.outcomes(expected_output(mode, scenario, flow))
    assert "ACCEPT" not in want, "pass-through flows are not sampled"
    dst = NODE_IP if flow.dst == CASE_NODE_IP else flow.dst
    answers = {_send(topo, flow, dst) for _ in range(TRIES if want - {"DROP", "REJECT"} else 1)}
    if want <= {"DROP", "REJECT"}:
        assert answers == want
        return
    assert {a.split()[0] for a in answers} == {pod_of[moved[ep]] for ep in want}
    if mode not in MASQUERADE_NOT_COMPARED:
        assert {a.split()[1] != flow.src for a in answers} == {flow.masq}, answers
