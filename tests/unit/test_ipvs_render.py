"""Pure parts of ipvs mode: ProxyState -> IpvsRuleset, netfilter text, real-server planning."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from kproxy.agent.state import Changes, Endpoint, ProxyState, ServicePort, changes_between
from kproxy.ipvs import nfrules
from kproxy.ipvs.ipset import Member, ops_text
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
    assert "-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-NO-LOCAL dst,dst -j DROP" in nfrules.restore_text(r.netfilter)
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
    sets = ops_text(nfrules.ipset_sync_ops(r.netfilter, {}))
    assert "create KUBE-IPVS-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 1048576 -exist\n" in sets
    assert "add KUBE-IPVS-CLUSTER-IP 10.96.0.10,tcp:80 -exist\n" in sets
    assert "add KUBE-IPVS-NP-TCP 30080 -exist\n" in sets
    assert "add KUBE-IPVS-LOOP-BACK 10.244.1.2,tcp:8080,10.244.1.2 -exist\n" in sets
    all_cluster = nfrules.restore_text(render(st(sp(), masquerade_all=True)).netfilter)
    assert "-A KUBE-IPVS-SERVICES -m set --match-set KUBE-IPVS-CLUSTER-IP dst,dst -j MARK" in all_cluster


def test_full_sync_sends_only_what_differs_from_the_kernel():
    a = render(st(sp(eps=[e("10.244.1.2")]))).netfilter
    b = render(st(sp(eps=[e("10.244.1.3")]))).netfilter
    kernel = nfrules.set_members(a)
    assert nfrules.ipset_sync_ops(a, kernel) == []  # in sync: a periodic full sync writes nothing
    assert ops_text(nfrules.ipset_sync_ops(b, kernel)) == (
        "del KUBE-IPVS-LOOP-BACK 10.244.1.2,tcp:8080,10.244.1.2 -exist\n"
        "add KUBE-IPVS-LOOP-BACK 10.244.1.3,tcp:8080,10.244.1.3 -exist\n")
    # a set deleted by hand is created and filled; a comment changed by hand is put back
    del kernel[nfrules.SET_CLUSTER_IP]
    owner = kernel[nfrules.SET_OWNERS][0]
    kernel[nfrules.SET_OWNERS] = [Member(owner.ip, owner.proto, owner.port, comment="clusterIP someone/else:x")]
    text = ops_text(nfrules.ipset_sync_ops(a, kernel))
    assert text.startswith("create KUBE-IPVS-CLUSTER-IP hash:ip,port")
    assert "add KUBE-IPVS-CLUSTER-IP 10.96.0.10,tcp:80 -exist\n" in text
    assert text.index("del KUBE-IPVS-OWNERS 10.96.0.10,tcp:80 -exist") < text.index(f'add KUBE-IPVS-OWNERS {owner.text()} -exist')


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
    assert ops_text(nfrules.ipset_delta_ops(a, b)) == (
        "del KUBE-IPVS-LOOP-BACK 10.244.1.2,tcp:8080,10.244.1.2 -exist\n"
        "add KUBE-IPVS-LOOP-BACK 10.244.1.3,tcp:8080,10.244.1.3 -exist\n")
    assert nfrules.ipset_delta_ops(a, a) == []
    gone = render(st()).netfilter
    assert 'del KUBE-IPVS-OWNERS 10.96.0.10,tcp:80 -exist' in ops_text(nfrules.ipset_delta_ops(a, gone))


def test_partial_delta_equals_the_difference_of_whole_sets():
    """ipset_delta_ops (set differences on the plans) sends exactly what comparing every
    member of both plans would (ipset_sync_ops against the old plan's members)."""
    import random

    rng = random.Random(7)
    nonempty = 0
    for _ in range(40):
        sps = []
        for i in range(rng.randint(0, 6)):
            eps = [e(f"10.244.{rng.randint(1, 2)}.{rng.randint(2, 9)}") for _ in range(rng.randint(0, 3))]
            sps.append(sp(name=f"s{i}", ip=f"10.96.0.{10 + i}", eps=eps, node_port=rng.choice([0, 30080 + i]),
                          proto=rng.choice(["TCP", "UDP"])))
        a = render(st(*sps)).netfilter
        changed = [sp(name=s.name, ip=s.cluster_ips[0], eps=[e(f"10.244.3.{rng.randint(2, 4)}")],
                      proto=s.protocol) if rng.random() < 0.5 else s for s in sps[:rng.randint(0, len(sps))]]
        b = render(st(*changed)).netfilter
        partial = nfrules.ipset_delta_ops(a, b)
        whole = nfrules.ipset_sync_ops(b, nfrules.set_members(a))
        assert sorted(partial, key=lambda op: (op.cmd, op.set, op.arg)) == sorted(whole, key=lambda op: (op.cmd, op.set, op.arg))
        nonempty += bool(partial)
    assert nonempty > 20  # most rounds changed something


def test_render_with_the_previous_ruleset_equals_a_render_from_scratch():
    """Reusing unchanged ServicePorts' fragments gives exactly what rendering everything does,
    through added, removed and changed Services, NodePorts and a ClusterIP two Services claim."""
    import random

    rng = random.Random(11)
    previous = previous_state = None
    reused = 0
    for _ in range(60):
        sps = []
        for i in range(rng.randint(0, 8)):
            eps = [e(f"10.244.{rng.randint(1, 2)}.{rng.randint(2, 6)}") for _ in range(rng.randint(0, 3))]
            sps.append(sp(name=f"s{i}", ip=f"10.96.0.{10 + rng.randint(0, 9)}", eps=eps,
                          node_port=rng.choice([0, 30080 + i]), proto=rng.choice(["TCP", "UDP"]),
                          external_policy_local=rng.random() < 0.3))
        if previous is not None and rng.random() < 0.5:  # keep most ServicePorts (same objects)
            kept = list(previous_state.services.values())[: rng.randint(0, len(previous_state.services))]
            sps = kept + [s for s in sps if s.key not in {k.key for k in kept}]
        state = st(*sps)
        incremental = render(state, previous=previous, changes=changes_between(previous_state, state))
        assert incremental == render(state)
        assert incremental.netfilter == render(state).netfilter
        if previous is not None:
            reused += sum(1 for k, f in incremental.fragments.items() if previous.fragments.get(k) is f)
        previous, previous_state = incremental, state
    assert reused > 20  # the reuse path was taken


def test_a_new_render_context_renders_everything_again():
    s = sp(eps=[e("10.244.1.2")], node_port=30080)
    first = render(st(s))
    other_node = ProxyState("n1", node_ips=("10.200.0.99",), services={s.key: s}, cluster_cidr="10.244.0.0/16")
    again = render(other_node, previous=first, changes=Changes(full=False))  # told nothing: the context decides
    assert again == render(other_node)
    assert ("10.200.0.99", 30080, "TCP") in again.services and again.fragments[s.key] is not first.fragments[s.key]


def test_every_member_field_of_the_plan_maps_to_ipsets():
    import dataclasses

    from kproxy.ipvs.model import MEMBER_FIELDS, NetfilterPlan

    frozen = {f.name for f in dataclasses.fields(NetfilterPlan) if str(f.type).startswith("frozenset")}
    assert set(MEMBER_FIELDS) == frozen
    assert set(nfrules._MEMBER_OF) == frozen


def test_internal_local_policy_without_local_endpoints_drops():
    """internalTrafficPolicy=Local with endpoints only on other nodes: the ClusterIP is dropped
    (as upstream and the iptables/nftables modes), not rejected as a Service without endpoints."""
    r = render(st(sp(eps=[e("10.244.2.2", is_local=False)], internal_policy_local=True)))
    assert r.services[("10.96.0.10", 80, "TCP")].reals == ()
    assert r.netfilter.no_local == {("10.96.0.10", "TCP", 80)} and not r.netfilter.no_endpoints


LB = "192.0.2.10"


def lb(ranges, **kw) -> ServicePort:
    return sp(load_balancer_ips=(LB,), load_balancer_source_ranges=tuple(ranges), eps=[e("10.244.1.2")], **kw)


def test_source_ranges_firewall_the_lb_ip_only():
    """upstream's KUBE-LOAD-BALANCER-FW / -SOURCE-CIDR sets: the LB IP (not the ClusterIP) with
    each IPv4 range (translate has cleaned them: tests/unit/test_translate_clean.py; IPv6 left
    out); no node IP in a range, so no SOURCE-IP member."""
    plan = render(st(lb(["203.0.113.0/24", "198.51.0.0/16", "2001:db8::/64"]))).netfilter
    assert plan.lb_firewall == {(LB, "TCP", 80)}
    assert plan.lb_source_cidrs == {(LB, "TCP", 80, "203.0.113.0/24"), (LB, "TCP", 80, "198.51.0.0/16")}
    assert plan.lb_source_ips == frozenset()
    members = nfrules.set_members(plan)
    assert members[nfrules.SET_LB_FIREWALL] == [Member(LB, "tcp", 80)]
    assert Member(LB, "tcp", 80, "203.0.113.0/24") in members[nfrules.SET_LB_SOURCE_CIDR]


def test_a_range_holding_a_node_ip_lets_the_node_reach_the_lb_ip():
    """The node's own packets to the LB IP leave from the LB IP (bound to kube-ipvs0): upstream
    adds LB IP,port,LB IP to KUBE-LOAD-BALANCER-SOURCE-IP when a range holds the node IP."""
    plan = render(st(lb(["10.200.0.0/24"]))).netfilter
    assert plan.lb_source_ips == {(LB, "TCP", 80, LB)}


def test_no_firewall_without_ranges_or_with_an_allow_all_range():
    for ranges in ((), ("0.0.0.0/0", "203.0.113.0/24"), ("2001:db8::/64",)):
        plan = render(st(lb(ranges))).netfilter
        assert (plan.lb_firewall, plan.lb_source_cidrs) == (frozenset(), frozenset()), ranges


def test_firewall_chain_drops_sources_outside_the_sets():
    text = nfrules.restore_text(render(st(lb(["203.0.113.0/24"]))).netfilter)
    chain = nfrules.FILTER_SOURCE_RANGES
    assert (f"-A {nfrules.FILTER_CHAIN} -m conntrack --ctstate NEW -m set --match-set {nfrules.SET_LB_FIREWALL} "
            f"dst,dst -j {chain}") in text
    rules = [line for line in text.splitlines() if line.startswith(f"-A {chain} ")]
    assert rules == [f"-A {chain} -m set --match-set {nfrules.SET_LB_SOURCE_CIDR} dst,dst,src -j RETURN",
                     f"-A {chain} -m set --match-set {nfrules.SET_LB_SOURCE_IP} dst,dst,src -j RETURN",
                     f"-A {chain} -j DROP"]
    assert f"-X {chain}" in nfrules.cleanup_text()


def test_a_new_firewalled_lb_ip_is_closed_before_ipvs_serves_it():
    """The firewall members go in the batch before the IPVS changes, accepted sources first:
    a new LB IP never serves a blocked source, nor drops an accepted one."""
    before, after = nfrules.split_around_ipvs(nfrules.ipset_delta_ops(render(st()).netfilter,
                                                                       render(st(lb(["203.0.113.0/24"]))).netfilter))
    sets = [op.set for op in before if op.cmd == "add"]
    assert sets.index(nfrules.SET_LB_SOURCE_CIDR) < sets.index(nfrules.SET_LB_FIREWALL)
    assert not [op for op in after if op.set.startswith("KUBE-IPVS-LB-")]
