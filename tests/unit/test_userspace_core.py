"""Userspace mode without sockets: the plan and its redirect rules (pure), and the sans-IO core
(endpoint choice, retry order, affinity, UDP flow table)."""
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from kproxy.userspace.core import Balancer, Connect, GiveUp, UdpFlows
from kproxy.userspace.plan import ListenerSpec, render_plan, render_rules

NODE = "10.200.0.11"


def ep(ip: str, local: bool = True, **kw) -> Endpoint:
    return Endpoint(ip, 8080, is_local=local, node_name="n1" if local else "n2", **kw)


def sp(name: str, cip: str, eps=(), protocol: str = "TCP", **kw) -> ServicePort:
    return ServicePort("default", name, "", protocol, 80, cluster_ips=(cip,), endpoints=tuple(sorted(eps)), **kw)


def state(*services: ServicePort, node_ips=(NODE,), **kw) -> ProxyState:
    return ProxyState("n1", node_ips=node_ips, services={s.key: s for s in services}, **kw)


def nat(rules, chain="KUBE-SERVICES"):
    return rules.static[("nat", chain)]


def filt(rules, chain):
    return rules.static[("filter", chain)]


# ------------------------------------------------------------------ plan and rules


def test_cluster_ip_is_dnatted_to_the_listener_on_the_node_ip():
    plan = render_plan(state(sp("web", "10.96.0.10", [ep("10.244.1.2"), ep("10.244.1.3")])))
    (key,) = plan.listeners
    assert plan.listeners[key].endpoints == ("10.244.1.2:8080", "10.244.1.3:8080")
    rules = render_rules(plan, {key: 41000})
    assert ('-m comment --comment "default/web cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 '
            '-j DNAT --to-destination 10.200.0.11:41000') in nat(rules)
    assert nat(rules)[-1].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")


def test_without_a_node_ip_the_rules_redirect():
    plan = render_plan(state(sp("web", "10.96.0.10", [ep("10.244.1.2")]), node_ips=()))
    rules = render_rules(plan, {k: 41000 for k in plan.listeners})
    assert nat(rules)[0].endswith("-j REDIRECT --to-ports 41000")


def test_no_endpoints_rejects_and_opens_no_listener():
    plan = render_plan(state(sp("empty", "10.96.0.24", [], node_port=30083)))
    assert plan.listeners == {}
    rules = render_rules(plan, {})
    assert any("10.96.0.24" in r and r.endswith("-j REJECT") for r in filt(rules, "KUBE-SERVICES"))
    assert any("--dport 30083" in r and r.endswith("-j REJECT") for r in filt(rules, "KUBE-EXTERNAL-SERVICES"))
    assert len(nat(rules)) == 1  # only the node-ports tail


def test_local_policy_gets_its_own_listener_or_a_drop():
    svc = sp("etp", "10.96.0.21", [ep("10.244.1.2"), ep("10.244.2.2", local=False)], node_port=30081,
             external_policy_local=True)
    plan = render_plan(state(svc))
    assert {s.endpoints for s in plan.listeners.values()} == {("10.244.1.2:8080", "10.244.2.2:8080"),
                                                             ("10.244.1.2:8080",)}
    remote_only = sp("etp", "10.96.0.21", [ep("10.244.2.2", local=False)], node_port=30081,
                     external_policy_local=True)
    plan = render_plan(state(remote_only))
    assert list(plan.listeners) == ["default/etp:#internal"]
    rules = render_rules(plan, {"default/etp:#internal": 41000})
    assert any("--dport 30081" in r and r.endswith("-j DROP") for r in filt(rules, "KUBE-EXTERNAL-SERVICES"))
    # only traffic from this node is still redirected (no pod CIDR known here)
    assert nat(rules, "KUBE-NODEPORTS") == (
        '-m comment --comment "default/etp node port: node traffic" -m addrtype --src-type LOCAL -m tcp -p tcp '
        '--dport 30081 -j DNAT --to-destination 10.200.0.11:41000',)


def short_circuit_rules(rules, chain="KUBE-SERVICES"):
    return [r for r in nat(rules, chain) if ": pod traffic" in r or ": node traffic" in r]


