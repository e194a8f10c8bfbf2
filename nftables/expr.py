"""Rule building blocks (pure; the builders are memoized since a ruleset repeats the same
statements thousands of times): each function returns a Stmt, the nf_tables expressions of one nft
statement and its text as `nft list` prints it. A Rule is a sequence of Stmts (pure values).

Register use: 32-bit registers NFT_REG32_00.. for concatenations, NFT_REG_1 for single values.
Address statements take the table's family (`fam`, nftables/family.py; IPv4 by default): an
IPv6 address fills four 32-bit registers, so the fields after it in a concatenation move on.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from functools import cached_property, lru_cache

from . import wire as w
from .family import IP, NftFamily

REG_VERDICT = 0
REG_1 = 1
REG32_00 = 8

# expression attribute numbers
PAYLOAD_DREG, PAYLOAD_BASE, PAYLOAD_OFFSET, PAYLOAD_LEN = 1, 2, 3, 4
BASE_NETWORK, BASE_TRANSPORT = 1, 2
META_DREG, META_KEY, META_SREG = 1, 2, 3
META_MARK, META_IIFNAME, META_L4PROTO = 3, 6, 16
IFNAMSIZ = 16
CMP_SREG, CMP_OP, CMP_DATA = 1, 2, 3
CMP_EQ, CMP_NEQ = 0, 1
BITWISE_SREG, BITWISE_DREG, BITWISE_LEN, BITWISE_MASK, BITWISE_XOR = 1, 2, 3, 4, 5
LOOKUP_SET, LOOKUP_SREG, LOOKUP_DREG = 1, 2, 3
IMMEDIATE_DREG, IMMEDIATE_DATA = 1, 2
NG_DREG, NG_MODULUS, NG_TYPE, NG_OFFSET = 1, 2, 3, 4
NG_RANDOM = 1
HASH_SREG, HASH_DREG, HASH_LEN, HASH_MODULUS, HASH_SEED, HASH_OFFSET, HASH_TYPE = 1, 2, 3, 4, 5, 6, 7
HASH_JENKINS = 0
NAT_TYPE, NAT_FAMILY, NAT_REG_ADDR_MIN, NAT_REG_ADDR_MAX = 1, 2, 3, 4
NAT_REG_PROTO_MIN, NAT_REG_PROTO_MAX, NAT_FLAGS = 5, 6, 7
NAT_DNAT = 1
NF_NAT_RANGE_MAP_IPS, NF_NAT_RANGE_PROTO_SPECIFIED = 1, 2
MASQ_FLAGS = 1
NF_NAT_RANGE_PROTO_RANDOM_FULLY = 1 << 4
CT_DREG, CT_KEY = 1, 2
CT_STATE = 0
CT_STATE_NEW = 1 << 3  # NF_CT_STATE_BIT(IP_CT_NEW)
FIB_DREG, FIB_RESULT, FIB_FLAGS = 1, 2, 3
FIB_RESULT_ADDRTYPE = 3
FIB_F_SADDR, FIB_F_DADDR = 1, 2
RTN_LOCAL = 2
REJECT_TYPE, REJECT_ICMP_CODE = 1, 2
REJECT_ICMP_UNREACH = 0
DYNSET_SET_NAME, DYNSET_OP, DYNSET_SREG_KEY, DYNSET_TIMEOUT = 1, 3, 4, 6
DYNSET_OP_UPDATE = 1

PROTO_NUMBERS = {"TCP": 6, "UDP": 17, "SCTP": 132}


@dataclass(frozen=True)
class Stmt:
    exprs: tuple  # ((name, attrs), ...)
    text: str


@dataclass(frozen=True)
class Rule:
    stmts: tuple[Stmt, ...]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.stmts if s.text)

    @property
    def exprs(self) -> tuple:
        return tuple(e for s in self.stmts for e in s.exprs)

    @cached_property
    def attrs(self) -> tuple:
        """NFTA_RULE_EXPRESSIONS content (computed once per rule, reused by later syncs)."""
        return expr_attrs(self.exprs)


def rule(*stmts: Stmt) -> Rule:
    return Rule(tuple(stmts))


def _e(name: str, *attrs: tuple) -> tuple:
    return (name, tuple(attrs))


@lru_cache(maxsize=4096)
def _payload(base: int, offset: int, length: int, reg: int) -> tuple:
    return _e("payload", (PAYLOAD_DREG, w.be32(reg)), (PAYLOAD_BASE, w.be32(base)),
              (PAYLOAD_OFFSET, w.be32(offset)), (PAYLOAD_LEN, w.be32(length)))


@lru_cache(maxsize=4096)
def _meta(key: int, reg: int) -> tuple:
    return _e("meta", (META_KEY, w.be32(key)), (META_DREG, w.be32(reg)))


def _cmp(op: int, data: bytes, reg: int = REG_1) -> tuple:
    return _e("cmp", (CMP_SREG, w.be32(reg)), (CMP_OP, w.be32(op)), (CMP_DATA, ((w.DATA_VALUE, data),)))


def _bitwise(mask: bytes, xor: bytes, reg: int = REG_1) -> tuple:
    return _e("bitwise", (BITWISE_SREG, w.be32(reg)), (BITWISE_DREG, w.be32(reg)),
              (BITWISE_LEN, w.be32(len(mask))), (BITWISE_MASK, ((w.DATA_VALUE, mask),)),
              (BITWISE_XOR, ((w.DATA_VALUE, xor),)))


def _verdict_data(code: int, chain: str | None = None) -> tuple:
    inner = [(w.VERDICT_CODE, w.be32(code))]
    if chain is not None:
        inner.append((w.VERDICT_CHAIN, w.string(chain)))
    return ((w.DATA_VERDICT, tuple(inner)),)


def _field(addr_field: str, fam: NftFamily) -> tuple[int, str]:
    offset = fam.saddr_offset if addr_field == "saddr" else fam.daddr_offset
    return offset, f"{fam.name} {addr_field}"


# ---------------------------------------------------------------- matches


@lru_cache(maxsize=65536)
def ip_addr(field: str, cidr: str, negate: bool = False, fam: NftFamily = IP) -> Stmt:
    """ip saddr|daddr [!=] ADDR or CIDR (ip6 ... for an IPv6 table)."""
    offset, name = _field(field, fam)
    op, sign = (CMP_NEQ, "!= ") if negate else (CMP_EQ, "")
    exprs = [_payload(BASE_NETWORK, offset, fam.addr_len, REG_1)]
    if fam is IP:
        packed = socket.inet_aton(cidr) if "/" not in cidr else None
        if packed is not None and socket.inet_ntoa(packed) == cidr:  # a plain address: no parse
            return Stmt((exprs[0], _cmp(op, packed)), f"{name} {sign}{cidr}")
    net = ipaddress.ip_network(cidr, strict=False)
    if net.prefixlen == net.max_prefixlen:
        text = f"{name} {sign}{net.network_address}"
    else:
        exprs.append(_bitwise(net.netmask.packed, bytes(fam.addr_len)))
        text = f"{name} {sign}{net}"
    exprs.append(_cmp(op, net.network_address.packed))
    return Stmt(tuple(exprs), text)


@lru_cache(maxsize=256)
def iifname(name: str, prefix: bool = False, negate: bool = False) -> Stmt:
    """iifname [!=] "NAME" (the whole name) or "NAME*" (with prefix: names starting with NAME;
    nft compares only the prefix's bytes, without the terminating NUL)."""
    raw = name.encode()
    data = raw if prefix else raw.ljust(IFNAMSIZ, b"\0")
    op, sign = (CMP_NEQ, "!= ") if negate else (CMP_EQ, "")
    return Stmt((_meta(META_IIFNAME, REG_1), _cmp(op, data)), f'iifname {sign}"{name}{"*" if prefix else ""}"')


@lru_cache(maxsize=4096)
def mark_clear(bit_mask: int) -> Stmt:
    """meta mark & MASK == 0 (packet not marked)."""
    return Stmt((_meta(META_MARK, REG_1), _bitwise(w.host32(bit_mask), w.host32(0)),
                 _cmp(CMP_EQ, w.host32(0))), f"meta mark & {bit_mask:#010x} == 0x00000000")


@lru_cache(maxsize=4096)
def ct_state_new() -> Stmt:
    return Stmt((_e("ct", (CT_DREG, w.be32(REG_1)), (CT_KEY, w.be32(CT_STATE))),
                 _bitwise(w.host32(CT_STATE_NEW), w.host32(0)), _cmp(CMP_NEQ, w.host32(0))),
                "ct state new")


@lru_cache(maxsize=4096)
def fib_local(field: str) -> Stmt:
    """fib saddr|daddr type local."""
    flag = FIB_F_SADDR if field == "saddr" else FIB_F_DADDR
    return Stmt((_e("fib", (FIB_DREG, w.be32(REG_1)), (FIB_RESULT, w.be32(FIB_RESULT_ADDRTYPE)),
                    (FIB_FLAGS, w.be32(flag))), _cmp(CMP_EQ, w.host32(RTN_LOCAL))),
                f"fib {field} type local")


@lru_cache(maxsize=4096)
def in_set(set_name: str, field: str = "saddr", fam: NftFamily = IP) -> Stmt:
    """ip saddr @SET."""
    offset, name = _field(field, fam)
    return Stmt((_payload(BASE_NETWORK, offset, fam.addr_len, REG_1),
                 _e("lookup", (LOOKUP_SET, w.string(set_name)), (LOOKUP_SREG, w.be32(REG_1)))),
                f"{name} @{set_name}")


@lru_cache(maxsize=4096)
def vmap_addr_proto_port(map_name: str, fam: NftFamily = IP) -> Stmt:
    """ip daddr . meta l4proto . th dport vmap @MAP."""
    after = REG32_00 + fam.addr_regs
    return Stmt((_payload(BASE_NETWORK, fam.daddr_offset, fam.addr_len, REG32_00), _meta(META_L4PROTO, after),
                 _payload(BASE_TRANSPORT, 2, 2, after + 1),
                 _e("lookup", (LOOKUP_SET, w.string(map_name)), (LOOKUP_SREG, w.be32(REG32_00)),
                    (LOOKUP_DREG, w.be32(REG_VERDICT)))),
                f"{fam.name} daddr . meta l4proto . th dport vmap @{map_name}")


@lru_cache(maxsize=4096)
def vmap_proto_port(map_name: str) -> Stmt:
    """meta l4proto . th dport vmap @MAP."""
    return Stmt((_meta(META_L4PROTO, REG32_00), _payload(BASE_TRANSPORT, 2, 2, REG32_00 + 1),
                 _e("lookup", (LOOKUP_SET, w.string(map_name)), (LOOKUP_SREG, w.be32(REG32_00)),
                    (LOOKUP_DREG, w.be32(REG_VERDICT)))),
                f"meta l4proto . th dport vmap @{map_name}")


def _offset_text(offset: int) -> str:
    return f" offset {offset}" if offset else ""


def _numgen(modulus: int, offset: int) -> tuple:
    return _e("numgen", (NG_DREG, w.be32(REG_1)), (NG_MODULUS, w.be32(modulus)),
              (NG_TYPE, w.be32(NG_RANDOM)), (NG_OFFSET, w.be32(offset)))


def _jhash_client(modulus: int, seed: int, offset: int, fam: NftFamily = IP) -> tuple:
    """jhash of the client's address and port (from REG32_00 on) into REG_1."""
    return (_payload(BASE_NETWORK, fam.saddr_offset, fam.addr_len, REG32_00),
            _payload(BASE_TRANSPORT, 0, 2, REG32_00 + fam.addr_regs),
            _e("hash", (HASH_SREG, w.be32(REG32_00)), (HASH_DREG, w.be32(REG_1)),
               (HASH_LEN, w.be32(fam.addr_len + 4)),
               (HASH_MODULUS, w.be32(modulus)), (HASH_SEED, w.be32(seed)), (HASH_OFFSET, w.be32(offset)),
               (HASH_TYPE, w.be32(HASH_JENKINS))))


def _lookup_verdict(map_name: str) -> tuple:
    return _e("lookup", (LOOKUP_SET, w.string(map_name)), (LOOKUP_SREG, w.be32(REG_1)),
              (LOOKUP_DREG, w.be32(REG_VERDICT)))


@lru_cache(maxsize=4096)
def numgen_vmap(modulus: int, map_name: str, offset: int = 0) -> Stmt:
    """numgen random mod N [offset O] vmap @MAP."""
    return Stmt((_numgen(modulus, offset), _lookup_verdict(map_name)),
                f"numgen random mod {modulus}{_offset_text(offset)} vmap @{map_name}")


@lru_cache(maxsize=4096)
def jhash_vmap(modulus: int, seed: int, map_name: str, offset: int = 0, fam: NftFamily = IP) -> Stmt:
    """jhash ip saddr . th sport mod N seed S [offset O] vmap @MAP (the flow's client picks the slot)."""
    return Stmt(_jhash_client(modulus, seed, offset, fam) + (_lookup_verdict(map_name),),
                f"jhash {fam.name} saddr . th sport mod {modulus} seed {seed:#x}{_offset_text(offset)} "
                f"vmap @{map_name}")


# ---------------------------------------------------------------- actions


@lru_cache(maxsize=4096)
def verdict(kind: str, chain: str | None = None) -> Stmt:
    """accept | drop | return | jump CHAIN | goto CHAIN."""
    code = {"accept": w.NF_ACCEPT, "drop": w.NF_DROP, "return": w.NFT_RETURN,
            "jump": w.NFT_JUMP, "goto": w.NFT_GOTO}[kind]
    return Stmt((_e("immediate", (IMMEDIATE_DREG, w.be32(REG_VERDICT)),
                    (IMMEDIATE_DATA, _verdict_data(code, chain))),),
                f"{kind} {chain}" if chain else kind)


@lru_cache(maxsize=4096)
def mark_or(bit_mask: int) -> Stmt:
    """meta mark set meta mark | MASK."""
    return Stmt((_meta(META_MARK, REG_1), _bitwise(w.host32(~bit_mask), w.host32(bit_mask)),
                 _e("meta", (META_KEY, w.be32(META_MARK)), (META_SREG, w.be32(REG_1)))),
                f"meta mark set meta mark | {bit_mask:#010x}")


@lru_cache(maxsize=4096)
def mark_xor(bit_mask: int) -> Stmt:
    """meta mark set meta mark ^ MASK."""
    return Stmt((_meta(META_MARK, REG_1), _bitwise(w.host32(0xFFFFFFFF), w.host32(bit_mask)),
                 _e("meta", (META_KEY, w.be32(META_MARK)), (META_SREG, w.be32(REG_1)))),
                f"meta mark set meta mark ^ {bit_mask:#010x}")


@lru_cache(maxsize=4096)
def masquerade_fully_random() -> Stmt:
    return Stmt((_e("masq", (MASQ_FLAGS, w.be32(NF_NAT_RANGE_PROTO_RANDOM_FULLY))),),
                "masquerade fully-random")


@lru_cache(maxsize=4096)
def addr_pair_in_set(set_name: str, fam: NftFamily = IP) -> Stmt:
    """ip saddr . ip daddr @SET (a hairpin check: the set holds "E . E" for each endpoint E)."""
    return Stmt((_payload(BASE_NETWORK, fam.saddr_offset, fam.addr_len, REG32_00),
                 _payload(BASE_NETWORK, fam.daddr_offset, fam.addr_len, REG32_00 + fam.addr_regs),
                 _e("lookup", (LOOKUP_SET, w.string(set_name)), (LOOKUP_SREG, w.be32(REG32_00)))),
                f"{fam.name} saddr . {fam.name} daddr @{set_name}")


def _dnat_from_map(map_name: str, fam: NftFamily = IP) -> tuple:
    """lookup REG_1 in MAP -> (address . port) from REG32_00 on, then DNAT to them."""
    port_reg = REG32_00 + fam.addr_regs
    return (_e("lookup", (LOOKUP_SET, w.string(map_name)), (LOOKUP_SREG, w.be32(REG_1)),
               (LOOKUP_DREG, w.be32(REG_1))),
            _e("nat", (NAT_TYPE, w.be32(NAT_DNAT)), (NAT_FAMILY, w.be32(fam.nfproto)),
               (NAT_REG_ADDR_MIN, w.be32(REG_1)), (NAT_REG_ADDR_MAX, w.be32(REG_1)),
               (NAT_REG_PROTO_MIN, w.be32(port_reg)), (NAT_REG_PROTO_MAX, w.be32(port_reg)),
               (NAT_FLAGS, w.be32(NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED))))


def _l4proto(protocol: str) -> tuple:
    return (_meta(META_L4PROTO, REG_1), _cmp(CMP_EQ, bytes([PROTO_NUMBERS[protocol]])))


@lru_cache(maxsize=4096)
def dnat_numgen_map(modulus: int, map_name: str, protocol: str, offset: int = 0, fam: NftFamily = IP) -> Stmt:
    """meta l4proto P dnat ip to numgen random mod N [offset O] map @MAP (slot -> address .
    port): the endpoint is data, so changing it never touches a chain or a verdict."""
    return Stmt(_l4proto(protocol) + (_numgen(modulus, offset),) + _dnat_from_map(map_name, fam),
                f"meta l4proto {protocol.lower()} dnat {fam.name} to numgen random mod {modulus}{_offset_text(offset)} "
                f"map @{map_name}")


@lru_cache(maxsize=4096)
def dnat_jhash_map(modulus: int, seed: int, map_name: str, protocol: str, offset: int = 0,
                   fam: NftFamily = IP) -> Stmt:
    """dnat ip to jhash ip saddr . P sport mod N seed S [offset O] map @MAP: the client's
    address and port pick the slot (maglev endpoint selection). nft prints the l4proto match
    as the dependency of "P sport", hence the text."""
    proto = protocol.lower()
    return Stmt(_l4proto(protocol) + _jhash_client(modulus, seed, offset, fam) + _dnat_from_map(map_name, fam),
                f"dnat {fam.name} to jhash {fam.name} saddr . {proto} sport mod {modulus} seed {seed:#x}"
                f"{_offset_text(offset)} map @{map_name}")


def dnat(ip: str, port: int, protocol: str, fam: NftFamily = IP) -> Stmt:
    """meta l4proto P dnat to IP:PORT (the l4proto match makes the port rewrite valid)."""
    proto = PROTO_NUMBERS[protocol]
    where = f"[{ip}]:{port}" if fam is not IP else f"{ip}:{port}"
    return Stmt((_meta(META_L4PROTO, REG_1), _cmp(CMP_EQ, bytes([proto])),
                 _e("immediate", (IMMEDIATE_DREG, w.be32(REG_1)),
                    (IMMEDIATE_DATA, ((w.DATA_VALUE, fam.pack(ip)),))),
                 _e("immediate", (IMMEDIATE_DREG, w.be32(REG_1 + 1)),
                    (IMMEDIATE_DATA, ((w.DATA_VALUE, w.be16(port)),))),
                 _e("nat", (NAT_TYPE, w.be32(NAT_DNAT)), (NAT_FAMILY, w.be32(fam.nfproto)),
                    (NAT_REG_ADDR_MIN, w.be32(REG_1)), (NAT_REG_PROTO_MIN, w.be32(REG_1 + 1)))),
                f"meta l4proto {protocol.lower()} dnat to {where}")


@lru_cache(maxsize=4096)
def reject(fam: NftFamily = IP) -> Stmt:
    """reject: ICMP port unreachable (ICMPv6 port unreachable in an ip6 table), as upstream's."""
    return Stmt((_e("reject", (REJECT_TYPE, w.be32(REJECT_ICMP_UNREACH)),
                    (REJECT_ICMP_CODE, bytes([fam.port_unreachable]))),), "reject")


def update_saddr(set_name: str, timeout_seconds: int, fam: NftFamily = IP) -> Stmt:
    """update @SET { ip saddr } (refreshes the client's affinity timeout)."""
    return Stmt((_payload(BASE_NETWORK, fam.saddr_offset, fam.addr_len, REG_1),
                 _e("dynset", (DYNSET_SET_NAME, w.string(set_name)), (DYNSET_OP, w.be32(DYNSET_OP_UPDATE)),
                    (DYNSET_SREG_KEY, w.be32(REG_1)), (DYNSET_TIMEOUT, w.be64(timeout_seconds * 1000)))),
                f"update @{set_name} {{ {fam.name} saddr timeout {nft_duration(timeout_seconds)} }}")


def nft_duration(seconds: int) -> str:
    """A duration as nft prints it: 10800 -> "3h", 90 -> "1m30s"."""
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out or "0s"


def expr_attrs(exprs: tuple) -> tuple:
    """NFTA_RULE_EXPRESSIONS content for a rule's expressions."""
    return tuple((w.LIST_ELEM, ((w.EXPR_NAME, w.string(name)), (w.EXPR_DATA, attrs)))
                 for name, attrs in exprs)
