"""Pure parts of ipvs mode: ProxyState -> IpvsRuleset, netfilter text, real-server planning."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from kproxy.ipvs import nfrules
from kproxy.ipvs.backend import plan_dests
from kproxy.ipvs.model import IP_VS_SVC_F_PERSISTENT, IP_VS_SVC_F_SCHED1, IP_VS_SVC_F_SCHED2, RealServer
from kproxy.ipvs.netlink import CMD_DEL_DEST, CMD_NEW_DEST, CMD_SET_DEST, DestStatus
from kproxy.ipvs.render import RenderOptions, options_from_config, render

NODE = "10.200.0.11"


def sp(name="web", ip="10.96.0.10", port=80, proto="TCP", eps=(), **kw) -> ServicePort:
    return ServicePort("default", name, "", proto, port, cluster_ips=(ip,), endpoints=tuple(sorted(eps)), **kw)


def st(*services, **kw) -> ProxyState:
    kw.setdefault("cluster_cidr", "10.244.0.0/16")
    return ProxyState("n1", node_ips=(NODE,), services={s.key: s for s in services}, **kw)


def e(ip, port=8080, **kw) -> Endpoint:
    return Endpoint(ip, port, **kw)


def test_cluster_ip_virtual_server_with_ready_endpoints_only():
    r = render(st(sp(eps=[e("10.244.1.2"), e("10.244.1.3", ready=False), e("10.244.1.4")])))
    entry = r.services[("10.96.0.10", 80, "TCP")]
    assert entry.reals == (RealServer("10.244.1.2", 8080), RealServer("10.244.1.4", 8080))
    assert entry.server.scheduler == "rr" and entry.server.flags == 0 and entry.owner == "default/web:"
    assert r.addresses == {"10.96.0.10"}
    assert r.netfilter.cluster_ips == {("10.96.0.10", "TCP", 80)}
    assert r.netfilter.loopback == {("10.244.1.2", "TCP", 8080), ("10.244.1.4", "TCP", 8080)}


def test_terminating_fallback_and_no_endpoints_reject():
    r = render(st(sp(eps=[e("10.244.1.2", ready=False, serving=True, terminating=True)]),
                  sp("empty", "10.96.0.11")))
    assert r.services[("10.96.0.10", 80, "TCP")].reals == (RealServer("10.244.1.2", 8080),)
    assert r.netfilter.no_endpoints == {("10.96.0.11", "TCP", 80)}


def test_node_port_external_and_lb_ips_follow_external_policy():
    local = e("10.244.1.2", is_local=True)
    remote = e("10.244.2.2", is_local=False)
    s = sp(eps=[local, remote], node_port=30080, external_ips=("192.0.2.1",), load_balancer_ips=("198.51.100.1",),
           external_policy_local=True)
    r = render(st(s))
    assert r.services[("10.96.0.10", 80, "TCP")].reals == (RealServer("10.244.1.2", 8080), RealServer("10.244.2.2", 8080))
    for key in ((NODE, 30080, "TCP"), ("192.0.2.1", 80, "TCP"), ("198.51.100.1", 80, "TCP")):
        assert r.services[key].reals == (RealServer("10.244.1.2", 8080),)
    assert r.addresses == {"10.96.0.10", "192.0.2.1", "198.51.100.1"}
    assert r.netfilter.local_node_ports == {("TCP", 30080)} and not r.netfilter.node_ports
    assert not r.netfilter.external_ips  # Local policy: keep the client address
    assert not r.netfilter.no_local and not r.netfilter.no_endpoints


def test_local_policy_without_local_endpoints_drops_and_without_any_rejects():
    remote_only = sp(eps=[e("10.244.2.2", is_local=False)], node_port=30080, external_policy_local=True)
    r = render(st(remote_only))
    assert r.netfilter.no_local == {(NODE, "TCP", 30080)} and not r.netfilter.no_endpoints
    assert "-A KUBE-IPVS-FILTER -m set --match-set KUBE-IPVS-NO-LOCAL dst,dst -j DROP" in nfrules.restore_text(r.netfilter)
    r = render(st(sp(node_port=30080, external_policy_local=True)))
    assert r.netfilter.no_endpoints == {("10.96.0.10", "TCP", 80), (NODE, "TCP", 30080)} and not r.netfilter.no_local


def test_node_port_addresses_select_node_ips():
    state = ProxyState("n1", node_ips=(NODE, "192.168.1.5"), node_port_addresses=("192.168.0.0/16",),
                       services={"x": sp(node_port=30001, eps=[e("10.244.1.2")])})
    keys = {k for k in render(state).services if k[1] == 30001}
    assert keys == {("192.168.1.5", 30001, "TCP")}


def test_internal_local_policy():
    s = sp(eps=[e("10.244.1.2", is_local=True), e("10.244.2.2")], internal_policy_local=True)
    assert render(st(s)).services[("10.96.0.10", 80, "TCP")].reals == (RealServer("10.244.1.2", 8080),)


def test_affinity_is_persistence_and_mh_gets_its_flags():
    s = sp(eps=[e("10.244.1.2")], session_affinity_timeout=10800)
    opts = options_from_config(SimpleNamespace(ipvs=SimpleNamespace(scheduler="mh")))
    vs = render(st(s), opts).services[("10.96.0.10", 80, "TCP")].server
    assert vs.scheduler == "mh" and vs.timeout == 10800
    assert vs.flags == IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_SCHED1 | IP_VS_SVC_F_SCHED2


def test_scheduler_default_and_unknown():
    assert options_from_config(SimpleNamespace(ipvs=SimpleNamespace(scheduler=""))) == RenderOptions("rr", 0)
    with pytest.raises(ValueError, match="unknown ipvs.scheduler 'fastest'"):
        options_from_config(SimpleNamespace(ipvs=SimpleNamespace(scheduler="fastest")))


def test_ipv6_is_left_out_and_render_is_deterministic():
    s = sp(eps=[e("fd00::2"), e("10.244.1.2")])
    a, b = render(st(s)), render(st(s))
    assert a == b
    assert a.services[("10.96.0.10", 80, "TCP")].reals == (RealServer("10.244.1.2", 8080),)


def test_netfilter_text():
    r = render(st(sp(eps=[e("10.244.1.2")], node_port=30080)))
    text = nfrules.restore_text(r.netfilter)
    assert "-A KUBE-IPVS-SERVICES ! -s 10.244.0.0/16 -m set --match-set KUBE-IPVS-CLUSTER-IP dst,dst -j MARK --or-mark 0x4000" in text
    assert "-A KUBE-IPVS-POSTROUTING -m set --match-set KUBE-IPVS-LOOP-BACK dst,dst,src -j MASQUERADE" in text
    sets = nfrules.ipset_restore(r.netfilter)
    assert "add KUBE-IPVS-CLUSTER-IP-TMP 10.96.0.10,tcp:80\n" in sets
    assert "add KUBE-IPVS-NP-TCP-TMP 30080\n" in sets
    assert "add KUBE-IPVS-LOOP-BACK-TMP 10.244.1.2,tcp:8080,10.244.1.2\n" in sets
    all_cluster = nfrules.restore_text(render(st(sp(), masquerade_all=True)).netfilter)
    assert "-A KUBE-IPVS-SERVICES -m set --match-set KUBE-IPVS-CLUSTER-IP dst,dst -j MARK" in all_cluster


def test_changed_sets_names_only_what_differs():
    a = render(st(sp(eps=[e("10.244.1.2")]))).netfilter
    b = render(st(sp(eps=[e("10.244.1.3")]))).netfilter
    assert nfrules.changed_sets(a, b) == {nfrules.SET_LOOP_BACK}
    assert nfrules.changed_sets(a, a) == set()
    assert nfrules.ipset_restore(a, set()) == ""


def status(ip, port, weight=1, active=0, inactive=0) -> DestStatus:
    return DestStatus(RealServer(ip, port, weight), 0, active, inactive)


def test_plan_dests_adds_edits_deletes_and_drains():
    entry = render(st(sp(eps=[e("10.244.1.2"), e("10.244.1.3")]))).services[("10.96.0.10", 80, "TCP")]
    kernel = [status("10.244.1.3", 8080, weight=5), status("10.244.1.8", 8080),
              status("10.244.1.9", 8080, active=2)]
    reqs, drain = plan_dests(entry, kernel)
    got = {(r.cmd, r.dest) for r in reqs}
    assert got == {(CMD_NEW_DEST, RealServer("10.244.1.2", 8080)),
                   (CMD_SET_DEST, RealServer("10.244.1.3", 8080)),
                   (CMD_DEL_DEST, RealServer("10.244.1.8", 8080)),
                   (CMD_SET_DEST, RealServer("10.244.1.9", 8080, 0))}
    assert drain == {RealServer("10.244.1.9", 8080, 0)}
    # already at weight 0: no request, still draining
    reqs, drain = plan_dests(entry, [status("10.244.1.2", 8080), status("10.244.1.3", 8080),
                                     status("10.244.1.9", 8080, weight=0, inactive=1)])
    assert reqs == [] and drain == {RealServer("10.244.1.9", 8080, 0)}


def test_plan_dests_deletes_unwanted_udp_real_servers_at_once():
    entry = render(st(sp(proto="UDP", port=53, eps=[e("10.244.1.2", 53)]))).services[("10.96.0.10", 53, "UDP")]
    reqs, drain = plan_dests(entry, [status("10.244.1.2", 53), status("10.244.1.9", 53, inactive=4)])
    assert [(r.cmd, r.dest) for r in reqs] == [(CMD_DEL_DEST, RealServer("10.244.1.9", 53))] and drain == set()


def test_backend_refuses_an_unknown_scheduler_up_front():
    from kproxy.agent.backend import BackendUnavailable
    from kproxy.ipvs.backend import IpvsBackend
    from kproxy.netns import NetNS

    with pytest.raises(BackendUnavailable, match="unknown ipvs.scheduler 'bogus'"):
        IpvsBackend(NetNS(None), SimpleNamespace(ipvs=SimpleNamespace(scheduler="bogus")))


def test_ipset_delta_adds_and_deletes_only_changed_members():
    a = render(st(sp(eps=[e("10.244.1.2")]))).netfilter
    b = render(st(sp(eps=[e("10.244.1.3")]))).netfilter
    assert nfrules.ipset_delta(a, b) == (
        "del KUBE-IPVS-LOOP-BACK 10.244.1.2,tcp:8080,10.244.1.2 -exist\n"
        "add KUBE-IPVS-LOOP-BACK 10.244.1.3,tcp:8080,10.244.1.3 -exist\n")
    assert nfrules.ipset_delta(a, a) == ""
    gone = render(st()).netfilter
    assert 'del KUBE-IPVS-OWNERS 10.96.0.10,tcp:80 -exist' in nfrules.ipset_delta(a, gone)
