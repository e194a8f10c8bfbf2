"""The iptables tracer over the rendered fixture ruleset: the fixture's flows of the shared
packet-flow table (tests/flows/cases.py; every mode runs the whole table in tests/flows), plus
what only this tracer answers (affinity, hairpin, options)."""
from __future__ import annotations

import pytest

from kproxy.iptables import names
from kproxy.iptables.render import render
from kproxy.iptables.trace import TraceError, Tracer, trace
from kproxy.iptables.ruleset import RenderOptions
from tests.flows.cases import FIXTURE_CASES
from tests.golden import iptables_services as fx

POD = fx.LOCAL_POD
EXT = fx.EXTERNAL_CLIENT
NODE = fx.NODE_IP

# the fixture's flows, from the shared packet-flow table (tests/flows/cases.py)
CASES = FIXTURE_CASES


@pytest.fixture(scope="module")
def tracer():
    return Tracer(render(fx.state()), local_addresses=[NODE])


@pytest.mark.parametrize("case,src,dst,dport,proto,expected,masq", CASES, ids=[c[0] for c in CASES])
def test_trace_table(tracer, case, src, dst, dport, proto, expected, masq):
    result = tracer.trace(src, dst, dport, proto)
    assert set(result.outcomes) == expected
    assert sum(result.outcomes.values()) == pytest.approx(1.0)
    assert set(result.masquerade.values()) == {masq}


def test_endpoints_are_equally_likely(tracer):
    result = tracer.trace(POD, "10.96.0.10", 80)
    for p in result.outcomes.values():
        assert p == pytest.approx(1 / 3, abs=1e-9)


def test_hairpin_marks_only_the_path_back_to_the_sender(tracer):
    result = tracer.trace("10.244.1.2", "10.96.0.10", 80)
    assert result.masquerade == {"10.244.1.2:8080": True, "10.244.1.3:8080": False, "10.244.2.2:8080": False}


def test_session_affinity_remembered_client_goes_to_its_endpoint(tracer):
    sp = next(s for s in fx.SERVICES if s.name == "affinity")
    remembered = sp.endpoints[1]
    result = tracer.trace(POD, "10.96.0.23", 80, recent=[names.endpoint_chain(sp, remembered)])
    assert result.outcomes == {remembered.address: pytest.approx(1.0)}
    fresh = tracer.trace(POD, "10.96.0.23", 80)
    assert set(fresh.outcomes) == {e.address for e in sp.endpoints}


def test_masquerade_all_marks_pod_traffic():
    result = trace(render(fx.state(masquerade_all=True)), POD, "10.96.0.10", 80)
    assert set(result.masquerade.values()) == {True}


def test_without_cluster_cidr_off_cluster_clients_are_not_masqueraded():
    result = trace(render(fx.state(cluster_cidr=None)), EXT, "10.96.0.10", 80)
    assert set(result.masquerade.values()) == {False}


def test_localhost_nodeports_off_refuses_loopback():
    rs = render(fx.state(), options=RenderOptions(localhost_nodeports=False))
    assert set(trace(rs, "127.0.0.1", "127.0.0.1", 30080, local_addresses=[NODE]).outcomes) == {"ACCEPT"}
    assert len(trace(rs, EXT, NODE, 30080, local_addresses=[NODE]).endpoints) == 2


def test_node_port_addresses_limit_nodeports_to_matching_node_ips():
    st = fx.state(node_ips=(NODE, "192.168.50.1"), node_port_addresses=("192.168.50.0/24",))
    rs = render(st)
    assert set(trace(rs, EXT, NODE, 30080, local_addresses=[NODE, "192.168.50.1"]).outcomes) == {"ACCEPT"}
    assert len(trace(rs, EXT, "192.168.50.1", 30080, local_addresses=[NODE, "192.168.50.1"]).endpoints) == 2


def test_tracer_refuses_rules_it_does_not_model():
    from dataclasses import replace
    rs = render(fx.state())
    static = dict(rs.static)
    static[("nat", names.KUBE_SERVICES)] = ("-m owner --uid-owner 0 -j RETURN",) + static[("nat", names.KUBE_SERVICES)]
    with pytest.raises(TraceError):
        trace(replace(rs, static=static), POD, "10.96.0.10", 80)
