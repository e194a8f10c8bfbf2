"""The nftables ruleset model: what kproxy wants in its private table `ip kproxy` (pure values).

A Ruleset holds chains (with their rules), sets/maps (their declarations) and the elements of
every map/set that kproxy fills. Dynamic sets (session affinity) are declared but never filled
by kproxy: the kernel fills them from packets.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Mapping

from . import wire as w
from .expr import PROTO_NUMBERS, Rule

TABLE = "kproxy"
FAMILY = w.NFPROTO_IPV4

# nft's datatype ids (as `nft list` decodes NFTA_SET_KEY_TYPE) and key lengths
DATATYPES = {"ipv4_addr": (7, 4), "inet_proto": (12, 1), "inet_service": (13, 2), "mark": (19, 4)}
TYPE_BITS = 6


@dataclass(frozen=True)
class Hook:
    type: str  # nat | filter
    hooknum: int
    priority: int


@dataclass(frozen=True)
class Chain:
    name: str
    rules: tuple[Rule, ...] = ()
    hook: Hook | None = None


@dataclass(frozen=True)
class SetSpec:
    """A named set (verdict_map False) or verdict map keyed on a concatenation of `key` types."""

    name: str
    key: tuple[str, ...]
    verdict_map: bool = False
    timeout: int | None = None  # seconds; dynamic set with per-element timeouts

    @property
    def dynamic(self) -> bool:
        return self.timeout is not None

    @property
    def key_type(self) -> int:
        out = 0
        for name in self.key:
            out = (out << TYPE_BITS) | DATATYPES[name][0]
        return out

    @property
    def key_len(self) -> int:
        return sum((DATATYPES[name][1] + 3) & ~3 for name in self.key) if len(self.key) > 1 \
            else DATATYPES[self.key[0]][1]

    @property
    def flags(self) -> int:
        flags = w.SET_F_MAP if self.verdict_map else 0
        if self.dynamic:
            flags |= w.SET_F_TIMEOUT | w.SET_F_DYNAMIC
        return flags


Verdict = tuple  # ("goto" | "jump" | "drop" | "accept", chain or None)


def encode_key(spec: SetSpec, key: tuple) -> bytes:
    """The element key bytes: each concatenated field padded to 4 bytes (a register each)."""
    out = bytearray()
    for kind, value in zip(spec.key, key):
        if kind == "ipv4_addr":
            raw = ipaddress.IPv4Address(value).packed
        elif kind == "inet_proto":
            raw = bytes([PROTO_NUMBERS[value] if isinstance(value, str) else value])
        elif kind == "inet_service":
            raw = w.be16(value)
        else:  # mark: host-endian 32 bits (numgen / hash results)
            raw = w.host32(value)
        out += raw
        if len(spec.key) > 1:
            out += b"\0" * (-len(raw) % 4)
    return bytes(out)


VERDICT_CODES = {"goto": w.NFT_GOTO, "jump": w.NFT_JUMP, "drop": w.NF_DROP, "accept": w.NF_ACCEPT}


def key_text(spec: SetSpec, key: tuple) -> str:
    return " . ".join(str(v).lower() if k == "inet_proto" else str(v) for k, v in zip(spec.key, key))


@dataclass(frozen=True)
class Fragment:
    """Everything one ServicePort contributes: its own chains and sets, and its elements in
    shared maps ({map name: {key: verdict}}), including its own maps' elements."""

    service: object  # the ServicePort it was rendered from (reuse check)
    chains: tuple[Chain, ...]
    sets: tuple[SetSpec, ...]
    elements: Mapping[str, Mapping[tuple, Verdict]]
    context: tuple