def test_local_policy_short_circuits_pod_and_node_traffic_to_every_endpoint():
    """kube-proxy's KUBE-EXT chain: traffic to a Local-policy external frontend from the pod CIDR
    or from the node itself goes to all endpoints; only the rest is limited to local ones."""
    svc = sp("etp", "10.96.0.21", [ep("10.244.1.2"), ep("10.244.2.2", local=False)], node_port=30081,
             external_ips=("192.0.2.10",), external_policy_local=True, internal_policy_local=True)
    plan = render_plan(state(svc, cluster_cidr="10.244.0.0/16"))
    assert plan.local.cidr == "10.244.0.0/16"
    d = plan.dispatch[svc.key]
    # internal Local and external Local share the local listener; the short-circuit gets its own
    assert d.internal == d.external == "default/etp:#internal"
    assert d.short_circuit == "default/etp:#cluster"
    assert plan.listeners[d.short_circuit].endpoints == ("10.244.1.2:8080", "10.244.2.2:8080")
    ports = {d.internal: 41000, d.short_circuit: 41001}
    rules = render_rules(plan, ports)
    to_all, to_local = "--to-destination 10.200.0.11:41001", "--to-destination 10.200.0.11:41000"
    external = [r for r in nat(rules) if "192.0.2.10" in r]
    assert external == [
        '-m comment --comment "default/etp external IP: pod traffic" -s 10.244.0.0/16 -m tcp -p tcp '
        f'-d 192.0.2.10 --dport 80 -j DNAT {to_all}',
        '-m comment --comment "default/etp external IP: node traffic" -m addrtype --src-type LOCAL -m tcp -p tcp '
        f'-d 192.0.2.10 --dport 80 -j DNAT {to_all}',
        f'-m comment --comment "default/etp external IP" -m tcp -p tcp -d 192.0.2.10 --dport 80 -j DNAT {to_local}']
    assert [r.rsplit(" ", 1)[1] for r in nat(rules, "KUBE-NODEPORTS")] == ["10.200.0.11:41001"] * 2 + ["10.200.0.11:41000"]
    # no local endpoint: pod and node traffic still reaches the remote one, the rest is dropped
    remote_only = sp("etp", "10.96.0.21", [ep("10.244.2.2", local=False)], node_port=30081,
                     external_ips=("192.0.2.10",), external_policy_local=True)
    plan = render_plan(state(remote_only, cluster_cidr="10.244.0.0/16"))
    d = plan.dispatch[remote_only.key]
    assert (d.external, d.short_circuit) == ("", "default/etp:#internal")
    rules = render_rules(plan, {d.internal: 41000})
    assert len(short_circuit_rules(rules)) == 2 and len(short_circuit_rules(rules, "KUBE-NODEPORTS")) == 2
    assert any("192.0.2.10" in r and r.endswith("-j DROP") for r in filt(rules, "KUBE-EXTERNAL-SERVICES"))
    # every endpoint local: one listener, nothing to short-circuit
    all_local = sp("etp", "10.96.0.21", [ep("10.244.1.2")], node_port=30081, external_policy_local=True)
    plan = render_plan(state(all_local, cluster_cidr="10.244.0.0/16"))
    assert plan.dispatch[all_local.key].short_circuit == ""
    assert short_circuit_rules(render_rules(plan, {k: 41000 for k in plan.listeners}), "KUBE-NODEPORTS") == []


def test_short_circuit_stays_within_load_balancer_source_ranges():
    svc = ServicePort("default", "lb", "", "TCP", 80, cluster_ips=("10.96.0.50",), load_balancer_ips=("198.51.100.7",),
                      load_balancer_source_ranges=("10.244.3.0/24", "192.0.2.0/24"), external_policy_local=True,
                      endpoints=(ep("10.244.1.2"), ep("10.244.2.2", local=False)))
    plan = render_plan(state(svc, cluster_cidr="10.244.0.0/16"))
    rules = render_rules(plan, {k: 41000 + i for i, k in enumerate(sorted(plan.listeners))})
    sources = [r.split(" traffic\" ", 1)[1].split(" -m tcp")[0] for r in short_circuit_rules(rules)]
    # pods only inside an allowed range; the node only with an allowed source address
    assert sources == ["-s 10.244.3.0/24", "-s 10.244.3.0/24 -m addrtype --src-type LOCAL",
                       "-s 192.0.2.0/24 -m addrtype --src-type LOCAL"]


