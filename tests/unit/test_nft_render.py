"""Pure rendering and sync planning of the nftables model (no kernel)."""
from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from kproxy.agent.state import Changes, Endpoint, ProxyState, ServicePort
from kproxy.nftables import render as r
from kproxy.nftables.plan import ElementOwners, plan_full, plan_partial

NODE = "10.200.0.11"


def ep(ip: str, local: bool = False, **kw) -> Endpoint:
    return Endpoint(ip, 8080, is_local=local, **kw)


def svc(name: str, ip: str, eps=(), **kw) -> ServicePort:
    return ServicePort("default", name, "", kw.pop("protocol", "TCP"), kw.pop("port", 80), cluster_ips=(ip,),
                       endpoints=tuple(sorted(eps)), **kw)


def state(*services: ServicePort, **kw) -> ProxyState:
    kw.setdefault("cluster_cidr", "10.244.0.0/16")
    return ProxyState("n1", node_ips=(NODE,), services={s.key: s for s in services}, **kw)


def rerender(st: ProxyState, previous: r.Ruleset | None, **kw) -> r.Ruleset:
    """r.render of `st` from `previous`, told what changed as the tracker would tell it."""
    if previous is None:
        return r.render(st, **kw)
    old = {k: f.service for k, f in previous.fragments.items()}
    changed = frozenset(k for k in old.keys() | st.services.keys() if old.get(k) != st.services.get(k))
    return r.render(st, previous, Changes(full=False, services=changed), **kw)


def elements(ruleset, name):
    return dict(ruleset.elements[name])


def test_cluster_ip_dispatch_goes_to_the_service_chain_and_balances_over_ready_endpoints():
    sp = svc("web", "10.96.0.10", [ep("10.244.1.2"), ep("10.244.1.3"), ep("10.244.1.4", ready=False)])
    rs = r.render(state(sp))
    chain = f"service-{r.chain_base(sp)}"
    assert elements(rs, r.SERVICE_IPS) == {("10.96.0.10", "TCP", 80): ("goto", chain)}
    assert [rule.text for rule in rs.chains[chain].rules] == [
        "ip daddr 10.96.0.10 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
        "meta l4proto tcp dnat ip to numgen random mod 2 offset 4096 map @endpoints-0"]
    # endpoints are data in the shared map (slot -> address . port), in the chain's slot range:
    # no per-endpoint chain, no verdict to change, no set per Service
    assert elements(rs, "endpoints-0") == {(4096,): ("10.244.1.2", 8080), (4097,): ("10.244.1.3", 8080)}
    assert rs.fragments[sp.key].blocks == ((chain, 1, 1),)
    assert set(rs.sets) == set(r.SHARED_MAPS) | {"endpoints-0"}  # chains 1..63 share map 0
    assert not any(name.startswith("endpoint-") for name in rs.chains)
    assert elements(rs, r.NO_ENDPOINT_SERVICES) == {}
    # hairpin: each endpoint reaching itself is masqueraded after DNAT
    assert elements(rs, r.HAIRPIN) == {("10.244.1.2", "10.244.1.2"): None, ("10.244.1.3", "10.244.1.3"): None}
    assert [x.text for x in rs.chains["nat-postrouting"].rules] == [
        "ip saddr . ip daddr @hairpin jump mark-for-masquerade", "jump masquerading"]


def test_no_endpoints_rejects_and_local_policy_without_local_endpoints_drops():
    empty = svc("empty", "10.96.0.11", node_port=30001)
    local = svc("local", "10.96.0.12", [ep("10.244.2.2")], node_port=30002, external_policy_local=True)
    rs = r.render(state(empty, local))
    assert elements(rs, r.NO_ENDPOINT_SERVICES) == {("10.96.0.11", "TCP", 80): ("goto", r.REJECT_CHAIN)}
    assert elements(rs, r.NO_ENDPOINT_NODEPORTS) == {("TCP", 30001): ("goto", r.REJECT_CHAIN),
                                                     ("TCP", 30002): ("drop", None)}
    # the cluster IP of the Local-policy Service still works (internal policy is Cluster)
    assert ("10.96.0.12", "TCP", 80) in elements(rs, r.SERVICE_IPS)