@dataclass(frozen=True)
class Ruleset:
    """Static chains plus one Fragment per ServicePort key. The merged views (chains, sets,
    elements) are computed on first use: a partial sync only looks at changed fragments."""

    static: tuple[Chain, ...]
    shared_maps: tuple[SetSpec, ...]
    fragments: Mapping[str, Fragment] = field(default_factory=lambda: MappingProxyType({}))
    context: tuple = ()

    @cached_property
    def chains(self) -> Mapping[str, Chain]:
        out = {c.name: c for c in self.static}
        for frag in self.fragments.values():
            for c in frag.chains:
                out[c.name] = c
        return MappingProxyType(out)

    @cached_property
    def sets(self) -> Mapping[str, SetSpec]:
        out = {s.name: s for s in self.shared_maps}
        for frag in self.fragments.values():
            for s in frag.sets:
                out[s.name] = s
        return MappingProxyType(out)

    @cached_property
    def elements(self) -> Mapping[str, Mapping[tuple, Verdict]]:
        """Every non-dynamic set/map's elements (shared maps merged from all fragments)."""
        out: dict[str, dict] = {s.name: {} for s in self.shared_maps}
        for frag in self.fragments.values():
            for name, elems in frag.elements.items():
                if name in out:
                    out[name].update(elems)
                else:
                    out[name] = dict(elems)
        return MappingProxyType(out)

    def script(self) -> str:
        """The ruleset as a flat `nft -f` script (chains declared before any reference), for
        loading the same ruleset with the nft tool (benchmarks, comparisons)."""
        hooks = {0: "prerouting", 1: "input", 2: "forward", 3: "output", 4: "postrouting"}
        out = [f"add table ip {TABLE}"]
        for name, chain in self.chains.items():
            if chain.hook:
                out.append(f"add chain ip {TABLE} {name} {{ type {chain.hook.type} hook "
                           f"{hooks[chain.hook.hooknum]} priority {chain.hook.priority}; policy accept; }}")
            else:
                out.append(f"add chain ip {TABLE} {name}")
        for name, spec in self.sets.items():
            kind = "map" if spec.verdict_map else "set"
            extra = f" flags dynamic,timeout; timeout {spec.timeout}s;" if spec.dynamic else ""
            # nft checks types: a slot map is declared by the expression that feeds it
            key = "typeof numgen random mod 1" if spec.key == ("mark",) else "type " + " . ".join(spec.key)
            out.append(f"add {kind} ip {TABLE} {name} {{ {key}{' : verdict' if spec.verdict_map else ''};{extra} }}")
        for name, chain in self.chains.items():
            out.extend(f"add rule ip {TABLE} {name} {r.text}" for r in chain.rules)
        for name, elems in self.elements.items():
            spec = self.sets[name]
            items = [f"{key_text(spec, k)} : {v[0]}{' ' + v[1] if v[1] else ''}" for k, v in elems.items()]
            for i in range(0, len(items), 1000):
                out.append(f"add element ip {TABLE} {name} {{ " + ", ".join(items[i:i + 1000]) + " }")
        return "\n".join(out) + "\n"

    def text(self) -> str:
        """The ruleset in `nft` syntax (for golden files, logs and `nft -f`)."""
        out = [f"table ip {TABLE} {{"]
        for name in sorted(self.sets):
            spec = self.sets[name]
            kind = "map" if spec.verdict_map else "set"
            out.append(f"\t{kind} {name} {{")
            out.append(f"\t\ttype {' . '.join(spec.key)}" + (" : verdict" if spec.verdict_map else ""))
            if spec.dynamic:
                out.append("\t\tflags dynamic,timeout")
                out.append(f"\t\ttimeout {spec.timeout}s")
            elems = self.elements.get(name) or {}
            if elems:
                parts = []
                for key in sorted(elems, key=repr):
                    v = elems[key]
                    parts.append(f"{key_text(spec, key)} : {v[0]}{' ' + v[1] if v[1] else ''}"
                                 if spec.verdict_map else key_text(spec, key))
                out.append("\t\telements = { " + ",\n\t\t\t     ".join(parts) + " }")
            out.append("\t}")
        for name in sorted(self.chains):
            chain = self.chains[name]
            out.append(f"\tchain {name} {{")
            if chain.hook:
                hook = {0: "prerouting", 1: "input", 2: "forward", 3: "output", 4: "postrouting"}[chain.hook.hooknum]
                out.append(f"\t\ttype {chain.hook.type} hook {hook} priority {chain.hook.priority}; policy accept;")
            out.extend(f"\t\t{r.text}" for r in chain.rules)
            out.append("\t}")
        out.append("}")
        return "\n".join(out) + "\n"