def test_short_circuit_follows_the_detect_local_mode():
    """detectLocalMode decides what counts as pod traffic here as in the kernel modes: the Node's
    podCIDR (NodeCIDR), or arrival on the pods' interfaces (InterfaceNamePrefix), kept within the
    LB source ranges."""
    svc = ServicePort("default", "lb", "", "TCP", 80, cluster_ips=("10.96.0.50",), load_balancer_ips=("198.51.100.7",),
                      load_balancer_source_ranges=("10.244.3.0/24",), external_policy_local=True,
                      endpoints=(ep("10.244.1.2"), ep("10.244.2.2", local=False)))

    def pod_sources(**settings):
        plan = render_plan(state(svc, cluster_cidr="10.244.0.0/16", **settings))
        rules = render_rules(plan, {k: 41000 + i for i, k in enumerate(sorted(plan.listeners))})
        return [r.split(" traffic\" ", 1)[1].split(" -m tcp")[0] for r in short_circuit_rules(rules) if ": pod" in r]

    assert pod_sources() == ["-s 10.244.3.0/24"]
    assert pod_sources(detect_local_mode="NodeCIDR", node_pod_cidrs=("10.244.1.0/24",)) == []  # outside the range
    assert pod_sources(detect_local_mode="InterfaceNamePrefix", detect_local_interface="veth") == [
        "-s 10.244.3.0/24 -i veth+"]
    assert pod_sources(detect_local_mode="BridgeInterface", detect_local_interface="cbr0") == ["-s 10.244.3.0/24 -i cbr0"]
    assert pod_sources(detect_local_mode="NodeCIDR") == []  # a Node without podCIDRs: nothing is pod traffic


def test_localhost_node_ports_follow_the_option():
    svc = sp("np", "10.96.0.20", [ep("10.244.1.2")], node_port=30080)
    on = render_rules(render_plan(state(svc)), {"default/np:#internal": 41000})
    off_plan = render_plan(state(svc), localhost_nodeports=False)
    off = render_rules(off_plan, {"default/np:#internal": 41000})
    assert nat(on)[-1].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    assert nat(off)[-1].endswith("-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS")
    listed = ProxyState("n1", node_ips=(NODE,), node_port_addresses=("10.200.0.0/24", "127.0.0.0/8"),
                        services={svc.key: svc})
    assert render_plan(listed).nodeport_ips == (NODE, "127.0.0.1")
    assert render_plan(listed, localhost_nodeports=False).nodeport_ips == (NODE,)


def test_cluster_policy_shares_one_listener_between_cluster_ip_and_node_port():
    plan = render_plan(state(sp("np", "10.96.0.20", [ep("10.244.1.2")], node_port=30080, external_ips=("192.0.2.10",))))
    assert list(plan.listeners) == ["default/np:#internal"]
    rules = render_rules(plan, {"default/np:#internal": 41000})
    assert nat(rules, "KUBE-NODEPORTS") == (
        "-m comment --comment default/np -m tcp -p tcp --dport 30080 -j DNAT --to-destination 10.200.0.11:41000",)
    assert any("-d 192.0.2.10" in r for r in nat(rules))


def test_sctp_is_not_proxied_and_terminating_fallback_is_used():
    plan = render_plan(state(sp("s", "10.96.0.40", [ep("10.244.1.2")], protocol="SCTP")))
    assert plan.listeners == {} and plan.dispatch == {}
    assert plan.skipped == (("default/s:", "userspace mode does not proxy SCTP"),)
    term = sp("t", "10.96.0.41", [ep("10.244.1.2", ready=False, serving=True, terminating=True)])
    (spec,) = render_plan(state(term)).listeners.values()
    assert spec.endpoints == spec.terminating == ("10.244.1.2:8080",)


def test_rules_need_a_port_for_every_listener():
    plan = render_plan(state(sp("web", "10.96.0.10", [ep("10.244.1.2")])))
    with pytest.raises(ValueError, match="no port"):
        render_rules(plan, {})


def test_unchanged_services_reuse_their_fragments():
    a = sp("a", "10.96.0.10", [ep("10.244.1.2")])
    b = sp("b", "10.96.0.11", [ep("10.244.1.3")])
    plan = render_plan(state(a, b))
    ports = {k: 41000 + i for i, k in enumerate(sorted(plan.listeners))}
    first = render_rules(plan, ports)
    b2 = sp("b", "10.96.0.11", [ep("10.244.1.4")])
    plan2 = render_plan(state(a, b2))
    second = render_rules(plan2, ports, first)
    assert second.fragments[a.key] is first.fragments[a.key]
    assert second.fragments[b.key].dispatch == first.fragments[b.key].dispatch  # same port
    assert second.static == first.static  # so a partial restore writes nothing
    assert plan2.listeners["default/b:#internal"].endpoints == ("10.244.1.4:8080",)
    third = render_rules(plan2, {**ports, "default/b:#internal": 42000}, second)
    assert third.fragments[b.key] is not second.fragments[b.key]


