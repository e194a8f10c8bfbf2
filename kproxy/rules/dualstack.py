"""`kproxy rules` for both IP families side by side: one mode adapter run over each family's
pass of a dual-stack backend (kproxy.agent.dualstack), and the two views merged.

Guarantees (pure, except read()):
- read(backend) reads every family the backend programs (one read per pass); for a backend of
  one family it is the mode adapter's own read.
- from_inspection / from_ruleset give one NodeRules: a Service port's frontends, endpoints and
  objects of both families under one ServiceRules; IPv6 objects are told apart by their
  container, prefixed "ip6 " (iptables' and nft's static rules read the same in both families).
  detail["families"] names the families read.
- trace() follows the probe through the rules of its destination's family, with the local
  addresses of that family.
A single-family reading passes through unchanged, so the CLI may always wrap its adapter.
"""
from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from kproxy.agent.families import IPV6, NAMES, family_of

from .adapter import ModeAdapter, read as read_with
from .model import KernelObject, NodeRules, ServiceRules
from .trace import Probe, TraceReport

IPV6_PREFIX = "ip6 "


class DualStackAdapter:
    """Wraps the ModeAdapter of the backend's mode (see the module doc)."""

    def __init__(self, inner: ModeAdapter) -> None:
        self.inner = inner
        self.mode = inner.mode
        self.send_unsupported = getattr(inner, "send_unsupported", "")

    def read(self, backend: Any) -> Any:
        passes = getattr(backend, "passes", None)
        if passes is None:
            return read_with(self.inner, backend)
        return MappingProxyType({family: read_with(self.inner, b) for family, b in passes.items()})

    def from_inspection(self, inspection: Any, node: str) -> NodeRules:
        return self._merged(inspection, node, self.inner.from_inspection)

    def from_ruleset(self, ruleset: Any, node: str) -> NodeRules:
        return self._merged(ruleset, node, self.inner.from_ruleset)

    def trace(self, inspection: Any, probe: Probe, local_addresses: Sequence[str]) -> TraceReport:
        if not _per_family(inspection):
            return self.inner.trace(inspection, probe, local_addresses)
        family = family_of(probe.dst)
        if family not in inspection:
            raise ValueError(f"no {NAMES[family]} rules are read on this node")
        local = [a for a in local_addresses if family_of(a) == family]
        return self.inner.trace(inspection[family], probe, local)

    def _merged(self, value: Any, node: str, convert: Callable[[Any, str], NodeRules]) -> NodeRules:
        if not _per_family(value):
            return convert(value, node)
        return merge([(family, convert(part, node)) for family, part in sorted(value.items())])


def _per_family(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(k in NAMES for k in value)


def _tagged(objects: tuple[KernelObject, ...], family: int) -> tuple[KernelObject, ...]:
    if family != IPV6:
        return objects
    return tuple(replace(o, container=IPV6_PREFIX + o.container) for o in objects)


def merge(parts: list[tuple[int, NodeRules]]) -> NodeRules:
    """One NodeRules of the families' NodeRules (see the module doc)."""
    first = parts[0][1]
    services: dict[str, ServiceRules] = {}
    shared: list[KernelObject] = []
    unowned: list[KernelObject] = []
    skipped = []
    detail: dict = {}
    for family, rules in parts:
        for s in rules.services:
            tagged = replace(s, objects=_tagged(s.objects, family))
            have = services.get(s.key)
            services[s.key] = tagged if have is None else replace(
                have, frontends=have.frontends + tagged.frontends, endpoints=have.endpoints + tagged.endpoints,
                objects=have.objects + tagged.objects, affinity=have.affinity or tagged.affinity)
        shared += _tagged(rules.shared, family)
        unowned += _tagged(rules.unowned, family)
        skipped += [k for k in rules.skipped if k not in skipped]
        detail.update(rules.detail)
    detail["families"] = ", ".join(NAMES[f] for f, _ in parts)
    return NodeRules(first.mode, first.node, tuple(services[k] for k in sorted(services)), tuple(shared),
                     tuple(unowned), detail, tuple(skipped))
