"""A packet tracer over a rendered Ruleset (pure): where can a new connection go?

`trace(ruleset, src, dst, dport, proto)` follows a first packet the way the kernel would through
our chains: nat KUBE-SERVICES (entered from PREROUTING and OUTPUT), then, with the destination
after DNAT, filter KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-NODEPORTS and KUBE-PROXY-FIREWALL
(as upstream's tracePacket does). Every branch of `-m statistic --mode random` is followed with
its probability, so the result is the exact distribution over outcomes. `-m recent --rcheck`
matches only for the recent-list names given in `recent` (simulating a remembered client).

It understands exactly the matches and targets render.py writes (also in the normalized form
iptables-save prints them, so `Tracer(kernel_chains(inspection))` traces what the kernel really
holds); anything else raises TraceError, so a renderer change the tracer does not model cannot
pass silently.
"""
from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from kproxy.agent.families import split_host_port

from . import names as n
from .names import FILTER, NAT
from .ruleset import Ruleset

TERMINAL = frozenset({"ACCEPT", "DROP", "REJECT"})


class TraceError(ValueError):
    """The ruleset uses something the tracer does not model."""


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    dport: int
    proto: str = "tcp"
    iif: str = ""  # the interface it came in on ("": generated on the node, or not known)


@dataclass
class TraceResult:
    """Outcomes with their probabilities: "ip:port" (DNAT), "REJECT", "DROP", or "ACCEPT" (no
    rule of ours decided: the packet continues unchanged). `masquerade` maps each outcome to
    whether its path set the masquerade mark. Probabilities sum to 1."""

    outcomes: dict[str, float] = field(default_factory=dict)
    masquerade: dict[str, bool] = field(default_factory=dict)

    @property
    def endpoints(self) -> set[str]:
        return {o for o in self.outcomes if ":" in o}

    def add(self, outcome: str, p: float, masq: bool) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0.0) + p
        self.masquerade[outcome] = self.masquerade.get(outcome, False) or masq


@dataclass(frozen=True)
class _Rule:
    matches: tuple[tuple[str, ...], ...]  # each: (option, value..., negated-flag) normalized
    target: str
    target_args: tuple[str, ...]
    probability: float | None


def _parse_rule(text: str) -> _Rule:
    words = shlex.split(text)
    matches: list[tuple[str, ...]] = []
    target, target_args, prob = "", [], None
    i, negate = 0, False
    while i < len(words):
        w = words[i]
        if w == "!":
            negate = True
            i += 1
            continue
        if w == "-j":
            target, target_args = words[i + 1], words[i + 2:]
            break
        if w == "-m":
            i += 2  # module loads carry no condition by themselves
            continue
        if w in ("--comment", "--mode", "--name", "--seconds", "--mask"):
            if w == "--name":
                matches.append(("recent-name", words[i + 1], ""))
            i += 2
            continue
        if w in ("--set", "--reap", "--rsource"):
            if w == "--set":
                matches.append(("recent-set", "", ""))
            i += 1
            continue
        if w == "--rcheck":
            matches.append(("rcheck", "", "!" if negate else ""))
            i += 1
            negate = False
            continue
        if w == "--probability":
            prob = float(words[i + 1])
            i += 2
            continue
        if w in ("-s", "-d", "-i", "-p", "--dport", "--src-type", "--dst-type", "--ctstate", "--mark"):
            matches.append((w, words[i + 1], "!" if negate else ""))
            negate = False
            i += 2
            continue
        raise TraceError(f"tracer does not model {w!r} in rule: {text}")
    return _Rule(tuple(matches), target, tuple(target_args), prob)


def _in(addr: str, spec: str) -> bool:
    return ipaddress.ip_address(addr) in ipaddress.ip_network(spec, strict=False)


