"""The upstream-derived packet-flow table (tests/flows/cases.py) traced with `kproxy rules
trace`'s own code in iptables, nftables and userspace mode, from rendered rules (pure; ipvs
runs the same table in the VM: tests/vm/guest/test_flows_ipvs.py; real packets for a sample:
tests/kernel/test_flows_kernel.py).

Expected output per mode: a Flow's `output` is upstream's nftables answer; the other modes
take `Flow.iptables` where upstream's iptables proxier answers differently. Then two lists:

- MODE_DIFFERENCES: cases a mode cannot express as the table says, what it does instead and why
  (checked: the mode must do exactly that);
- OPEN_ITEMS: cases that disagree with upstream today because of an open item of issue 14 that
  is being fixed, or a disagreement this table found (reason "flows: ..."); xfail(strict=True),
  so the mark must go when the fix lands.
"""
from __future__ import annotations

import functools

import pytest

from tests.flows import runner
from tests.flows.cases import FIXTURE, SCENARIOS, Flow, Scenario, flow_id

ALL = "*"  # in a key's flow position: every flow of the scenario

_NOT_IN_IPTABLES_UPSTREAM = ("kube-proxy's iptables mode has no Service-CIDR drop rule, so a packet to an "
                             "unallocated ClusterIP passes untouched (the case exists only in nftables/proxier_test.go)")
_NFT_NO_LOCALHOST_NODEPORTS = ("kube-proxy's nftables mode does not accept NodePort connections on 127.0.0.1 "
                               "(iptables mode does, localhostNodePorts)")

_NFT_CLUSTER_IP_CHECK = ("kube-proxy's nftables mode rejects a ClusterIP's unknown port or protocol "
                         "(nftables/proxier_test.go TestClusterIPGeneral); its iptables mode passes it untouched")
_USERSPACE_NO_SCTP = ("userspace mode does not proxy SCTP (the agent names the skipped ServicePorts in its log "
                      "and in `kproxy rules`); the development kernels have no sctp module to proxy it with")
_IPVS_NO_LOCALHOST_NODEPORTS = ("kube-proxy's ipvs mode has no NodePort virtual server on 127.0.0.1 "
                                "(localhostNodePorts is an iptables-mode setting)")
_IPVS_PER_VIRTUAL_SERVER = ("IPVS picks real servers per virtual server, whoever the client: an "
                            "externalTrafficPolicy=Local external IP, LB IP or NodePort holds only this node's "
                            "endpoints for pods and the node too (upstream's ipvs proxier has no short-circuit either)")

# (mode, "<scenario> | <flow>") -> (what the mode does instead, in the table's notation; why)
MODE_DIFFERENCES: dict[tuple[str, str], tuple[str, str]] = {
    ("iptables", "TestClusterIPGeneral | packet to unallocated cluster ip"): ("", _NOT_IN_IPTABLES_UPSTREAM),
    ("userspace", "TestClusterIPGeneral | packet to unallocated cluster ip"): ("", _NOT_IN_IPTABLES_UPSTREAM),
    ("nftables", "kproxy/trace fixture | NodePort on localhost"): ("", _NFT_NO_LOCALHOST_NODEPORTS),
    ("ipvs", "TestClusterIPGeneral | packet to unallocated cluster ip"): ("", _NOT_IN_IPTABLES_UPSTREAM),
    ("ipvs", "kproxy/trace fixture | NodePort on localhost"): ("", _IPVS_NO_LOCALHOST_NODEPORTS),
    ("nftables", "kproxy/trace fixture | clusterIP wrong port passes untouched"): ("REJECT", _NFT_CLUSTER_IP_CHECK),
    ("nftables", "kproxy/trace fixture | clusterIP wrong protocol passes untouched"): ("REJECT", _NFT_CLUSTER_IP_CHECK),
    ("userspace", "TestClusterIPGeneral | clusterIP with TCP, UDP, and SCTP on same port (SCTP)"):
        ("", _USERSPACE_NO_SCTP),
    **{("ipvs", key): (output, _IPVS_PER_VIRTUAL_SERVER) for key, output in (
        ("TestExternalTrafficPolicyLocal | pod to external IP hits both endpoints, unmasqueraded", "10.180.2.1:80"),
        ("TestExternalTrafficPolicyLocal | pod to LB IP hits only both endpoints, unmasqueraded", "10.180.2.1:80"),
        ("TestExternalTrafficPolicyLocal | pod to NodePort hits both endpoints, unmasqueraded", "10.180.2.1:80"),
        ("TestOnlyLocalNodePorts | pod to NodePort hits both endpoints", "10.180.2.1:80"),
        ("kproxy/trace fixture | ETP Local NodePort from a pod short-circuits to all endpoints", "10.244.1.4:8080"),
        ("kproxy/trace fixture | ETP Local NodePort from the node itself: all endpoints, masqueraded",
         "10.244.1.4:8080"),
        ("kproxy/trace fixture | ETP Local, no local endpoints: pod to NodePort still works", "DROP"),
        ("kproxy/topology hints, node in zone-a | ETP Local, pod to NodePort short-circuits to the zone-a endpoint",
         "10.180.3.2:80"))},
}

