"""The nftables ruleset model: what kproxy wants in its private table `ip kproxy` (pure values;
`ip6 kproxy` for IPv6, the same layout: Ruleset.family).

A Ruleset holds chains (with their rules), sets/maps (their declarations) and the elements of
every map/set that kproxy fills. Dynamic sets (session affinity) are declared but never filled
by kproxy: the kernel fills them from packets.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Mapping

from . import wire as w
from .expr import PROTO_NUMBERS, Rule
from .family import IP, NftFamily
from .slots import SlotState

TABLE = "kproxy"
FAMILY = w.NFPROTO_IPV4

# nft's datatype ids (as `nft list` decodes NFTA_SET_KEY_TYPE) and key lengths
DATATYPES = {"ipv4_addr": (7, 4), "ipv6_addr": (8, 16), "inet_proto": (12, 1), "inet_service": (13, 2),
             "mark": (19, 4)}
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
    data: tuple[str, ...] = ()  # a data map's value types (e.g. ipv4_addr . inet_service)
    counter: bool = False  # every element counts the packets that found it

    @property
    def dynamic(self) -> bool:
        return self.timeout is not None

    @property
    def is_map(self) -> bool:
        return self.verdict_map or bool(self.data)

    @property
    def key_type(self) -> int:
        return concat_type(self.key)

    @property
    def key_len(self) -> int:
        return concat_len(self.key)

    @property
    def data_type(self) -> int:
        return concat_type(self.data)

    @property
    def data_len(self) -> int:
        return concat_len(self.data)

    @property
    def flags(self) -> int:
        flags = w.SET_F_MAP if self.is_map else 0
        if self.dynamic:
            flags |= w.SET_F_TIMEOUT | w.SET_F_DYNAMIC
        return flags

    @property
    def type_text(self) -> str:
        """The declaration as nft prints it: "type mark : ipv4_addr . inet_service"."""
        value = " : verdict" if self.verdict_map else (" : " + " . ".join(self.data) if self.data else "")
        return "type " + " . ".join(self.key) + value


def concat_type(types: tuple[str, ...]) -> int:
    """nft's type id of a concatenation: the field type ids, TYPE_BITS each."""
    out = 0
    for name in types:
        out = (out << TYPE_BITS) | DATATYPES[name][0]
    return out


def concat_len(types: tuple[str, ...]) -> int:
    """Bytes of a key or value: each concatenated field takes whole 4-byte registers."""
    return sum((DATATYPES[name][1] + 3) & ~3 for name in types) if len(types) > 1 else DATATYPES[types[0]][1]


Verdict = tuple  # ("goto" | "jump" | "drop" | "accept", chain or None)


_HOST32 = struct.Struct("=I").pack
_PROTO_PORT = struct.Struct(">B3xH2x").pack  # inet_proto . inet_service, each in its own register
_PORT = struct.Struct(">H2x").pack
_aton = socket.inet_aton


def _pton6(value: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, value)


def _proto_number(value) -> int:
    return PROTO_NUMBERS[value] if isinstance(value, str) else value


# The layouts kproxy's maps use, packed in one step each (a full sync encodes ~300k of them);
# any other layout goes field by field through encode_fields. Same bytes either way
# (tests/unit/test_nft_wire.py).
_FAST = {
    ("mark",): lambda v: _HOST32(v[0] & 0xFFFFFFFF),
    ("ipv4_addr",): lambda v: _aton(v[0]),
    ("ipv4_addr", "ipv4_addr"): lambda v: _aton(v[0]) + _aton(v[1]),
    ("ipv4_addr", "inet_service"): lambda v: _aton(v[0]) + _PORT(v[1]),
    ("inet_proto", "inet_service"): lambda v: _PROTO_PORT(_proto_number(v[0]), v[1]),
    ("ipv4_addr", "inet_proto", "inet_service"): lambda v: _aton(v[0]) + _PROTO_PORT(_proto_number(v[1]), v[2]),
    ("ipv6_addr",): lambda v: _pton6(v[0]),
    ("ipv6_addr", "ipv6_addr"): lambda v: _pton6(v[0]) + _pton6(v[1]),
    ("ipv6_addr", "inet_service"): lambda v: _pton6(v[0]) + _PORT(v[1]),
    ("ipv6_addr", "inet_proto", "inet_service"): lambda v: _pton6(v[0]) + _PROTO_PORT(_proto_number(v[1]), v[2]),
}


def encoder(types: tuple[str, ...]):
    """A function: key or value tuple of `types` -> its bytes."""
    fast = _FAST.get(types)
    return fast if fast is not None else (lambda value: encode_fields(types, value))


def _ipv4(value: str) -> bytes:
    packed = socket.inet_aton(value)  # 10x faster than ipaddress; refuse its short forms ("10.1")
    if value.count(".") != 3:
        raise ValueError(f"{value!r} is not a dotted-quad IPv4 address")
    return packed


def _proto(value) -> bytes:
    return bytes([_proto_number(value)])


# field type -> (encoder, bytes of padding after it in a concatenation)
_FIELDS = {"ipv4_addr": (_ipv4, b""), "ipv6_addr": (_pton6, b""), "inet_proto": (_proto, b"\0\0\0"),
           "inet_service": (w.be16, b"\0\0"), "mark": (w.host32, b"")}  # mark: host-endian (numgen/hash)


