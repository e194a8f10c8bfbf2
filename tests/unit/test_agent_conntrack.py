"""The pure conntrack cleanup plan: which entries to delete when the state changes."""
from __future__ import annotations

from kproxy.agent.conntrack import ConntrackFilter, frontends, plan_flush
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
