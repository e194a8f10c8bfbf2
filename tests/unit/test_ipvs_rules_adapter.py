"""The ipvs `kproxy rules` adapter: a rendered ruleset and the same state read back from the
kernel (as IpvsBackend.inspect() returns it) give the same model keys; trace shares."""
from __future__ import annotations

from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from kproxy.ipvs import nfrules
from kproxy.ipvs.backend import Inspection, KernelService
from kproxy.ipvs.model import RealServer, VirtualServer
from kproxy.ipvs.netlink import DestStatus
from kproxy.ipvs.render import render
from kproxy.ipvs.rules_adapter import IpvsAdapter
from kproxy.rules.trace import Probe


def state() -> ProxyState:
    web = ServicePort("default", "web", "http", "TCP", 80, cluster_ips=("10.96.0.10",), node_port=30080,
                      endpoints=(Endpoint("10.244.1.2", 8080), Endpoint("10.244.1.3", 8080)))
    empty = ServicePort("default", "empty", "", "UDP", 53, cluster_ips=("10.96.0.53",))
    return ProxyState("n1", node_ips=("10.200.0.11",), services={s.key: s for s in (web, empty)})


def read_back(ruleset, extra=()) -> Inspection:
    """What the kernel would report for `ruleset`: servers, dests and the owners ipset."""
    services = tuple(KernelService(e.server, tuple(DestStatus(r, 0, 1, 0) for r in e.reals))
                     for e in ruleset.services.values()) + tuple(extra)
    owners = nfrules.owners_from_members(nfrules.set_members(ruleset.netfilter)[nfrules.SET_OWNERS])
    return Inspection(services, ruleset.addresses, frozenset(), owners)


def keys(rules):
    return {s.key: {o.identity for o in s.objects} for s in rules.services}


def test_rendered_and_read_back_models_agree():
    ruleset = render(state())
    a = IpvsAdapter()
    rendered = a.from_ruleset(ruleset, "n1")
    kernel = a.from_inspection(read_back(ruleset), "n1")
    assert keys(rendered) == keys(kernel)
    web = kernel.service("default/web:http")
    assert {str(f) for f in web.frontends} == {"10.96.0.10:80/tcp (clusterIP)", "10.200.0.11:30080/tcp (nodePort)"}
    assert [e.address for e in web.endpoints] == ["10.244.1.2:8080", "10.244.1.3:8080"]
    assert kernel.service("default/empty:").endpoints == ()
    assert not kernel.unowned


def test_hand_made_virtual_server_is_unowned_and_draining_is_no_endpoint():
    ruleset = render(state())
    stray = KernelService(VirtualServer("10.96.9.9", 80, "TCP"), ())
    insp = read_back(ruleset, [stray])
    vs = ruleset.services[("10.96.0.10", 80, "TCP")].server
    drained = KernelService(vs, (DestStatus(RealServer("10.244.1.2", 8080), 0, 0, 0),
                                 DestStatus(RealServer("10.244.1.9", 8080, 0), 0, 3, 0)))
    insp = Inspection(tuple(s if s.server != vs else drained for s in insp.services), insp.addresses,
                      frozenset(), insp.owners)
    rules = IpvsAdapter().from_inspection(insp, "n1")
    assert [o.text for o in rules.unowned] == ["TCP 10.96.9.9:80 rr"]
    web = rules.service("default/web:http")
    assert "10.244.1.9:8080" not in {e.address for e in web.endpoints}
    assert any(o.key == "-> 10.244.1.9:8080 Masq 0" for o in web.objects)


def test_trace_shares_reject_and_miss():
    insp = read_back(render(state()))
    a = IpvsAdapter()
    report = a.trace(insp, Probe("tcp", "10.200.0.2", 0, "10.96.0.10", 80), ["10.200.0.11"])
    assert report.service == "default/web:http"
    assert {(c.outcome, c.probability) for c in report.candidates} == {("10.244.1.2:8080", 0.5), ("10.244.1.3:8080", 0.5)}
    assert a.trace(insp, Probe("udp", "10.200.0.2", 0, "10.96.0.53", 53), []).candidates[0].outcome == "REJECT"
    miss = a.trace(insp, Probe("tcp", "10.200.0.2", 0, "10.96.7.7", 80), [])
    assert miss.service == "" and miss.candidates[0].outcome == "ACCEPT"


