"""nftables/fake.py applies Transactions as the kernel would and refuses what the kernel refuses;
with it, every plan is checked as data: a full plan of A then a partial plan A -> B leaves the
table a full plan of B leaves."""
from __future__ import annotations

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kproxy.agent.state import Endpoint, ProxyState, ServicePort, changes_between
from kproxy.nftables.expr import in_set, rule, verdict
from kproxy.nftables.fake import FakeError, FakeTable
from kproxy.nftables.model import Chain, Ruleset, SetSpec
from kproxy.nftables.plan import plan_full, plan_partial
from kproxy.nftables.render import render
from kproxy.nftables.transaction import ADD_RULE, Transaction

VMAP = SetSpec("dispatch", ("ipv4_addr",), verdict_map=True)
IPS = SetSpec("ips", ("ipv4_addr",))


def table(*build) -> FakeTable:
    fake = FakeTable()
    tx = Transaction()
    tx.add_table()
    for step in build:
        step(tx)
    fake.apply(tx)
    return fake


def refused(fake: FakeTable, *build) -> FakeError:
    before = fake.state()
    tx = Transaction()
    for step in build:
        step(tx)
    with pytest.raises(FakeError) as caught:
        fake.apply(tx)
    assert fake.state() == before  # the whole transaction failed, not a prefix of it
    return caught.value


def test_operations_are_data():
    tx = Transaction()
    tx.add_chain(Chain("a"))
    tx.add_rule("a", rule(verdict("jump", "b")))
    tx.add_elements(VMAP, {("10.0.0.1",): ("goto", "a")})
    assert [(op.kind, op.object) for op in tx.ops] == [("add chain", "a"), (ADD_RULE, "a"), ("add element", "dispatch")]
    assert tx.ops[2].elements == ((("10.0.0.1",), ("goto", "a")),) and tx.ops[2].spec is VMAP
    assert tx.ops[1].description == "add rule a jump b"


def test_a_rule_jumping_to_a_missing_chain_fails_the_whole_transaction():
    fake = table(lambda tx: tx.add_chain(Chain("a")))
    error = refused(fake, lambda tx: tx.add_chain(Chain("b")), lambda tx: tx.add_rule("a", rule(verdict("jump", "c"))))
    assert error.errno == errno.ENOENT and "missing chain c" in str(error)
    assert "b" not in fake.chains


def test_elements_for_a_missing_map_and_verdicts_to_missing_chains_are_refused():
    fake = table(lambda tx: tx.add_chain(Chain("a")))
    assert refused(fake, lambda tx: tx.add_elements(VMAP, {("10.0.0.1",): ("goto", "a")})).errno == errno.ENOENT
    fake = table(lambda tx: tx.add_set(VMAP))
    error = refused(fake, lambda tx: tx.add_elements(VMAP, {("10.0.0.1",): ("goto", "gone")}))
    assert "missing chain gone" in str(error)


def test_lookups_need_their_set_and_used_sets_and_chains_cannot_be_deleted():
    fake = table(lambda tx: tx.add_chain(Chain("a")))
    assert "missing set ips" in str(refused(fake, lambda tx: tx.add_rule("a", rule(in_set("ips"), verdict("drop")))))
    fake = table(lambda tx: tx.add_set(IPS), lambda tx: tx.add_set(VMAP), lambda tx: tx.add_chain(Chain("a")),
                 lambda tx: tx.add_chain(Chain("b")), lambda tx: tx.add_rule("a", rule(in_set("ips"), verdict("drop"))),
                 lambda tx: tx.add_elements(VMAP, {("10.0.0.1",): ("goto", "b")}))
    assert refused(fake, lambda tx: tx.delete_set("ips")).errno == errno.EBUSY
    assert refused(fake, lambda tx: tx.delete_chain("a")).errno == errno.EBUSY  # it has rules
    assert "element of map dispatch" in str(refused(fake, lambda tx: tx.delete_chain("b")))
    fake.apply(_tx(lambda tx: tx.flush_set("dispatch"), lambda tx: tx.delete_chain("b")))
    assert "b" not in fake.chains


