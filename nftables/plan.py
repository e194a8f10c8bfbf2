"""Planning a sync: the transaction that turns what the kernel holds into the desired Ruleset.

`plan_full(desired, kernel_chains, kernel_sets)` is for an unknown kernel (first sync, periodic
resync, after a failure): every desired chain is flushed and rewritten, every desired map is
flushed and refilled (one atomic batch, so no packet sees a half-written table), dynamic
affinity sets are kept with their entries, and every chain/set of our table that is not desired
is removed. `plan_partial(desired, previous)` touches only what differs from `previous` (the
ruleset the kernel is known to hold): for a change to one Service, its chains, its sets and its
elements in the shared maps. Both order their operations so that references always resolve:
create sets and chains, rewrite rules, change elements, then flush and delete what went away.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from .model import Chain, Fragment, Ruleset, SetSpec, Verdict
from .transaction import Transaction


def plan_full(desired: Ruleset, kernel_chains: Iterable[str], kernel_sets: Iterable[str]) -> Transaction:
    tx = Transaction()
    tx.add_table()
    kernel_chains = set(kernel_chains)
    kernel_sets = set(kernel_sets)
    for spec in desired.sets.values():
        tx.add_set(spec)
    for chain in desired.chains.values():
        tx.add_chain(chain)
    for chain in desired.chains.values():
        if chain.name in kernel_chains:
            tx.flush_chain(chain.name)
        for rule in chain.rules:
            tx.add_rule(chain.name, rule)
    stale_chains = sorted(kernel_chains - set(desired.chains))
    stale_sets = sorted(kernel_sets - set(desired.sets))
    for name in stale_chains:
        tx.flush_chain(name)
    for name, elements in desired.elements.items():
        if name in kernel_sets:
            tx.flush_set(name)
        tx.add_elements(desired.sets[name], elements)
    for name in stale_sets:
        tx.flush_set(name)  # releases the chains its elements point at
        tx.delete_set(name)
    for name in stale_chains:
        tx.delete_chain(name)
    return tx


def _views(fragments: Iterable[Fragment]) -> tuple[dict[str, Chain], dict[str, SetSpec], dict[str, dict]]:
    chains: dict[str, Chain] = {}
    sets: dict[str, SetSpec] = {}
    elements: dict[str, dict] = {}
    for frag in fragments:
        for c in frag.chains:
            chains[c.name] = c
        for s in frag.sets:
            sets[s.name] = s
        for name, elems in frag.elements.items():
            elements.setdefault(name, {}).update(elems)
    return chains, sets, elements


def plan_partial(desired: Ruleset, previous: Ruleset) -> Transaction:
    """Only the differences between `previous` and `desired`. When the static part or the
    render context changed, every fragment is compared (still only differences are sent)."""
    if desired.static != previous.static or desired.context != previous.context \
            or desired.shared_maps != previous.shared_maps:
        old_frags: list[Fragment] = list(previous.fragments.values())
        new_frags: list[Fragment] = list(desired.fragments.values())
        old_static = {c.name: c for c in previous.static}
        new_static = {c.name: c for c in desired.static}
        shared_old = {s.name: s for s in previous.shared_maps}
        shared_new = {s.name: s for s in desired.shared_maps}
    else:
        old_frags, new_frags = [], []
        for key, frag in desired.fragments.items():
            old = previous.fragments.get(key)
            if old is not frag:
                new_frags.append(frag)
                if old is not None:
                    old_frags.append(old)
        old_frags.extend(f for k, f in previous.fragments.items() if k not in desired.fragments)
        old_static = new_static = {}
        shared_old = shared_new = {s.name: s for s in desired.shared_maps}
    old_chains, old_sets, old_elements = _views(old_frags)
    new_chains, new_sets, new_elements = _views(new_frags)
    old_chains.update(old_static)
    new_chains.update(new_static)
    old_sets.update(shared_old)
    new_sets.update(shared_new)
    return _diff(new_chains, new_sets, new_elements, old_chains, old_sets, old_elements)


def _diff(new_chains: Mapping[str, Chain], new_sets: Mapping[str, SetSpec], new_elements: Mapping[str, dict],
          old_chains: Mapping[str, Chain], old_sets: Mapping[str, SetSpec],
          old_elements: Mapping[str, dict]) -> Transaction:
    tx = Transaction()
    for name, spec in new_sets.items():
        old = old_sets.get(name)
        if old is None or old != spec:  # the kernel updates a set's timeout in place
            tx.add_set(spec)
    for name, chain in new_chains.items():
        if name not in old_chains:
            tx.add_chain(chain)
    for name, chain in new_chains.items():
        old = old_chains.get(name)
        if old is not None and old.rules == chain.rules:
            continue
        if old is not None:
            tx.flush_chain(name)
        for rule in chain.rules:
            tx.add_rule(name, rule)
    removed_chains = [n for n in old_chains if n not in new_chains]
    removed_sets = [n for n in old_sets if n not in new_sets]
    for name in removed_chains:
        tx.flush_chain(name)
    for name, spec in new_sets.items():
        if spec.dynamic:
            continue
        want: Mapping[tuple, Verdict] = new_elements.get(name, {})
        have: Mapping[tuple, Verdict] = old_elements.get(name, {}) if name in old_sets else {}
        gone = [k for k, v in have.items() if want.get(k) != v]
        added = {k: v for k, v in want.items() if have.get(k) != v}
        if gone:
            tx.delete_elements(spec, gone)
        if added:
            tx.add_elements(spec, added)
    for name in removed_sets:
        if not old_sets[name].dynamic and old_elements.get(name):
            tx.flush_set(name)
        tx.delete_set(name)
    for name in removed_chains:
        tx.delete_chain(name)
    return tx