# ------------------------------------------------------------------ core

EPS = tuple(f"10.244.1.{i}:8080" for i in range(1, 6))


def test_attempt_tries_each_endpoint_once_then_gives_up():
    a = Balancer(EPS).attempt("10.200.0.2", 40000, NODE, 41000, 6, 0.0)
    seen = []
    cmd = a.start()
    while isinstance(cmd, Connect):
        seen.append(cmd.endpoint)
        cmd = a.failed()
    assert sorted(seen) == sorted(EPS)
    assert isinstance(cmd, GiveUp) and cmd.tried == tuple(seen)


def test_no_endpoints_gives_up_at_once():
    assert isinstance(Balancer(()).attempt("10.0.0.1", 1, NODE, 2, 6, 0.0).start(), GiveUp)


def test_unknown_balancer_is_refused():
    with pytest.raises(ValueError, match="unknown balancer"):
        Balancer(EPS, kind="random")


@settings(max_examples=30, deadline=None)
@given(port=st.integers(1024, 65535), kind=st.sampled_from(["maglev", "roundrobin"]))
def test_first_choice_then_rotation(port, kind):
    order = Balancer(EPS, kind=kind).order("10.200.0.2", port, NODE, 41000, 6, 0.0)
    i = EPS.index(order[0])
    assert order == list(EPS[i:] + EPS[:i])


@settings(max_examples=60, deadline=None)
@given(endpoints=st.lists(st.sampled_from(EPS), min_size=1, max_size=7), port=st.integers(1024, 65535),
       kind=st.sampled_from(["maglev", "roundrobin"]), affinity=st.sampled_from([None, 600]))
def test_attempt_connects_in_order_order(endpoints, port, kind, affinity):
    """attempt() walks exactly order()'s list (duplicates included) for the same connection."""
    expected = Balancer(tuple(endpoints), affinity, kind).order("10.200.0.2", port, NODE, 41000, 6, 0.0)
    a = Balancer(tuple(endpoints), affinity, kind).attempt("10.200.0.2", port, NODE, 41000, 6, 0.0)
    walked = []
    cmd = a.start()
    while isinstance(cmd, Connect):
        walked.append(cmd.endpoint)
        cmd = a.failed()
    assert walked == expected and cmd.tried == tuple(expected)


def test_maglev_spreads_flows_and_affinity_pins_a_client():
    b = Balancer(EPS)
    counts = Counter(b.order("10.200.0.2", p, NODE, 41000, 6, 0.0)[0] for p in range(30000, 32000))
    assert set(counts) == set(EPS) and min(counts.values()) > 250  # 2000 flows, 400 expected each
    sticky = Balancer(EPS, affinity_timeout=600)
    first = sticky.attempt("10.200.0.2", 30000, NODE, 41000, 6, 0.0)
    chosen = first.start().endpoint
    first.succeeded()
    assert {sticky.order("10.200.0.2", p, NODE, 41000, 6, 1.0)[0] for p in range(30000, 30100)} == {chosen}


def test_maglev_affinity_times_out_and_chooses_afresh():
    sticky = Balancer(EPS, affinity_timeout=10)
    first = sticky.attempt("10.200.0.2", 30000, NODE, 41000, 6, 0.0)
    chosen = first.start().endpoint
    first.succeeded()
    # idle longer than the timeout: the 5-tuple decides again, so other ports reach other endpoints
    later = {sticky.order("10.200.0.2", p, NODE, 41000, 6, 20.0)[0] for p in range(30000, 30100)}
    assert later == set(EPS) and chosen in later
    # a connection within the timeout refreshes it
    again = sticky.attempt("10.200.0.2", 30001, NODE, 41000, 6, 25.0)
    pinned = again.start().endpoint
    again.succeeded()
    assert {sticky.order("10.200.0.2", p, NODE, 41000, 6, 34.0)[0] for p in range(30000, 30050)} == {pinned}


def test_round_robin_affinity_remembers_and_times_out():
    b = Balancer(EPS, affinity_timeout=10, kind="roundrobin")
    first = b.attempt("10.200.0.2", 1, NODE, 41000, 6, 0.0)
    chosen = first.start().endpoint
    first.succeeded()
    assert all(b.order("10.200.0.2", p, NODE, 41000, 6, 5.0)[0] == chosen for p in range(10))
    b.expire_affinity(100.0)
    assert b._affinity == {}
    plain = Balancer(EPS, kind="roundrobin")
    assert [plain.order("c", 1, NODE, 1, 6, 0.0)[0] for _ in EPS] == list(EPS)


