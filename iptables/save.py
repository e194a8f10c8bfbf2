"""Parsing iptables-save output (pure).

`parse_save(text)` returns, per table, the chains in order and the rules of each chain, with
packet/byte counters when the text came from `iptables-save -c`. `owned_view()` narrows a parsed
save to what kproxy owns: its KUBE-* chains and the rules in built-in chains that jump to them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .names import is_owned_chain

BUILTIN_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
_COUNTERS = re.compile(r"^\[(\d+):(\d+)\]\s+")
_COMMENT = re.compile(r'--comment (?:"((?:[^"\\]|\\.)*)"|(\S+))')


@dataclass(frozen=True)
class SavedRule:
    chain: str
    text: str  # everything after "-A <chain> "
    packets: int = 0
    bytes: int = 0

    @property
    def target(self) -> str:
        """The -j target (or "" when the rule has none)."""
        parts = self.text.split()
        for i, word in enumerate(parts[:-1]):
            if word in ("-j", "--jump", "-g", "--goto"):
                return parts[i + 1]
        return ""


    @property
    def comment(self) -> str:
        """The --comment text, unquoted ("" when none)."""
        m = _COMMENT.search(self.text)
        if not m:
            return ""
        return m.group(1) if m.group(1) is not None else m.group(2)


@dataclass
class SavedTable:
    name: str
    chains: dict[str, str] = field(default_factory=dict)  # name -> policy ("-" for user chains)
    rules: dict[str, list[SavedRule]] = field(default_factory=dict)

    def add_rule(self, rule: SavedRule) -> None:
        self.rules.setdefault(rule.chain, []).append(rule)


def parse_save(text: str) -> dict[str, SavedTable]:
    """Parses iptables-save (optionally -c) output. Comment and COMMIT lines are skipped."""
    tables: dict[str, SavedTable] = {}
    current: SavedTable | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = tables.setdefault(line[1:], SavedTable(line[1:]))
            continue
        if current is None or line == "COMMIT":
            continue
        if line.startswith(":"):
            name, _, rest = line[1:].partition(" ")
            current.chains[name] = rest.split(" ", 1)[0] if rest else "-"
            current.rules.setdefault(name, [])
            continue
        packets = nbytes = 0
        m = _COUNTERS.match(line)
        if m:
            packets, nbytes = int(m.group(1)), int(m.group(2))
            line = line[m.end():]
        if line.startswith("-A "):
            chain, _, rest = line[3:].partition(" ")
            current.add_rule(SavedRule(chain, rest, packets, nbytes))
    return tables


def chain_names(text: str) -> dict[str, set[str]]:
    """Table -> every chain name declared in an iptables-save text."""
    return {name: set(table.chains) for name, table in parse_save(text).items()}


@dataclass(frozen=True)
class OwnedView:
    """kproxy's part of the kernel's tables: table -> chain -> rules, and the jump rules from
    built-in chains into our chains (as (table, built-in chain, SavedRule))."""

    chains: dict[str, dict[str, list[SavedRule]]]
    jumps: list[tuple[str, str, SavedRule]]

    def rules_text(self) -> dict[str, dict[str, list[str]]]:
        """The same without counters, for comparisons."""
        return {t: {c: [r.text for r in rules] for c, rules in chains.items()}
                for t, chains in self.chains.items()}


def owned_view(tables: dict[str, SavedTable], table_names: tuple[str, ...] = ("filter", "nat")) -> OwnedView:
    chains: dict[str, dict[str, list[SavedRule]]] = {}
    jumps: list[tuple[str, str, SavedRule]] = []
    for tname in table_names:
        table = tables.get(tname)
        chains[tname] = {}
        if table is None:
            continue
        for cname in table.chains:
            if cname in BUILTIN_CHAINS:
                for rule in table.rules.get(cname, []):
                    if is_owned_chain(tname, rule.target):
                        jumps.append((tname, cname, rule))
            elif is_owned_chain(tname, cname):
                chains[tname][cname] = list(table.rules.get(cname, []))
    return OwnedView(chains, jumps)
