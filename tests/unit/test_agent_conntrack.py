"""The pure conntrack cleanup plan: which entries to delete when the state changes."""
from __future__ import annotations

from kproxy.agent.conntrack import ConntrackFilter, frontends, plan_flush
from kproxy.agent.policy import categorize
from kproxy.agent.state import Endpoint, ProxyState, ServicePort


def sp(name="dns", protocol="UDP", eps=(), node_port=0, external_ips=(), lb_ips=(), local=False):
    return ServicePort(namespace="default", name=name, port_name="p", protocol=protocol, port=53,
                       cluster_ips=("10.96.0.10",), node_port=node_port, external_ips=external_ips,
                       load_balancer_ips=lb_ips, external_policy_local=local, endpoints=tuple(eps))


def state(*ports, revision=1):
    return ProxyState(node_name="node-1", services={p.key: p for p in ports}, revision=revision)


A = Endpoint("10.244.1.2", 5353, node_name="node-1", is_local=True)
B = Endpoint("10.244.2.2", 5353, node_name="node-2")
B_UNREADY = Endpoint("10.244.2.2", 5353, ready=False, serving=False, node_name="node-2")
B_TERMINATING = Endpoint("10.244.2.2", 5353, ready=False, serving=True, terminating=True, node_name="node-2")


def test_frontends():
    p = sp(node_port=30053, external_ips=("192.0.2.1",), lb_ips=("198.51.100.1",))
    assert frontends(p) == [("10.96.0.10", 53), ("192.0.2.1", 53), ("198.51.100.1", 53), (None, 30053)]


def test_removed_endpoint_flushed_for_every_frontend():
    before = state(sp(eps=[A, B], node_port=30053))
    after = state(sp(eps=[A], node_port=30053), revision=2)
    assert plan_flush(before, after) == (
        ConntrackFilter("udp", None, 30053, "10.244.2.2", 5353),
        ConntrackFilter("udp", "10.96.0.10", 53, "10.244.2.2", 5353),
    )


def test_endpoint_turning_unready_is_flushed():
    assert plan_flush(state(sp(eps=[A, B])), state(sp(eps=[A, B_UNREADY]))) == (
        ConntrackFilter("udp", "10.96.0.10", 53, "10.244.2.2", 5353),)


def test_empty_to_nonempty_flushes_frontends():
    assert plan_flush(state(sp(eps=[B_UNREADY])), state(sp(eps=[B]))) == (
        ConntrackFilter("udp", "10.96.0.10", 53),)
    # a new Service with endpoints: its address may hold entries from before it had rules
    assert plan_flush(state(), state(sp(eps=[A]))) == (ConntrackFilter("udp", "10.96.0.10", 53),)
    assert plan_flush(None, state(sp(eps=[A]))) == (ConntrackFilter("udp", "10.96.0.10", 53),)


def test_deleted_service_flushes_its_endpoints():
    assert plan_flush(state(sp(eps=[A])), state()) == (ConntrackFilter("udp", "10.96.0.10", 53, "10.244.1.2", 5353),)


def test_no_flush_when_nothing_relevant_changed():
    assert plan_flush(state(sp(eps=[A])), state(sp(eps=[A, B]))) == ()  # added endpoint, not from empty
    assert plan_flush(state(sp(eps=[])), state(sp(eps=[]))) == ()
    assert plan_flush(state(sp(protocol="TCP", eps=[A, B])), state(sp(protocol="TCP", eps=[A]))) == ()


def test_terminating_fallback_counts_as_serving():
    # only a serving-terminating endpoint left: traffic still goes there, so it is not stale
    assert plan_flush(state(sp(eps=[B_TERMINATING])), state(sp(eps=[B_TERMINATING]))) == ()
    assert plan_flush(state(sp(eps=[])), state(sp(eps=[B_TERMINATING]))) == (ConntrackFilter("udp", "10.96.0.10", 53),)


def test_keys_limit_the_work():
    other = sp(name="other", eps=[])
    before = state(sp(eps=[A]), other)
    after = state(sp(eps=[]), sp(name="other", eps=[B]))
    assert plan_flush(before, after, keys={"default/other:p"}) == (ConntrackFilter("udp", "10.96.0.10", 53),)
    assert len(plan_flush(before, after)) == 2