def test_behaviour_carries_weights_and_affinity_and_diff_sees_a_changed_weight():
    from dataclasses import replace

    from kproxy.rules.diff import diff
    st = state()
    web = replace(st.services["default/web:http"], session_affinity_timeout=600)
    ruleset = render(replace(st, services={**st.services, web.key: web}))
    a = IpvsAdapter()
    desired = a.from_ruleset(ruleset, "n1")
    assert desired.service("default/web:http").affinity == 600
    assert {e.weight for e in desired.service("default/web:http").endpoints} == {1}
    assert diff(desired, a.from_inspection(read_back(ruleset), "n1")) == []
    insp = read_back(ruleset)
    vs = ruleset.services[("10.96.0.10", 80, "TCP")].server
    heavier = tuple(KernelService(s.server, tuple(DestStatus(replace(d.server, weight=2), 0, 0, 0) for d in s.dests))
                    if s.server == vs else s for s in insp.services)
    found = diff(desired, a.from_inspection(Inspection(heavier, insp.addresses, frozenset(), insp.owners), "n1"))
    assert ("unexpected", "default/web:http", "endpoint 10.244.1.2:8080 weight 2") in {
        (d.kind, d.scope, d.object.text) for d in found if d.object.kind == "behaviour"}


def test_trace_drops_where_a_local_policy_leaves_no_endpoint():
    """A virtual server in KUBE-IPVS-NO-LOCAL (inspect()'s `dropped`) traces to DROP, as the
    filter rule does; one without any endpoint still REJECTs."""
    remote = ServicePort("default", "local", "", "TCP", 80, cluster_ips=("10.96.0.20",), node_port=30081,
                         external_policy_local=True, endpoints=(Endpoint("10.244.2.2", 8080, node_name="n2"),))
    st = ProxyState("n1", node_ips=("10.200.0.11",), services={remote.key: remote, **state().services})
    ruleset = render(st)
    insp = read_back(ruleset)
    dropped = nfrules.keys_from_members(nfrules.set_members(ruleset.netfilter)[nfrules.SET_NO_LOCAL])
    insp = Inspection(insp.services, insp.addresses, frozenset(), insp.owners, dropped)
    a = IpvsAdapter()
    assert a.trace(insp, Probe("tcp", "10.200.0.2", 0, "10.200.0.11", 30081), []).candidates[0].outcome == "DROP"
    assert a.trace(insp, Probe("udp", "10.200.0.2", 0, "10.96.0.53", 53), []).candidates[0].outcome == "REJECT"


def test_trace_drops_a_source_outside_the_load_balancer_source_ranges():
    """An LB IP in KUBE-IPVS-LB-FW (inspect()'s `allowed_sources`) traces to DROP for a source
    outside the ranges, to its endpoints for one inside."""
    lb = ServicePort("default", "lb", "", "TCP", 80, cluster_ips=("10.96.0.30",), load_balancer_ips=("192.0.2.10",),
                     load_balancer_source_ranges=("203.0.113.0/24",), endpoints=(Endpoint("10.244.1.5", 8080),))
    ruleset = render(ProxyState("n1", node_ips=("10.200.0.11",), services={lb.key: lb}))
    members = nfrules.set_members(ruleset.netfilter)
    allowed = nfrules.allowed_sources_from_members(*(members[n] for n in (
        nfrules.SET_LB_FIREWALL, nfrules.SET_LB_SOURCE_CIDR, nfrules.SET_LB_SOURCE_IP)))
    assert allowed == {("192.0.2.10", 80, "TCP"): ("203.0.113.0/24",)}
    insp = read_back(ruleset)
    insp = Inspection(insp.services, insp.addresses, frozenset(), insp.owners, frozenset(), allowed)
    a = IpvsAdapter()
    blocked = a.trace(insp, Probe("tcp", "198.51.100.1", 0, "192.0.2.10", 80), [])
    assert [c.outcome for c in blocked.candidates] == ["DROP"]
    assert [c.outcome for c in a.trace(insp, Probe("tcp", "203.0.113.9", 0, "192.0.2.10", 80), []).candidates] \
        == ["10.244.1.5:8080"]
    # the ClusterIP is not firewalled
    assert [c.outcome for c in a.trace(insp, Probe("tcp", "198.51.100.1", 0, "10.96.0.30", 80), []).candidates] \
        == ["10.244.1.5:8080"]