class Tracer:
    """Traces packets through one Ruleset. `local_addresses` are the node's own addresses
    (addrtype LOCAL); 127.0.0.0/8 is always local."""

    def __init__(self, ruleset: Ruleset | Mapping[tuple[str, str], Sequence[str]],
                 local_addresses: Iterable[str] = ()) -> None:
        self.chains = ruleset.chain_map() if isinstance(ruleset, Ruleset) else dict(ruleset)
        self.local = set(local_addresses)
        self._parsed: dict[str, _Rule] = {}

    def _rule(self, text: str) -> _Rule:
        rule = self._parsed.get(text)
        if rule is None:
            rule = self._parsed[text] = _parse_rule(text)
        return rule

    def _is_local(self, addr: str) -> bool:
        return addr in self.local or _in(addr, "127.0.0.0/8")

    def _matches(self, rule: _Rule, pkt: Packet, recent: frozenset[str]) -> bool:
        name = next((m[1] for m in rule.matches if m[0] == "recent-name"), "")
        for opt, value, neg in rule.matches:
            if opt == "-s":
                ok = _in(pkt.src, value)
            elif opt == "-d":
                ok = _in(pkt.dst, value)
            elif opt == "-i":  # "name+" matches every interface whose name starts with "name"
                ok = pkt.iif.startswith(value[:-1]) if value.endswith("+") else pkt.iif == value
            elif opt == "-p":
                ok = pkt.proto == value
            elif opt == "--dport":
                ok = pkt.dport == int(value)
            elif opt == "--src-type":
                ok = value == "LOCAL" and self._is_local(pkt.src)
            elif opt == "--dst-type":
                ok = value == "LOCAL" and self._is_local(pkt.dst)
            elif opt == "--ctstate":
                ok = "NEW" in value.split(",")  # we trace the first packet of a connection
            elif opt == "rcheck":
                ok = name in recent
            elif opt in ("recent-name", "recent-set", "--mark"):
                continue  # --set records, it does not filter; marks are only tested in POSTROUTING
            else:
                raise TraceError(f"unknown match {opt}")
            if ok == bool(neg):
                return False
        return True

    # A step of a path is (table, chain, rule index): the rules a packet's path passed, in order.
    def _run(self, table: str, chain: str, start: int, pkt: Packet, masq: bool, recent: frozenset[str],
             depth: int = 0, path: tuple = ()) -> list[tuple[float, bool, str | None, tuple]]:
        """Paths from rule `start` of `chain`: (probability, masquerade mark, outcome or None
        when the chain returns, the rules passed)."""
        if depth > 32:
            raise TraceError(f"jump depth exceeded at {table}/{chain}")
        rules = self.chains.get((table, chain))
        if rules is None:
            raise TraceError(f"jump to unknown chain {table}/{chain}")
        for i in range(start, len(rules)):
            rule = self._rule(rules[i])
            if not self._matches(rule, pkt, recent):
                continue
            taken = self._take(table, chain, i, rule, pkt, masq, recent, depth, path + ((table, chain, i),))
            if rule.probability is None:
                return taken
            rest = self._run(table, chain, i + 1, pkt, masq, recent, depth, path)
            p = rule.probability
            return [(q * p, m, o, pa) for q, m, o, pa in taken] + [(q * (1 - p), m, o, pa) for q, m, o, pa in rest]
        return [(1.0, masq, None, path)]

    def _take(self, table: str, chain: str, index: int, rule: _Rule, pkt: Packet, masq: bool,
              recent: frozenset[str], depth: int, path: tuple) -> list[tuple[float, bool, str | None, tuple]]:
        target = rule.target
        if target == "":
            return self._run(table, chain, index + 1, pkt, masq, recent, depth, path)
        if target == "RETURN":
            return [(1.0, masq, None, path)]
        if target == "MARK":
            return self._run(table, chain, index + 1, pkt, True, recent, depth, path)
        if target == "DNAT":
            return [(1.0, masq, rule.target_args[rule.target_args.index("--to-destination") + 1], path)]
        if target in TERMINAL:
            return [(1.0, masq, target, path)]
        paths: list[tuple[float, bool, str | None, tuple]] = []
        for p, m, outcome, pa in self._run(table, target, 0, pkt, masq, recent, depth + 1, path):
            if outcome is not None:
                paths.append((p, m, outcome, pa))
            else:
                paths += [(p * q, m2, o, pa2)
                          for q, m2, o, pa2 in self._run(table, chain, index + 1, pkt, m, recent, depth, pa)]
        return paths

    def paths(self, pkt: Packet, recent: Iterable[str] = ()) -> list[tuple[float, bool, str, tuple]]:
        """(probability, masquerade, outcome, rules passed) for every path of a new connection:
        nat first, then the filter chains with the destination after DNAT."""
        recent = frozenset(recent)
        result = []
        for p, masq, outcome, path in self._run(NAT, n.KUBE_SERVICES, 0, pkt, False, recent):
            after = pkt
            if outcome is not None:
                ip, port = split_host_port(outcome)
                after = Packet(pkt.src, ip, int(port), pkt.proto, pkt.iif)
            verdict, filter_path = self._filter(after, recent)
            result.append((p, masq, verdict or outcome or "ACCEPT", path + filter_path))
        return result

    def trace(self, src: str, dst: str, dport: int, proto: str = "tcp",
              recent: Iterable[str] = (), iif: str = "") -> TraceResult:
        result = TraceResult()
        for p, masq, outcome, _ in self.paths(Packet(src, dst, dport, proto.lower(), iif), recent):
            result.add(outcome, p, masq)
        return result

    def _filter(self, pkt: Packet, recent: frozenset[str]) -> tuple[str | None, tuple]:
        """The filter table's DROP/REJECT for `pkt` and the rules that decided it, or (None, ())."""
        for chain in (n.KUBE_SERVICES, n.KUBE_EXTERNAL_SERVICES, n.KUBE_NODEPORTS, n.KUBE_PROXY_FIREWALL):
            if (FILTER, chain) not in self.chains:
                continue
            for _, _, outcome, path in self._run(FILTER, chain, 0, pkt, False, recent):
                if outcome in ("DROP", "REJECT"):
                    return outcome, path
        return None, ()


def trace(ruleset: Ruleset, src: str, dst: str, dport: int, proto: str = "tcp",
          local_addresses: Iterable[str] = (), recent: Iterable[str] = (), iif: str = "") -> TraceResult:
    """One-shot trace; see Tracer."""
    return Tracer(ruleset, local_addresses).trace(src, dst, dport, proto, recent, iif)


def kernel_chains(view) -> dict[tuple[str, str], tuple[str, ...]]:
    """Our chains as the kernel holds them (an OwnedView from IptablesBackend.inspect().view),
    in the form Tracer accepts."""
    return {(table, chain): tuple(rule.text for rule in rules)
            for table, chains in view.chains.items() for chain, rules in chains.items()}
