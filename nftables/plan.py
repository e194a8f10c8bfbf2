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

from . import wire as w
from .model import Chain, Fragment, Ruleset, SetSpec, Verdict
from .render import REFCOUNTED
from .transaction import Transaction


class ElementOwners:
    """How many Service ports hold each element of the REFCOUNTED shared sets (hairpin: two
    Services with the same pod both want "E . E"). A partial sync deletes such an element only
    when its last holder lets go. The backend keeps one in step with the kernel: rebuilt from
    the ruleset after a full sync, advanced by each partial sync's delta once it committed."""

    def __init__(self, counts: Mapping[str, Mapping[tuple, int]] | None = None) -> None:
        self.counts: dict[str, dict[tuple, int]] = {n: dict(c) for n, c in (counts or {}).items()}

    @classmethod
    def of(cls, ruleset: Ruleset) -> "ElementOwners":
        owners = cls()
        owners.apply(owners.delta((), ruleset.fragments.values()))
        return owners

    @staticmethod
    def delta(old: Iterable[Fragment], new: Iterable[Fragment]) -> dict[str, dict[tuple, int]]:
        out: dict[str, dict[tuple, int]] = {}
        for frags, sign in ((old, -1), (new, 1)):
            for frag in frags:
                for name, elems in frag.elements.items():
                    if name in REFCOUNTED:
                        counts = out.setdefault(name, {})
                        for key in elems:
                            counts[key] = counts.get(key, 0) + sign
        return out

    def apply(self, delta: Mapping[str, Mapping[tuple, int]]) -> None:
        for name, changes in delta.items():
            counts = self.counts.setdefault(name, {})
            for key, d in changes.items():
                n = counts.get(key, 0) + d
                if n > 0:
                    counts[key] = n
                else:
                    counts.pop(key, None)


def same_kind(a: SetSpec, b: SetSpec) -> bool:
    """Whether the kernel can turn set `a` into `b` in place (only a timeout may change); any
    other difference (key, data, verdicts, counter, dynamic) means delete and re-create."""
    return (a.key, a.data, a.verdict_map, a.counter, a.dynamic) == (b.key, b.data, b.verdict_map, b.counter, b.dynamic)


def plan_full(desired: Ruleset, kernel_chains: Iterable[str],
              kernel_sets: Iterable[str] | Mapping[str, tuple | None]) -> Transaction:
    """`kernel_sets`: names, or name -> signature() of each set as the kernel reports it; a
    desired set the kernel holds with another signature is deleted and created anew."""
    tx = Transaction()
    tx.add_table()
    kernel_chains = set(kernel_chains)
    signatures = kernel_sets if isinstance(kernel_sets, Mapping) else {}
    kernel_sets = set(kernel_sets)
    replaced = sorted(n for n, spec in desired.sets.items()
                      if signatures.get(n) is not None and signatures[n] != signature(spec))
    if replaced:  # no rule may refer to a set being deleted: empty every chain first
        for name in sorted(kernel_chains):
            tx.flush_chain(name)
        for name in replaced:
            tx.delete_set(name)
        kernel_sets -= set(replaced)
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


def signature(spec: SetSpec) -> tuple:
    """What the kernel reports of a set's kind: (flags, key type, key length, data type, data
    length, has an element expression); NftablesBackend reads the same from a set dump."""
    data_type, data_len = (w.DATA_TYPE_VERDICT, 16) if spec.verdict_map else \
        ((spec.data_type, spec.data_len) if spec.data else (0, 0))
    return (spec.flags, spec.key_type, spec.key_len, data_type, data_len, spec.counter)


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