def test_masquerade_all_and_unknown_cluster_cidr():
    sp = svc("web", "10.96.0.10", [ep("10.244.1.2")])
    first = r.render(state(sp, masquerade_all=True)).chains[f"service-{r.chain_base(sp)}"].rules[0]
    assert first.text == "ip daddr 10.96.0.10 jump mark-for-masquerade"
    rules = r.render(state(sp, cluster_cidr=None)).chains[f"service-{r.chain_base(sp)}"].rules
    assert [x.text for x in rules][0].startswith("meta l4proto tcp dnat ip to numgen")


def test_session_affinity_declares_dynamic_sets_checked_before_balancing():
    sp = svc("sticky", "10.96.0.10", [ep("10.244.1.2")], session_affinity_timeout=10800)
    rs = r.render(state(sp))
    base = r.chain_base(sp)
    aff = f"affinity-{base}__10.244.1.2/8080"
    assert rs.sets[aff].dynamic and rs.sets[aff].timeout == 10800
    assert aff not in rs.elements  # the kernel fills it
    texts = [x.text for x in rs.chains[f"service-{base}"].rules]
    assert texts[1] == f"ip saddr @{aff} goto endpoint-{base}__10.244.1.2/8080"
    assert f"update @{aff} {{ ip saddr timeout 3h }}" in [x.text for x in rs.chains[f"endpoint-{base}__10.244.1.2/8080"].rules]


def test_load_balancer_source_ranges_get_a_firewall_chain():
    sp = svc("lb", "10.96.0.10", [ep("10.244.1.2")], load_balancer_ips=("192.0.2.5",),
             load_balancer_source_ranges=("203.0.113.0/24",))
    rs = r.render(state(sp))
    fw = f"firewall-{r.chain_base(sp)}"
    assert elements(rs, r.FIREWALL_IPS) == {("192.0.2.5", "TCP", 80): ("goto", fw)}
    assert [x.text for x in rs.chains[fw].rules] == ["ip saddr 203.0.113.0/24 return", "drop"]


def test_nodeport_addresses_restrict_the_nodeport_jump():
    rs = r.render(state(svc("np", "10.96.0.10", [ep("10.244.1.2")], node_port=30080),
                        node_port_addresses=("10.200.0.0/24",)))
    assert [x.text for x in rs.chains[r.SERVICES].rules][1:] == [f"ip daddr {NODE} jump nodeports"]


def test_render_is_deterministic_and_reuses_unchanged_fragments():
    a, b = svc("a", "10.96.0.1", [ep("10.244.1.2")]), svc("b", "10.96.0.2", [ep("10.244.1.3")])
    first = r.render(state(a, b))
    assert r.render(state(a, b)).text() == first.text()
    second = rerender(state(a, replace(b, port=81)), first)
    assert second.fragments[a.key] is first.fragments[a.key]
    assert second.fragments[b.key] is not first.fragments[b.key]


def test_partial_plan_touches_only_the_changed_service():
    services = [svc(f"s{i}", f"10.96.0.{i}", [ep(f"10.244.1.{i}")]) for i in range(1, 50)]
    first = r.render(state(*services))
    changed = replace(services[10], endpoints=(ep("10.244.1.11"), ep("10.244.9.9")))
    second = rerender(state(*services[:10], changed, *services[11:]), first)
    ops = [op.description for op in plan_partial(second, first).ops]
    base = r.chain_base(changed)
    (_, block, _), = second.fragments[changed.key].blocks
    first_slot = block * 4096
    assert ops == [f"flush chain service-{base}",
                   f"add rule service-{base} ip daddr 10.96.0.11 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
                   f"add rule service-{base} meta l4proto tcp dnat ip to numgen random mod 2 offset {first_slot} map "
                   f"@endpoints-0",
                   f"add element {r.HAIRPIN} {{ 10.244.9.9 . 10.244.9.9 }}",
                   f"add element endpoints-0 {{ {first_slot + 1} }}"], ops


