"""Desired against kernel (pure): first what a packet meets, then object by object.

Both sides are NodeRules from the same adapter (from_ruleset for the desired state,
from_inspection for the kernel). Per Service port, the diff first compares its behaviour: the
frontends, the endpoints with their locality and weight, the session affinity (a difference is
a "behaviour" object in the Service port's container, naming the fact). Then the kernel
objects, by their normalised identity, which each adapter keeps free of allocation details
(slot numbers, shard maps, listener ports), so a kernel programmed incrementally and a
from-scratch render of the same state compare equal.
A difference is "missing" (desired, not in the kernel: deleted by hand, or a failed sync),
"unexpected" (in the kernel, not desired: added by hand, stale leftovers) or "order" (a chain
holds the right rules in another order; first match wins, so order matters; not checked for
the jump rules in built-in chains, whose order among themselves and other software's rules is
not ours to fix). Counters are ignored. Objects are counted, so a duplicated rule is one
"unexpected" object.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .model import KernelObject, NodeRules, ServiceRules

# netfilter's built-in chains: other software inserts rules there too, so their order is not ours
BUILTIN_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
BEHAVIOUR = "behaviour"


@dataclass(frozen=True)
class Difference:
    kind: str  # missing | unexpected | order
    scope: str  # ServicePort key, "shared" or "unowned"
    object: KernelObject

    def to_dict(self) -> dict:
        return {"kind": self.kind, "scope": self.scope, "object": self.object.to_dict()}


def behaviour(svc: ServiceRules) -> list[str]:
    """What a new connection meets at this Service port, one fact per line (sorted)."""
    facts = [f"frontend {f}" for f in svc.frontends]
    for e in svc.endpoints:
        fact = f"endpoint {e.address}"
        if e.local:
            fact += " local"
        if e.weight is not None:
            fact += f" weight {e.weight}"
        facts.append(fact)
    if svc.affinity is not None:
        facts.append(f"affinity ClientIP {svc.affinity}s")
    return sorted(facts)


def _behaviour_objects(rules: NodeRules) -> list[tuple[str, KernelObject]]:
    return [(s.key, KernelObject(BEHAVIOUR, s.key, fact)) for s in rules.services for fact in behaviour(s)]


def _objects(rules: NodeRules) -> list[tuple[str, KernelObject]]:
    out = [(s.key, o) for s in rules.services for o in s.objects]
    out += [("shared", o) for o in rules.shared]
    out += [("unowned", o) for o in rules.unowned]
    return [(scope, o) for scope, o in out if not (o.allocated and o.kind in ("map", "set"))]


def _counted(want: list[tuple[str, KernelObject]], have: list[tuple[str, KernelObject]]) -> list[Difference]:
    want_count = Counter(o.identity for _, o in want)
    have_count = Counter(o.identity for _, o in have)
    out: list[Difference] = []
    extra = want_count - have_count
    for scope, obj in want:
        if extra[obj.identity] > 0:
            extra[obj.identity] -= 1
            out.append(Difference("missing", scope, obj))
    extra = have_count - want_count
    for scope, obj in have:
        if extra[obj.identity] > 0:
            extra[obj.identity] -= 1
            out.append(Difference("unexpected", scope, obj))
    return out


def diff(desired: NodeRules, kernel: NodeRules) -> list[Difference]:
    """Every difference: behaviour first, then objects (missing, then unexpected), then order
    (see module doc)."""
    out = _counted(_behaviour_objects(desired), _behaviour_objects(kernel))
    want, have = _objects(desired), _objects(kernel)
    out += _counted(want, have)
    if not out:
        out += _order(want, have)
    return out


def _order(want: list[tuple[str, KernelObject]], have: list[tuple[str, KernelObject]]) -> list[Difference]:
    """Containers whose objects are the same but ordered differently (one Difference each)."""
    def by_container(objs):
        seqs: dict[str, list] = {}
        first: dict[str, tuple[str, KernelObject]] = {}
        for scope, o in objs:
            if o.kind == "rule" and o.container.rpartition("/")[2] not in BUILTIN_CHAINS:
                seqs.setdefault(o.container, []).append(o.identity)
                first.setdefault(o.container, (scope, o))
        return seqs, first
    want_seq, _ = by_container(want)
    have_seq, have_first = by_container(have)
    out = []
    for container, seq in sorted(have_seq.items()):
        if want_seq.get(container, seq) != seq:
            scope, obj = have_first[container]
            out.append(Difference("order", scope, obj))
    return out