def test_sctp_and_argv():
    (f,) = plan_flush(state(sp(protocol="SCTP", eps=[A])), state(sp(protocol="SCTP", eps=[])))
    assert f.argv() == ["conntrack", "-D", "-f", "ipv4", "-p", "sctp", "--orig-dst", "10.96.0.10",
                        "--orig-port-dst", "53", "--reply-src", "10.244.1.2", "--reply-port-src", "5353"]
    assert ConntrackFilter("udp", None, 30053).argv() == ["conntrack", "-D", "-f", "ipv4", "-p", "udp",
                                                          "--orig-port-dst", "30053"]
    assert ConntrackFilter("udp", "fd00::1", 53).argv()[3] == "ipv6"


# ------------------------------------------------------------------ properties

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

endpoint_st = st.builds(
    lambda ip, ready, serving, terminating: Endpoint(ip, 5353, ready=ready, serving=serving, terminating=terminating),
    st.sampled_from(["10.244.1.1", "10.244.1.2", "10.244.2.1"]), st.booleans(), st.booleans(), st.booleans(),
)
port_st = st.one_of(st.none(), st.builds(
    lambda proto, eps, node_port: sp(protocol=proto, eps=sorted({(e.ip, e.port): e for e in eps}.values()),
                                     node_port=node_port),
    st.sampled_from(["UDP", "TCP", "SCTP"]), st.lists(endpoint_st, max_size=3), st.sampled_from([0, 30053]),
))


@settings(max_examples=300, deadline=None)
@given(port_st, port_st)
def test_plan_properties(old, new):
    before = state(*([old] if old else []))
    after = state(*([new] if new else []), revision=2)
    plan = plan_flush(before, after)
    udp_old = old if old and old.protocol != "TCP" else None
    udp_new = new if new and new.protocol != "TCP" else None
    same = udp_old and udp_new and udp_old.protocol == udp_new.protocol
    old_eps = {(e.ip, e.port) for e in (categorize(udp_old).internal if udp_old else ())}
    new_eps = {(e.ip, e.port) for e in (categorize(udp_new).internal if udp_new else ())}
    assert all(f.protocol != "tcp" for f in plan)
    # exactly the endpoints that stopped serving (in the same protocol) are flushed, for every old frontend
    by_endpoint = {(f.reply_src, f.reply_port) for f in plan if f.reply_src}
    stale = old_eps - (new_eps if same else set())
    assert by_endpoint == stale
    for ep in stale:
        assert {(f.orig_dst, f.orig_port) for f in plan if (f.reply_src, f.reply_port) == ep} == set(frontends(udp_old))
    # frontend-wide flushes happen exactly when usable endpoints appear from none
    wide = {(f.orig_dst, f.orig_port) for f in plan if not f.reply_src}
    appeared = bool(new_eps) and not (old_eps if same else set())
    assert bool(wide) == appeared
    if appeared:
        assert wide == set(frontends(udp_new))


# -- TCP: connection attempts older than the rules ---------------------------------------------

def syn_sent(src: str, dst: str, sport: int, dport: int, reply_src: str, reply_sport: int, state: int = 1):
    from kproxy.netlink.conntrack import Entry, Tuple
    return Entry("ipv4", "tcp", Tuple(src, dst, sport, dport), Tuple(reply_src, src, reply_sport, sport), state)


ATTEMPTS = [
    syn_sent("10.200.0.2", "10.96.0.10", 38884, 53, "10.96.0.10", 53),
    syn_sent("10.200.0.2", "10.96.0.10", 38886, 53, "10.244.2.2", 5353),  # translated: a live attempt
    syn_sent("10.200.0.2", "10.96.0.99", 40000, 53, "10.96.0.99", 53),
    syn_sent("10.200.0.2", "10.200.0.11", 40002, 30053, "10.200.0.11", 30053),
    syn_sent("10.200.0.2", "10.96.0.10", 38890, 53, "10.96.0.10", 53, state=3),  # established: answered
]


