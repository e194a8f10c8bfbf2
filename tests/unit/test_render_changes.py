"""A render told what changed (`render(state, previous, changes)`) gives what a render from scratch
gives: the tracker's Changes are the one source of truth for what a renderer may reuse.

For every two states A and B: rendering B from A's ruleset with the Changes A -> B (the keys
that differ, plus any keys that did not: naming too many only costs time) equals rendering B
from nothing. iptables and ipvs rulesets are then equal values; an nftables ruleset also records
where each balancing chain's endpoint slots lie, which depends on the history (a chain keeps its
range while its endpoints fit), so there every fragment must be what a fresh render of its
ServicePort gives at the fragment's own slots, and the slot bookkeeping must account for every
block exactly once.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kproxy.agent.state import Changes, changes_between
from kproxy.iptables.render import render as render_iptables
from kproxy.ipvs.render import RenderOptions as IpvsOptions
from kproxy.ipvs.render import render as render_ipvs
from kproxy.nftables import render as nft
from kproxy.nftables.slots import SlotAllocator
from tests.unit.test_nft_fake import proxy_states


@st.composite
def told_changes(draw, a, b) -> Changes:
    """The Changes A -> B, with some unchanged keys named too (a caller may over-report)."""
    exact = changes_between(a, b)
    keys = sorted(a.services.keys() | b.services.keys())
    extra = draw(st.sets(st.sampled_from(keys))) if keys else set()
    return Changes(full=exact.full, services=exact.services | frozenset(extra))


@settings(max_examples=100, deadline=None)
@given(proxy_states(), proxy_states(), st.data())
def test_iptables_partial_render_equals_a_full_render(a, b, data):
    changes = data.draw(told_changes(a, b))
    first = render_iptables(a)
    partial = render_iptables(b, first, changes)
    assert partial == render_iptables(b)
    if not changes.full:  # the fragments the changes did not name are the previous render's
        for key in b.services.keys() - changes.services:
            assert partial.fragments[key] is first.fragments[key]


@settings(max_examples=100, deadline=None)
@given(proxy_states(), proxy_states(), st.data())
def test_ipvs_partial_render_equals_a_full_render(a, b, data):
    changes = data.draw(told_changes(a, b))
    first = render_ipvs(a, IpvsOptions())
    assert render_ipvs(b, IpvsOptions(), first, changes) == render_ipvs(b, IpvsOptions())


def slot_blocks(ruleset: nft.Ruleset) -> list[int]:
    return [block for frag in ruleset.fragments.values() for _, first, count in frag.blocks
            for block in range(first, first + count)]


@settings(max_examples=150, deadline=None)
@given(proxy_states(), proxy_states(), st.sampled_from(nft.ENDPOINT_SELECTIONS), st.data())
def test_nftables_partial_render_equals_a_full_render_but_for_slot_placement(a, b, selection, data):
    changes = data.draw(told_changes(a, b))
    first = nft.render(a, endpoint_selection=selection)
    partial = nft.render(b, first, changes, endpoint_selection=selection)
    full = nft.render(b, endpoint_selection=selection)
    assert (partial.static, partial.context) == (full.static, full.context)
    assert partial.fragments.keys() == full.fragments.keys()
    for key, frag in partial.fragments.items():
        # the same chains with the same slot counts; where the ranges lie may differ
        assert [(c, n) for c, _, n in frag.blocks] == [(c, n) for c, _, n in full.fragments[key].blocks]
        assert frag == nft.render_fragment(b.services[key], full.context, SlotAllocator(), frag.blocks)
    used = slot_blocks(partial)
    assert len(used) == len(set(used))  # no two chains share a block
    free = set(partial.slots.free)
    assert free.isdisjoint(used) and free | set(used) == set(range(1, partial.slots.top))  # none leaked
    assert partial.shared_maps == nft.shared_maps(partial.slots)
    if not changes.full and partial.context == first.context:
        assert partial.changed == changes.services  # what plan_partial will look at
        for key in b.services.keys() - changes.services:
            assert partial.fragments[key] is first.fragments[key]