def test_element_values_and_set_kinds_are_checked():
    fake = table(lambda tx: tx.add_chain(Chain("a")), lambda tx: tx.add_chain(Chain("b")), lambda tx: tx.add_set(VMAP),
                 lambda tx: tx.add_elements(VMAP, {("10.0.0.1",): ("goto", "a")}))
    assert refused(fake, lambda tx: tx.add_elements(VMAP, {("10.0.0.1",): ("goto", "b")})).errno == errno.EEXIST
    assert refused(fake, lambda tx: tx.delete_elements(VMAP, [("10.0.0.9",)])).errno == errno.ENOENT
    assert refused(fake, lambda tx: tx.add_set(SetSpec("dispatch", ("mark",)))).errno == errno.EEXIST
    fake.apply(_tx(lambda tx: tx.add_elements(VMAP, {("10.0.0.1",): ("goto", "a")})))  # the same again: fine


def _tx(*build) -> Transaction:
    tx = Transaction()
    for step in build:
        step(tx)
    return tx


# ---------------------------------------------------------------- plans against the fake

NODE = "10.200.0.11"
endpoints = st.lists(st.builds(Endpoint, ip=st.sampled_from([f"10.244.0.{i}" for i in range(1, 7)]),
                               port=st.sampled_from([8080, 9090]), ready=st.booleans(), serving=st.booleans(),
                               terminating=st.booleans(), is_local=st.booleans()),
                     max_size=5, unique_by=lambda e: (e.ip, e.port)).map(lambda eps: tuple(sorted(eps)))


@st.composite
def service_port(draw, index: int) -> ServicePort:
    return ServicePort(
        "default", f"s{index}", draw(st.sampled_from(["", "http"])), draw(st.sampled_from(["TCP", "UDP"])),
        draw(st.sampled_from([80, 443])), cluster_ips=(f"10.96.0.{index + 1}",),
        node_port=draw(st.sampled_from([0, 30000 + index])),
        external_ips=draw(st.sampled_from([(), (f"192.0.2.{index + 1}",)])),
        load_balancer_ips=draw(st.sampled_from([(), (f"198.51.100.{index + 1}",)])),
        load_balancer_source_ranges=draw(st.sampled_from([(), ("203.0.113.0/24",)])),
        session_affinity_timeout=draw(st.sampled_from([None, 10800])),
        external_policy_local=draw(st.booleans()), internal_policy_local=draw(st.booleans()),
        endpoints=draw(endpoints))


@st.composite
def proxy_states(draw) -> ProxyState:
    services = [draw(service_port(i)) for i in range(6) if draw(st.booleans())]
    return ProxyState("n1", node_ips=(NODE,), cluster_cidr="10.244.0.0/16",
                      masquerade_all=draw(st.booleans()), services={s.key: s for s in services})


def desired(ruleset: Ruleset) -> tuple:
    """What a table holding exactly `ruleset` looks like in the fake."""
    return (True, {n: tuple(c.rules) for n, c in ruleset.chains.items()},
            {n: c.hook for n, c in ruleset.chains.items()}, dict(ruleset.sets),
            {n: dict.fromkeys(ruleset.elements.get(n, {})) if not s.is_map else dict(ruleset.elements.get(n, {}))
             for n, s in ruleset.sets.items() if not s.dynamic})


def full_sync(fake: FakeTable, ruleset: Ruleset) -> None:
    fake.apply(plan_full(ruleset, list(fake.chains), list(fake.sets)))


@settings(max_examples=150, deadline=None)
@given(proxy_states(), proxy_states(), st.sampled_from(["random", "maglev"]))
def test_a_full_plan_then_a_partial_plan_equals_a_full_plan_of_the_result(a, b, selection):
    first = render(a, endpoint_selection=selection)
    second = render(b, first, changes_between(a, b), endpoint_selection=selection)
    step = FakeTable()
    full_sync(step, first)
    assert step.state() == desired(first)
    step.apply(plan_partial(second, first))
    fresh = FakeTable()
    full_sync(fresh, second)
    assert step.state() == fresh.state() == desired(second)
    full_sync(step, second)  # a periodic full resync over it changes nothing and is accepted
    assert step.state() == fresh.state()