def test_tcp_service_gaining_its_first_endpoint_names_its_frontends():
    from kproxy.agent.conntrack import plan_unanswered

    tcp = sp(protocol="TCP", eps=[], node_port=30053)
    assert plan_unanswered(state(tcp), state(sp(protocol="TCP", eps=[A], node_port=30053))) == {
        ("10.96.0.10", 53), (None, 30053)}
    assert plan_unanswered(None, state(sp(protocol="TCP", eps=[A]))) == {("10.96.0.10", 53)}  # agent start
    # already served, no endpoint yet, or not TCP: nothing
    assert plan_unanswered(state(sp(protocol="TCP", eps=[A])), state(sp(protocol="TCP", eps=[A, B]))) == frozenset()
    assert plan_unanswered(None, state(tcp)) == frozenset()
    assert plan_unanswered(None, state(sp(protocol="UDP", eps=[A]))) == frozenset()
    # keys limit the work
    assert plan_unanswered(None, state(sp(protocol="TCP", eps=[A])), keys=[]) == frozenset()


def test_only_untranslated_attempts_to_wanted_frontends_are_chosen():
    from kproxy.agent.conntrack import untranslated_attempts

    wanted = frozenset({("10.96.0.10", 53), (None, 30053)})
    assert untranslated_attempts(ATTEMPTS, wanted) == [
        ATTEMPTS[0],  # routed before the rules: stuck
        ATTEMPTS[3],  # a NodePort on any address
    ]  # 38886 was translated (to 10.244.2.2): a live attempt, kept; 10.96.0.99 is not wanted
    assert untranslated_attempts(ATTEMPTS, frozenset()) == []


def test_a_filter_matches_what_its_conntrack_command_deletes():
    from kproxy.netlink.conntrack import Entry, Tuple

    dnat = Entry("ipv4", "udp", Tuple("10.0.0.5", "10.96.0.10", 4000, 53), Tuple("10.244.1.2", "10.0.0.5", 5353, 4000))
    assert ConntrackFilter("udp", "10.96.0.10", 53, "10.244.1.2", 5353).matches(dnat)
    assert ConntrackFilter("udp", "10.96.0.10", 53).matches(dnat)
    assert ConntrackFilter("udp", None, 53).matches(dnat)  # a NodePort: any destination
    assert not ConntrackFilter("udp", "10.96.0.10", 53, "10.244.1.3", 5353).matches(dnat)
    assert not ConntrackFilter("udp", "10.96.0.10", 53, "10.244.1.2", 5354).matches(dnat)
    assert not ConntrackFilter("sctp", "10.96.0.10", 53).matches(dnat)
    assert not ConntrackFilter("udp", "10.96.0.11", 53).matches(dnat)
    assert not ConntrackFilter("udp", "fd00::10", 53).matches(dnat)  # another family


def test_dual_stack_service_is_planned_per_family():
    from kproxy.agent.state import Endpoint, ProxyState, ServicePort

    def dual(eps):
        return ServicePort("default", "dns", "", "UDP", 53, cluster_ips=("10.96.0.10", "fd00:10:96::a"), node_port=30053,
                           endpoints=tuple(sorted(eps)))

    v4, v6 = Endpoint("10.244.1.2", 5353), Endpoint("fd00:10:244:1::2", 5353)
    before = ProxyState("n1", services={"default/dns:": dual([])})
    after = ProxyState("n1", services={"default/dns:": dual([v4, v6])})
    # newly served in both families: each family's frontends, the NodePort's in each family
    assert {(f.family, f.orig_dst, f.orig_port) for f in plan_flush(before, after)} == {
        ("ipv4", "10.96.0.10", 53), ("ipv6", "fd00:10:96::a", 53), ("ipv4", None, 30053), ("ipv6", None, 30053)}
    # the IPv6 endpoint leaves: flushed from the IPv6 frontends only
    gone = ProxyState("n1", services={"default/dns:": dual([v4])})
    assert {(f.family, f.orig_dst, f.reply_src) for f in plan_flush(after, gone)} == {
        ("ipv6", "fd00:10:96::a", "fd00:10:244:1::2"), ("ipv6", None, "fd00:10:244:1::2")}