# modes whose masquerade decision the table's `masq` does not describe, and why
MASQUERADE_NOT_COMPARED = {
    "ipvs": "the ipvs adapter's trace does not trace masquerade (nat KUBE-IPVS-SERVICES decides it; its report says so)",
    "userspace": ("the proxy opens its own connection to the endpoint: from the node's address, except "
                  "transparently (client address kept) to endpoints on this node (README: remote endpoints "
                  "see the node address)"),
}


# (mode, "<scenario> | <flow>" or "<scenario> | *") -> open item
_IPV4_ONLY = {"userspace": "issue 22: userspace mode does not proxy IPv6 yet (its redirect rules and listeners are IPv4)",
              "ipvs": "issue 22: ipvs mode programs no IPv6 virtual servers yet"}
# the IPv6 flows that reach endpoints (the ones that expect no rule pass in an IPv4-only mode too)
_IPV6_SERVED = [f"{scenario} | {flow}"
                for scenario in ("TestNodePorts/ipv6", "TestNodePorts/ipv6, multiple nodeport-addresses")
                for flow in ("pod to cluster IP", "external to nodePort", "node to nodePort")] + [
    "TestNodePorts/ipv6, multiple nodeport-addresses | external to nodePort on secondary IP"]
OPEN_ITEMS: dict[tuple[str, str], str] = {
    **{(mode, key): reason for mode, reason in _IPV4_ONLY.items() for key in _IPV6_SERVED},
}


def expected_output(mode: str, scenario: Scenario, flow: Flow) -> str:
    """The table's answer for `mode` (see the module doc)."""
    different = MODE_DIFFERENCES.get((mode, flow_id(scenario, flow)))
    if different is not None:
        return different[0]
    if mode != "nftables" and flow.iptables is not None:
        return flow.iptables
    return flow.output


def open_item(mode: str, scenario: Scenario, flow: Flow) -> str | None:
    return (OPEN_ITEMS.get((mode, flow_id(scenario, flow)))
            or OPEN_ITEMS.get((mode, f"{scenario.name} | {ALL}")))


def cases(modes) -> list:
    out = []
    for mode in modes:
        for scenario in SCENARIOS:
            for flow in scenario.flows:
                item = open_item(mode, scenario, flow)
                marks = [pytest.mark.xfail(strict=True, reason=item)] if item else []
                out.append(pytest.param(mode, scenario, flow, id=f"{mode}: {flow_id(scenario, flow)}", marks=marks))
    return out


@functools.lru_cache(maxsize=None)
def _reading(mode: str, scenario_name: str):
    scenario = next(s for s in SCENARIOS if s.name == scenario_name)
    return runner.reading(mode, scenario)


def check(report, mode: str, scenario: Scenario, flow: Flow, compare_masquerade: bool) -> None:
    """The report routes `flow` as the table says for `mode`."""
    want = flow.outcomes(expected_output(mode, scenario, flow))
    assert {c.outcome for c in report.candidates} == want, report.note
    assert sum(c.probability for c in report.candidates) == pytest.approx(1.0)
    endpoints = [c for c in report.candidates if c.is_endpoint]
    if endpoints:
        assert report.service and report.frontend is not None and report.frontend.port == flow.port
        if compare_masquerade:
            assert {c.masquerade for c in endpoints} == {flow.masq}


@pytest.mark.parametrize("mode,scenario,flow", cases(runner.HOST_MODES))
def test_flow(mode, scenario, flow):
    report = runner.trace(mode, _reading(mode, scenario.name), scenario, flow)
    check(report, mode, scenario, flow, compare_masquerade=mode not in MASQUERADE_NOT_COMPARED)


# ------------------------------------------------------------------ the table itself


def test_names_are_unique_and_the_lists_name_real_cases():
    ids = [flow_id(s, f) for s in SCENARIOS for f in s.flows]
    assert len(ids) == len(set(ids))
    scenarios = {s.name for s in SCENARIOS}
    for mode, key in list(MODE_DIFFERENCES) + list(OPEN_ITEMS):
        scenario, _, flow = key.partition(" | ")
        assert key in ids or (flow == ALL and scenario in scenarios), key
        assert mode in runner.HOST_MODES + ("ipvs",), mode


def test_every_service_port_of_the_table_reaches_the_state():
    """Translation keeps every port of every Service the table declares (a dropped Service
    would make its flows pass through for the wrong reason)."""
    for scenario in SCENARIOS:
        state = runner.build_state(scenario)
        want = {f"{s['metadata']['namespace']}/{s['metadata']['name']}:{p['name']}"
                for s in scenario.services for p in s["spec"]["ports"]}
        assert set(state.services) == want, scenario.name


def test_the_fixture_scenario_is_the_golden_fixture():
    """The trace table's fixture, as API objects through translation, is exactly the ProxyState
    of tests/golden/iptables_services.py (so the golden and single-mode tests share its cases)."""
    from tests.golden import iptables_services as fx
    state = runner.build_state(FIXTURE)
    assert dict(state.services) == {s.key: s for s in fx.SERVICES}
    assert state.node_ips == (fx.NODE_IP,) and state.cluster_cidr == fx.CLUSTER_CIDR


def test_every_host_mode_has_an_offline_reader():
    """A mode added to kproxy/modes.py that the host kernel has must bring its reader."""
    assert set(runner.READERS) == set(runner.HOST_MODES)
