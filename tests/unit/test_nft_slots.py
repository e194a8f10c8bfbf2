"""The slot ranges of the shared endpoint maps (nftables/slots.py) through many renders: ranges
never overlap, a chain keeps its range while its endpoints fit, and freed blocks are reused."""
from __future__ import annotations


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from kproxy.nftables import render as r
from kproxy.nftables.plan import plan_partial
from kproxy.nftables.slots import BLOCK, SlotAllocator, SlotsExhausted, SlotState
from tests.unit.test_nft_render import rerender


def svc(i: int, n: int, local: bool = False) -> ServicePort:
    eps = tuple(Endpoint(f"10.{100 + i}.{j // 250}.{j % 250 + 1}", 8080, is_local=j % 2 == 0) for j in range(n))
    return ServicePort("default", f"s{i}", "", "TCP", 80, cluster_ips=(f"10.96.0.{i + 1}",), endpoints=eps,
                       external_policy_local=local, node_port=30000 + i if local else 0)


def state(services) -> ProxyState:
    return ProxyState("n1", node_ips=("10.200.0.11",), cluster_cidr="10.244.0.0/16",
                      services={s.key: s for s in services})


def check(ruleset) -> None:
    used: set[int] = set()
    for frag in ruleset.fragments.values():
        for chain, first, count in frag.blocks:
            blocks = set(range(first, first + count))
            assert not blocks & used, f"{chain} overlaps another range"
            used |= blocks
            for name, elems in frag.elements.items():
                if name.startswith("endpoints-"):  # each slot in its chain's range, in that range's map
                    assert all(any(f * BLOCK <= k < (f + c) * BLOCK and name == r.endpoint_map(f)
                                   for _, f, c in frag.blocks) for (k,) in elems)
    assert 0 not in used
    assert not used & set(ruleset.slots.free)
    assert all(b < ruleset.slots.top for b in used)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 6), st.booleans()), min_size=1, max_size=25))
def test_ranges_stay_disjoint_through_changes(steps):
    services: dict[int, ServicePort] = {}
    ruleset = None
    for i, n, local in steps:
        if n == 0:
            services.pop(i, None)
        else:
            services[i] = svc(i, n, local)
        ruleset = rerender(state(services.values()), ruleset)
        check(ruleset)


def test_a_chain_keeps_its_range_while_its_endpoints_fit_and_moves_when_it_outgrows_it():
    first = r.render(state([svc(0, 3), svc(1, 2)]))
    kept = rerender(state([svc(0, 5), svc(1, 2)]), first)
    assert kept.fragments["default/s0:"].blocks == first.fragments["default/s0:"].blocks
    big = rerender(state([svc(0, BLOCK + 1), svc(1, 2)]), kept)
    (chain, block, count), = big.fragments["default/s0:"].blocks
    assert count == 2 and block >= kept.slots.top  # two fresh blocks
    assert kept.fragments["default/s0:"].blocks[0][1] in big.slots.free  # the old one is free
    check(big)
    reused = rerender(state([svc(0, BLOCK + 1), svc(1, 2), svc(2, 1)]), big)
    assert reused.fragments["default/s2:"].blocks[0][1] == kept.fragments["default/s0:"].blocks[0][1]


def test_the_allocator_refuses_when_the_32_bit_slot_space_is_full():
    alloc = SlotAllocator(SlotState((), (1 << 32) // BLOCK - 1))
    alloc.take(1)
    with pytest.raises(SlotsExhausted, match="no room"):
        alloc.take(1)


def test_every_64_chains_share_one_endpoint_map_and_maps_only_appear():
    services = [svc(i, 2) for i in range(130)]
    first = r.render(state(services[:60]))
    assert [s.name for s in first.shared_maps if s.name.startswith("endpoints-")] == ["endpoints-0"]
    second = rerender(state(services), first)
    assert [s.name for s in second.shared_maps if s.name.startswith("endpoints-")] == \
        ["endpoints-0", "endpoints-1", "endpoints-2"]
    ops = [op.description for op in plan_partial(second, first).ops]
    assert ops.index("add map endpoints-1") < min(i for i, op in enumerate(ops) if "@endpoints-1" in op)
    check(second)