def test_udp_flows_expire_evict_and_follow_endpoint_changes():
    flows = UdpFlows(idle_timeout=30, max_flows=2)
    flows.add(("c", 1), "e1", 0.0)
    flows.add(("c", 2), "e2", 10.0)
    assert flows.get(("c", 1), 20.0).endpoint == "e1"  # refreshes c:1
    evicted = flows.add(("c", 3), "e1", 25.0)
    assert [f.client for f in evicted] == [("c", 2)]  # least recently used
    assert [f.client for f in flows.expire(45.0)] == []
    assert sorted(f.client for f in flows.expire(52.0)) == [("c", 1)]
    assert [f.client for f in flows.retain_endpoints({"e2"})] == [("c", 3)]
    assert len(flows) == 0


# ------------------------------------------------------------------ backend and daemon helpers


def test_transparent_reply_rules_insert_the_jump_once_and_clean_up():
    from kproxy.userspace.backend import TPROXY_CHAIN, TPROXY_COMMENT, transparent_cleanup, transparent_restore

    fresh = transparent_restore("*mangle\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")
    assert f"-I PREROUTING 1 -m comment --comment \"{TPROXY_COMMENT}\" -j {TPROXY_CHAIN}" in fresh
    assert "-m socket --transparent -j MARK" in fresh
    present = f":{TPROXY_CHAIN} - [0:0]\n-A PREROUTING -m comment --comment \"{TPROXY_COMMENT}\" -j {TPROXY_CHAIN}\n"
    assert "-I PREROUTING" not in transparent_restore(present)
    gone = transparent_cleanup(present)
    assert "-D PREROUTING" in gone and f"-X {TPROXY_CHAIN}" in gone
    assert transparent_cleanup("*mangle\nCOMMIT\n") == ""


def test_listener_specs_survive_the_control_protocol():
    from kproxy.userspace.daemon import spec_from_json, spec_to_json

    spec = ListenerSpec("default/a:#external", "UDP", ("10.244.1.2:53", "10.244.2.2:53"),
                        terminating=("10.244.2.2:53",), affinity_timeout=30, transparent=True,
                        local_endpoints=("10.244.1.2:53",))
    assert spec_from_json(spec_to_json(spec)) == spec


def test_daemon_answers_unknown_and_bad_requests_with_errors():
    from kproxy.userspace.daemon import Daemon

    d = Daemon(server=None)  # these requests never reach the proxy
    assert "unknown op" in d.handle({"op": "dance"})["error"]
    assert d.handle({"op": "ping"})["pid"] > 0
    assert d.handle({"op": "stop"})["stopped"] and d.stopping.is_set()


def test_load_balancer_source_ranges_and_health_check_port():
    svc = ServicePort("default", "lb", "", "TCP", 80, cluster_ips=("10.96.0.50",), load_balancer_ips=("198.51.100.7",),
                      load_balancer_source_ranges=("192.0.2.0/24",), node_port=30050, health_check_node_port=32000,
                      endpoints=(ep("10.244.1.2"),))
    plan = render_plan(state(svc))
    rules = render_rules(plan, {k: 41000 for k in plan.listeners})
    lb = [r for r in nat(rules) if "198.51.100.7" in r]
    assert lb == ['-m comment --comment "default/lb loadbalancer IP" -s 192.0.2.0/24 -m tcp -p tcp -d 198.51.100.7 '
                  '--dport 80 -j DNAT --to-destination 10.200.0.11:41000']
    assert any("198.51.100.7" in r and r.endswith("-j DROP") for r in filt(rules, "KUBE-PROXY-FIREWALL"))
    assert any("--dport 32000 -j ACCEPT" in r for r in filt(rules, "KUBE-NODEPORTS"))


def test_node_port_addresses_limit_where_node_ports_answer():
    svc = sp("np", "10.96.0.20", [ep("10.244.1.2")], node_port=30080)
    st = ProxyState("n1", node_ips=(NODE, "192.168.9.9"), node_port_addresses=("10.200.0.0/24",),
                    services={svc.key: svc})
    plan = render_plan(st)
    assert plan.nodeport_ips == (NODE,)
    tail = [r for r in nat(render_rules(plan, {k: 41000 for k in plan.listeners})) if "KUBE-NODEPORTS" in r]
    assert len(tail) == 1 and f"-d {NODE} -j KUBE-NODEPORTS" in tail[0]