def encode_fields(types: tuple[str, ...], key: tuple) -> bytes:
    """Key or value bytes: each concatenated field padded to 4 bytes (a register each)."""
    if len(types) == 1:
        return _FIELDS[types[0]][0](key[0])
    out = b""
    for kind, value in zip(types, key):
        encode, pad = _FIELDS[kind]
        out += encode(value) + pad
    return out


VERDICT_CODES = {"goto": w.NFT_GOTO, "jump": w.NFT_JUMP, "drop": w.NF_DROP, "accept": w.NF_ACCEPT}


def key_text(spec: SetSpec, key: tuple) -> str:
    return " . ".join(str(v).lower() if k == "inet_proto" else str(v) for k, v in zip(spec.key, key))


def value_text(spec: SetSpec, value) -> str:
    """A map element's value as nft prints it: "goto CHAIN", "drop", "10.0.0.1 . 8080"."""
    if spec.verdict_map:
        return f"{value[0]} {value[1]}" if value[1] else value[0]
    return " . ".join(str(v) for v in value)


def element_text(spec: SetSpec, key: tuple, value) -> str:
    return f"{key_text(spec, key)} : {value_text(spec, value)}" if spec.is_map else key_text(spec, key)


@dataclass(frozen=True)
class Fragment:
    """Everything one ServicePort contributes: its own chains and sets, and its elements in
    shared maps ({map name: {key: verdict}}), including its own maps' elements."""

    service: object  # the ServicePort it was rendered from (reuse check)
    chains: tuple[Chain, ...]
    sets: tuple[SetSpec, ...]
    elements: Mapping[str, Mapping[tuple, Verdict | None]]  # None: an element of a plain set
    context: tuple
    blocks: tuple[tuple[str, int, int], ...] = ()  # (balancing chain, first block, count): its slots


@dataclass(frozen=True)
class Ruleset:
    """Static chains plus one Fragment per ServicePort key. The merged views (chains, sets,
    elements) are computed on first use: a partial sync only looks at changed fragments."""

    static: tuple[Chain, ...]
    shared_maps: tuple[SetSpec, ...]
    fragments: MappingProxyType[str, Fragment] = field(default_factory=lambda: MappingProxyType({}))
    context: tuple = ()
    # Bookkeeping for the next render and partial sync, not part of the value: the slot
    # allocator's state, `base` the token of the ruleset this one was rendered from (None: a
    # render from scratch) and `changed` the fragment keys the render's Changes named (added,
    # re-rendered or removed), which plan_partial then looks at alone.
    slots: SlotState = field(default_factory=SlotState, compare=False, repr=False)
    token: object = field(default_factory=object, compare=False, repr=False)
    base: object = field(default=None, compare=False, repr=False)
    changed: frozenset = field(default=frozenset(), compare=False, repr=False)
    family: NftFamily = IP  # the table's family: ip kproxy or ip6 kproxy

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
        fam = self.family.name
        out = [f"add table {fam} {TABLE}"]
        for name, chain in self.chains.items():
            if chain.hook:
                out.append(f"add chain {fam} {TABLE} {name} {{ type {chain.hook.type} hook "
                           f"{hooks[chain.hook.hooknum]} priority {chain.hook.priority}; policy accept; }}")
            else:
                out.append(f"add chain {fam} {TABLE} {name}")
        for name, spec in self.sets.items():
            kind = "map" if spec.is_map else "set"
            extra = f" flags dynamic,timeout; timeout {spec.timeout}s;" if spec.dynamic else ""
            extra += " counter;" if spec.counter else ""
            # nft checks types: a slot map is declared by the expressions that feed it
            if spec.key == ("mark",):
                key = "typeof numgen random mod 1" + (f" : {fam} daddr . tcp dport" if spec.data else "")
                key += " : verdict" if spec.verdict_map else ""
            else:
                key = spec.type_text
            out.append(f"add {kind} {fam} {TABLE} {name} {{ {key};{extra} }}")
        for name, chain in self.chains.items():
            out.extend(f"add rule {fam} {TABLE} {name} {r.text}" for r in chain.rules)
        for name, elems in self.elements.items():
            spec = self.sets[name]
            items = [element_text(spec, k, v) for k, v in elems.items()]
            for i in range(0, len(items), 1000):
                out.append(f"add element {fam} {TABLE} {name} {{ " + ", ".join(items[i:i + 1000]) + " }")
        return "\n".join(out) + "\n"

    def text(self) -> str:
        """The ruleset in `nft` syntax (for golden files, logs and `nft -f`)."""
        out = [f"table {self.family.name} {TABLE} {{"]
        for name in sorted(self.sets):
            spec = self.sets[name]
            kind = "map" if spec.is_map else "set"
            out.append(f"\t{kind} {name} {{")
            out.append(f"\t\t{spec.type_text}")
            if spec.dynamic:
                out.append("\t\tflags dynamic,timeout")
                out.append(f"\t\ttimeout {spec.timeout}s")
            if spec.counter:
                out.append("\t\tcounter")
            elems = self.elements.get(name) or {}
            if elems:
                parts = [element_text(spec, key, elems[key]) for key in sorted(elems, key=repr)]
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