def test_partial_plan_of_a_replaced_endpoint_only_changes_elements():
    """The common change (a pod replaced by another): no chain or rule, so the kernel commits it
    without re-validating the table's chain graph."""
    services = [svc(f"s{i}", f"10.96.0.{i}", [ep(f"10.244.1.{i}"), ep(f"10.244.2.{i}")]) for i in range(1, 20)]
    first = r.render(state(*services))
    changed = replace(services[5], endpoints=(ep("10.244.1.6"), ep("10.244.9.9")))
    second = rerender(state(*services[:5], changed, *services[6:]), first)
    ops = [op.description for op in plan_partial(second, first).ops]
    assert second.fragments[changed.key].blocks == first.fragments[changed.key].blocks  # same slots
    (_, block, _), = second.fragments[changed.key].blocks
    assert ops == [f"delete element {r.HAIRPIN} {{ 10.244.2.6 . 10.244.2.6 }}",
                   f"add element {r.HAIRPIN} {{ 10.244.9.9 . 10.244.9.9 }}",
                   f"delete element endpoints-0 {{ {block * 4096 + 1} }}", f"add element endpoints-0 {{ {block * 4096 + 1} }}"], ops


def test_hairpin_elements_shared_by_two_services_stay_until_the_last_holder_goes():
    a = svc("a", "10.96.0.1", [ep("10.244.1.2")])
    b = svc("b", "10.96.0.2", [ep("10.244.1.2")])
    first = r.render(state(a, b))
    owners = ElementOwners.of(first)
    assert owners.counts[r.HAIRPIN] == {("10.244.1.2", "10.244.1.2"): 2}
    second = rerender(state(a, replace(b, endpoints=(ep("10.244.1.3"),))), first)
    tx = plan_partial(second, first, owners)
    ops = [op.description for op in tx.ops]
    assert f"add element {r.HAIRPIN} {{ 10.244.1.3 . 10.244.1.3 }}" in ops
    assert not any("delete element hairpin" in op for op in ops), ops  # a still holds it
    owners.apply(tx.owner_delta)
    third = rerender(state(replace(b, endpoints=(ep("10.244.1.3"),))), second)
    ops = [op.description for op in plan_partial(third, second, owners).ops]
    assert f"delete element {r.HAIRPIN} {{ 10.244.1.2 . 10.244.1.2 }}" in ops
    # without a kept count, plan_partial counts the holders in `previous`: the same answer
    assert [op.description for op in plan_partial(second, first).ops] == [op.description for op in tx.ops]


def test_partial_plan_of_a_removed_service_deletes_after_dereferencing():
    a, b = svc("a", "10.96.0.1", [ep("10.244.1.2")]), svc("b", "10.96.0.2", [ep("10.244.1.3")])
    first = r.render(state(a, b))
    second = rerender(state(a), first)
    ops = [op.description for op in plan_partial(second, first).ops]
    base = r.chain_base(b)
    delete_chain = ops.index(f"delete chain service-{base}")
    assert ops.index(f"flush chain service-{base}") < delete_chain
    assert ops.index(f"delete element {r.SERVICE_IPS} {{ 10.96.0.2 . tcp . 80 }}") < delete_chain
    assert ops.index("delete element endpoints-0 { 8192 }") < delete_chain
    assert plan_partial(second, second).ops == []
    assert second.slots.free == (2,)  # its slots are free again for the next Service
    third = rerender(state(a, svc("c", "10.96.0.3", [ep("10.244.1.4")])), second)
    assert third.fragments["default/c:"].blocks == ((f"service-{r.chain_base(third.fragments['default/c:'].service)}", 2, 1),)


def test_full_plan_rewrites_everything_keeps_affinity_entries_and_removes_stale_objects():
    sp = svc("sticky", "10.96.0.10", [ep("10.244.1.2")], session_affinity_timeout=60)
    rs = r.render(state(sp))
    aff = f"affinity-{r.chain_base(sp)}__10.244.1.2/8080"
    ops = [op.description for op in plan_full(rs, [r.SERVICES, "old-chain"], [r.SERVICE_IPS, aff, "old-set"]).ops]
    assert ops[0] == "add table ip kproxy"
    assert f"flush chain {r.SERVICES}" in ops and f"flush set {r.SERVICE_IPS}" in ops
    assert f"flush set {aff}" not in ops
    assert ops[-3:] == ["flush set old-set", "delete set old-set", "delete chain old-chain"]


