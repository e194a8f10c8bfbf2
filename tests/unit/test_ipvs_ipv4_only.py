"""IPVS mode programs IPv4 only: given a dual-stack cluster's state (IPv6 ClusterIPs, endpoints
and node addresses beside the IPv4 ones) it renders exactly what the IPv4-only cluster gives,
fully and partially, and an IPv6-only state renders nothing. Before, an IPv6-only state's
addresses reached the ipsets and the apply failed on them (inet_aton in ipvs/ipset.py), failing
the whole sync (the VM's flow table showed it with upstream's TestNodePorts/ipv6 cases)."""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from ipvs.backend import IpvsBackend
from kproxy.agent.families import IPV6, family_view
from kproxy.agent.state import changes_between
from kproxy.netns import NetNS
from tests.golden.iptables_services import dual_stack, dual_stack_state, state


def backend() -> IpvsBackend:
    return IpvsBackend(NetNS(None), SimpleNamespace(ipvs=SimpleNamespace(scheduler=""),
                                                    iptables=SimpleNamespace(backend="auto")))


def addresses_in(ruleset) -> set[str]:
    text = repr((ruleset.services, ruleset.addresses, ruleset.netfilter))
    return {a for a in ("fd00:", "2001:db8") if a in text}


def test_a_dual_stack_state_renders_as_its_ipv4_half():
    b = backend()
    dual, v4 = b.render(dual_stack_state()), b.render(state())
    assert addresses_in(dual) == set()
    assert dual == v4


def test_an_ipv6_only_state_renders_no_address():
    v6 = family_view(dual_stack_state(local_ips=("10.200.0.11", "fd00:200::11"),
                                      node_port_addresses=("fd00:200::/64",)), IPV6)
    ruleset = backend().render(v6)
    assert addresses_in(ruleset) == set()
    assert not ruleset.services and not ruleset.addresses


def test_a_partial_render_narrows_only_what_changed():
    b = backend()
    before = dual_stack_state()
    first = b.render(before)
    key = sorted(before.services)[0]
    moved = dual_stack(replace(state().services[key], cluster_ips=("10.96.0.250",)))
    after = replace(before, services={**before.services, key: moved}, revision=before.revision + 1)
    partial = b.render(after, first, changes_between(before, after))
    v4_after = replace(state(), services={**state().services, key: replace(state().services[key],
                                                                             cluster_ips=("10.96.0.250",))})
    assert partial == b.render(v4_after)
    assert "10.96.0.250" in partial.addresses