def plan_partial(desired: Ruleset, previous: Ruleset, owners: ElementOwners | None = None) -> Transaction:
    """Only the differences between `previous` and `desired`. When `desired` was rendered from
    `previous`, only the fragments its render's Changes named are compared; otherwise (another
    base, or the static part or the render context changed) every fragment is compared (still
    only differences are sent).
    `owners` counts the holders of shared elements as the kernel has them (counted from
    `previous` when not given); the transaction's `owner_delta` advances it after commit."""
    if desired is previous:
        return Transaction()
    grown = desired.shared_maps is previous.shared_maps or \
        desired.shared_maps[:len(previous.shared_maps)] == previous.shared_maps  # at most new maps
    if desired.base is not previous.token or desired.static != previous.static \
            or desired.context != previous.context or not grown:
        # in key order, as below: the batch's order depends on neither history nor hashing
        old_frags: list[Fragment] = [previous.fragments[k] for k in sorted(previous.fragments)]
        new_frags: list[Fragment] = [desired.fragments[k] for k in sorted(desired.fragments)]
        old_static = {c.name: c for c in previous.static}
        new_static = {c.name: c for c in desired.static}
        shared_old: dict[str, SetSpec] | None = {s.name: s for s in previous.shared_maps}
        shared_new: dict[str, SetSpec] | None = {s.name: s for s in desired.shared_maps}
    else:
        keys = sorted(desired.changed)  # the batch's order does not depend on hashing
        new_frags = [desired.fragments[k] for k in keys if k in desired.fragments]
        old_frags = [previous.fragments[k] for k in keys if k in previous.fragments]
        old_static = new_static = {}
        shared_old = shared_new = None  # below: only the shared maps these fragments touch
    old_chains, old_sets, old_elements = _views(old_frags)
    new_chains, new_sets, new_elements = _views(new_frags)
    if shared_old is None or shared_new is None:  # a change to a few Services need not look at ~N/64 endpoint maps
        touched = old_elements.keys() | new_elements.keys()
        known = {s.name for s in previous.shared_maps} if desired.shared_maps is not previous.shared_maps else None
        shared_old = {s.name: s for s in previous.shared_maps if s.name in touched}
        shared_new = {s.name: s for s in desired.shared_maps
                      if s.name in touched or (known is not None and s.name not in known)}
    old_chains.update(old_static)
    new_chains.update(new_static)
    old_sets.update(shared_old)
    new_sets.update(shared_new)
    delta = ElementOwners.delta(old_frags, new_frags)
    counts = (owners or ElementOwners.of(previous)).counts
    shared_changes: dict[str, tuple[list, list]] = {}
    for name, changes in delta.items():
        have = counts.get(name, {})
        gone = [k for k, d in changes.items() if d < 0 and have.get(k, 0) + d <= 0 < have.get(k, 0)]
        added = [k for k, d in changes.items() if d > 0 and have.get(k, 0) <= 0]
        shared_changes[name] = (gone, added)
    tx = _diff(new_chains, new_sets, new_elements, old_chains, old_sets, old_elements, shared_changes)
    tx.owner_delta = delta
    return tx


def _diff(new_chains: Mapping[str, Chain], new_sets: Mapping[str, SetSpec], new_elements: Mapping[str, dict],
          old_chains: Mapping[str, Chain], old_sets: Mapping[str, SetSpec],
          old_elements: Mapping[str, dict], shared_changes: Mapping[str, tuple[list, list]]) -> Transaction:
    tx = Transaction()
    # A set that changes kind (a set of a fragment whose declaration changed other than in its
    # timeout) is deleted and re-created under its name; the rules that refer to it are all in
    # the changed fragments' chains, so those are emptied first.
    replaced = {n for n, spec in new_sets.items() if n in old_sets and not same_kind(old_sets[n], spec)}
    if replaced:
        for name in old_chains:
            tx.flush_chain(name)
        for name in sorted(replaced):
            tx.delete_set(name)
    for name, spec in new_sets.items():
        old = old_sets.get(name)
        if old is None or old != spec:  # the kernel updates a set's timeout in place
            tx.add_set(spec)
    for name, chain in new_chains.items():
        if name not in old_chains:
            tx.add_chain(chain)
    for name, chain in new_chains.items():
        old_chain = old_chains.get(name)
        if old_chain is not None and old_chain.rules == chain.rules and not replaced:
            continue
        if old_chain is not None and not replaced:
            tx.flush_chain(name)
        for rule in chain.rules:
            tx.add_rule(name, rule)
    removed_chains = [n for n in old_chains if n not in new_chains]
    removed_sets = [n for n in old_sets if n not in new_sets]
    for name in removed_chains:
        if not replaced:
            tx.flush_chain(name)
    for name, spec in new_sets.items():
        if spec.dynamic:
            continue
        if name in REFCOUNTED:
            gone_keys, added_keys = shared_changes.get(name, ([], []))
            if gone_keys:
                tx.delete_elements(spec, gone_keys)
            if added_keys:
                tx.add_elements(spec, dict.fromkeys(added_keys))
            continue
        want: Mapping[tuple, Verdict | None] = new_elements.get(name, {})
        kept = name in old_sets and name not in replaced
        have: Mapping[tuple, Verdict | None] = old_elements.get(name, {}) if kept else {}
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