def test_maglev_selection_fills_the_table_from_the_maglev_permutation():
    sp = svc("m", "10.96.0.10", [ep(f"10.244.1.{i}") for i in range(2, 7)])
    rs = r.render(state(sp), endpoint_selection="maglev")
    chain = f"service-{r.chain_base(sp)}"
    slots = elements(rs, "endpoints-0")
    assert sorted(k for (k,) in slots) == list(range(4096, 4096 + r.MAGLEV_TABLE_SIZE))
    counts = {}
    for address in slots.values():
        counts[address] = counts.get(address, 0) + 1
    assert len(counts) == 5 and max(counts.values()) - min(counts.values()) <= 2
    assert rs.chains[chain].rules[-1].text == (
        f"dnat ip to jhash ip saddr . tcp sport mod {r.MAGLEV_TABLE_SIZE} seed {r.MAGLEV_SEED:#x} offset 4096 "
        "map @endpoints-0")
    with pytest.raises(ValueError, match="endpoint selection"):
        r.render(state(sp), endpoint_selection="round-robin")


def test_endpoint_selection_comes_from_the_config_and_a_bad_one_is_refused():
    from types import SimpleNamespace

    from kproxy.agent.backend import BackendUnavailable
    from kproxy.agent.config import AgentConfig
    from kproxy.nftables.backend import endpoint_selection

    assert endpoint_selection(AgentConfig(mode="nftables")) == "random"  # no such field yet: the default
    assert endpoint_selection(SimpleNamespace(nftables=SimpleNamespace(endpoint_selection="maglev"))) == "maglev"
    with pytest.raises(BackendUnavailable, match="endpointSelection 'rr'"):
        endpoint_selection(SimpleNamespace(nftables=SimpleNamespace(endpoint_selection="rr")))


def test_a_map_that_changes_kind_is_deleted_before_it_is_declared_again():
    from kproxy.nftables.model import Chain, Fragment, Ruleset, SetSpec
    from kproxy.nftables import expr as x

    def ruleset(spec: SetSpec, value) -> Ruleset:
        chain = Chain("c", (x.rule(x.numgen_vmap(1, "m")),))
        frag = Fragment("svc", (chain,), (spec,), MappingProxyType({"m": MappingProxyType({(0,): value})}), ())
        return Ruleset((), (), MappingProxyType({"k": frag}))
    first = ruleset(SetSpec("m", ("mark",), data=r.ENDPOINT_VALUE), ("10.0.0.1", 80))
    second = ruleset(SetSpec("m", ("mark",), verdict_map=True), ("goto", "c"))
    ops = [op.description for op in plan_partial(second, replace(first, token=object())).ops]
    assert ops.index("flush chain c") < ops.index("delete set m") < ops.index("add map m")
    assert ops.index("add map m") < ops.index("add element m { 0 }")


def test_the_keys_render_reports_as_changed_give_the_same_plan_as_comparing_every_fragment():
    services = [svc(f"s{i}", f"10.96.0.{i}", [ep(f"10.244.1.{i}")]) for i in range(1, 30)]
    first = r.render(state(*services))
    edited = [replace(services[3], port=81), *services[4:20], svc("new", "10.96.1.1", [ep("10.244.3.3")])]
    second = rerender(state(*services[:3], *edited), first)
    assert second.base is first.token
    assert second.changed == {services[3].key, edited[-1].key, *(s.key for s in services[20:])}
    fast = [op.description for op in plan_partial(second, first).ops]
    unrelated = replace(first, token=object())  # same value, another identity: every fragment compared
    assert [op.description for op in plan_partial(second, unrelated).ops] == fast


def test_the_generation_after_a_commit_skips_zero():
    from kproxy.nftables.backend import next_generation
    assert next_generation(7) == 8 and next_generation(0xFFFFFFFF) == 1
