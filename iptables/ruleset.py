"""The rendered iptables model: a frozen Ruleset made of static chains and per-ServicePort
fragments.

A rule is stored as the text that follows "-A <chain> " in iptables-restore input (for example
'-m comment --comment "ns/svc cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 -j KUBE-SVC-X').
Rules of one chain keep their order. A Ruleset owns every chain it lists: static chains (the
dispatch chains KUBE-SERVICES, KUBE-NODEPORTS, ... in nat and filter) and, per ServicePort, the
chains only that ServicePort uses (KUBE-SVC-/SVL-/EXT-/FW-/SEP-). Fragments are shared between
Rulesets when their ServicePort did not change, so identity (`is`) of two fragments means
"unchanged" and the partial restore can skip them in O(1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterator, Mapping

from kproxy.agent.state import ServicePort

ChainKey = tuple[str, str]  # (table, chain name)
Rules = tuple[str, ...]


@dataclass(frozen=True)
class RenderOptions:
    """Node-level switches that are not part of ProxyState (they come from the agent config
    and from probing the iptables binary)."""

    localhost_nodeports: bool = True  # NodePorts answer on 127.0.0.0/8 (needs route_localnet)
    random_fully: bool = True  # MASQUERADE --random-fully (iptables >= 1.6.2)


@dataclass(frozen=True)
class JumpRule:
    """A rule in a built-in chain that enters one of our chains. Never appended by restore (-A
    into a built-in chain would add a duplicate on every --noflush run): a full sync inserts
    (-I CHAIN 1) only the jump rules it did not find in the kernel."""

    table: str
    chain: str  # built-in: PREROUTING, OUTPUT, POSTROUTING, INPUT, FORWARD
    target: str
    comment: str
    extra: tuple[str, ...] = ()  # match arguments before the comment, e.g. ctstate NEW

    def restore_text(self) -> str:
        """The rule in iptables-restore syntax (comment quoted), without "-I CHAIN"."""
        args = list(self.extra)
        if self.comment:
            args += ["-m", "comment", "--comment", f'"{self.comment}"']
        return " ".join(args + ["-j", self.target])

    def argv(self) -> list[str]:
        """Arguments after `iptables -t T -X CHAIN` (argv form: the comment is not quoted)."""
        args = list(self.extra)
        if self.comment:
            args += ["-m", "comment", "--comment", self.comment]
        return args + ["-j", self.target]


@dataclass(frozen=True)
class Fragment:
    """What one ServicePort contributes: its own chains and its rules in the static chains.

    `chains` is in write order; `dispatch` maps a static chain to the rules this ServicePort adds
    to it (in order). `context` is the render context it was made under: a fragment is reused
    only when both its ServicePort and its context compare equal."""

    service: ServicePort
    chains: tuple[tuple[ChainKey, Rules], ...]
    dispatch: Mapping[ChainKey, Rules]
    context: tuple

    def chain_keys(self) -> Iterator[ChainKey]:
        for key, _ in self.chains:
            yield key


@dataclass(frozen=True)
class Ruleset:
    """The complete desired iptables state for one ProxyState.

    `static` maps each static chain to its full rule list (fragment dispatch rules included),
    `fragments` maps ServicePort.key to its Fragment, `jumps` are the built-in chain entry rules.
    Guarantee: every chain referenced by a rule (other than built-in targets) is listed either
    in `static` or in some fragment's `chains`."""

    static: Mapping[ChainKey, Rules]
    fragments: Mapping[str, Fragment]
    jumps: tuple[JumpRule, ...]
    options: RenderOptions = field(default_factory=RenderOptions)
    context: tuple = ()
    # Bookkeeping for a partial restore, not part of the value: `base` the token of the ruleset
    # this one was rendered from (None: from scratch), `changed` the ServicePort keys its
    # render's Changes named; restore.changed_chains then looks at those alone.
    token: object = field(default_factory=object, compare=False, repr=False)
    base: object = field(default=None, compare=False, repr=False)
    changed: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def chains(self) -> Iterator[tuple[ChainKey, Rules]]:
        """Every chain this ruleset owns, static ones first, then fragments in key order."""
        yield from self.static.items()
        for key in sorted(self.fragments):
            yield from self.fragments[key].chains

    def chain_map(self) -> dict[ChainKey, Rules]:
        return dict(self.chains())

    def rule_count(self) -> int:
        return sum(len(rules) for _, rules in self.chains())

    def __post_init__(self) -> None:
        for name in ("static", "fragments"):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))
