"""Fast-path functions: the compiled extension when present, else the pure-Python twin.

`IMPLEMENTATION` says which one is in use ("cython" or "python"); `kproxy version` prints it.
Every `py_*` function below is the twin of the extension function without the prefix and
returns identical results (same values, same array types); the public names are bound to the
extension when it imports.

Contracts:
- siphash24(key, data): SipHash-2-4 (Aumasson & Bernstein) of `data` under a 16-byte key, as an
  unsigned 64-bit int; matches the reference test vectors.
- maglev_table(names, weights, size, offset_key, skip_key): the Maglev lookup table (Eisenbud et
  al., NSDI 2016) of `size` entries (size prime, default 65537). Endpoint i's permutation is
  offset = siphash(offset_key, name) % size, skip = siphash(skip_key, name) % (size - 1) + 1;
  the table is filled in rounds, and in each round endpoint i claims its next `weights[i]`
  still-empty preferred entries (zero weight: no entries). Guarantees: deterministic in (names,
  weights, size, keys); every entry holds an endpoint index; endpoint i holds within weights[i]
  entries of size * weights[i] / sum(weights) (see `maglev_share_bound`); removing one of N
  equal endpoints moves little more than the 1/N of entries it held.
- lookup_hashes(table, hashes): table[h % len(table)] per hash.
- hash_records / lookup_records: the same over fixed-size byte records (packed 5-tuples), without
  the GIL in the extension.
- chain_hash16(text): the first 16 characters of base32(sha256(text)), kube-proxy's chain-name
  hash (the extension carries its own SHA-256, so no hashlib call per name).
"""
from __future__ import annotations

import hashlib
import socket
import struct
from array import array
from typing import Sequence

DEFAULT_TABLE_SIZE = 65537  # prime; the paper's default M
# Fixed, public keys: the hashes only have to spread well and be identical on every node.
OFFSET_KEY = bytes(range(16))
SKIP_KEY = bytes(range(16, 32))
FLOW_KEY = bytes(range(32, 48))

_MASK = 0xFFFFFFFFFFFFFFFF


def py_fnv1a32(data: bytes) -> int:
    """FNV-1a 32-bit hash of `data`; identical to kproxy._fastpath.fnv1a32."""
    h = 2166136261
    for c in data:
        h ^= c
        h = (h * 16777619) & 0xFFFFFFFF
    return h


# ------------------------------------------------------------------ SipHash-2-4 (twin)


def _rounds(v0: int, v1: int, v2: int, v3: int, n: int) -> tuple[int, int, int, int]:
    for _ in range(n):
        v0 = (v0 + v1) & _MASK
        v1 = ((v1 << 13) | (v1 >> 51)) & _MASK
        v1 ^= v0
        v0 = ((v0 << 32) | (v0 >> 32)) & _MASK
        v2 = (v2 + v3) & _MASK
        v3 = ((v3 << 16) | (v3 >> 48)) & _MASK
        v3 ^= v2
        v0 = (v0 + v3) & _MASK
        v3 = ((v3 << 21) | (v3 >> 43)) & _MASK
        v3 ^= v0
        v2 = (v2 + v1) & _MASK
        v1 = ((v1 << 17) | (v1 >> 47)) & _MASK
        v1 ^= v2
        v2 = ((v2 << 32) | (v2 >> 32)) & _MASK
    return v0, v1, v2, v3


def _split_key(key: bytes) -> tuple[int, int]:
    if len(key) != 16:
        raise ValueError(f"SipHash key must be 16 bytes, got {len(key)}")
    return struct.unpack("<QQ", key)


def _siphash(k0: int, k1: int, data: bytes) -> int:
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    n = len(data)
    end = n - n % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = _rounds(v0, v1, v2, v3, 2)
        v0 ^= m
    m = ((n & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= m
    v0, v1, v2, v3 = _rounds(v0, v1, v2, v3, 2)
    v0 ^= m
    v2 ^= 0xFF
    v0, v1, v2, v3 = _rounds(v0, v1, v2, v3, 4)
    return v0 ^ v1 ^ v2 ^ v3


def py_siphash24(key: bytes, data: bytes) -> int:
    k0, k1 = _split_key(key)
    return _siphash(k0, k1, bytes(data))


def _records(records: bytes | bytearray | memoryview, record_len: int) -> memoryview:
    view = memoryview(records).cast("B")
    if record_len <= 0 or len(view) % record_len:
        raise ValueError("records must be a whole number of record_len-byte records")
    return view


def py_hash_records(key: bytes, records: bytes, record_len: int) -> array:
    view = _records(records, record_len)
    k0, k1 = _split_key(key)
    return array("Q", (_siphash(k0, k1, bytes(view[i:i + record_len]))
                       for i in range(0, len(view), record_len)))


# ------------------------------------------------------------------ Maglev (twin)


def py_maglev_table(names: list[bytes], weights: list[int], size: int, offset_key: bytes,
                    skip_key: bytes) -> array:
    ko0, ko1 = _split_key(offset_key)
    ks0, ks1 = _split_key(skip_key)
    n = len(names)
    if len(weights) != n:
        raise ValueError("names and weights differ in length")
    if size < 2:
        raise ValueError("table size must be at least 2")
    if n and (min(weights) < 0 or sum(weights) <= 0):
        raise ValueError("weights must be >= 0 with a positive sum")
    table = [-1] * size
    if n == 0:
        return array("i", table)
    pos = [_siphash(ko0, ko1, name) % size for name in names]
    skip = [_siphash(ks0, ks1, name) % (size - 1) + 1 for name in names]
    filled = 0
    while filled < size:
        for i in range(n):
            step = skip[i]
            c = pos[i]
            for _ in range(weights[i]):
                if filled == size:
                    break
                while table[c] >= 0:
                    c += step
                    if c >= size:
                        c -= size
                table[c] = i
                c += step
                if c >= size:
                    c -= size
                filled += 1
            pos[i] = c
            if filled == size:
                break
    return array("i", table)


def py_lookup_hashes(table: Sequence[int], hashes: Sequence[int]) -> array:
    m = len(table)
    if m == 0:
        raise ValueError("empty table")
    return array("i", (table[h % m] for h in hashes))


def py_lookup_records(table: Sequence[int], key: bytes, records: bytes, record_len: int) -> array:
    if len(table) == 0:
        raise ValueError("empty table")
    return py_lookup_hashes(table, py_hash_records(key, records, record_len))


# ------------------------------------------------------------------ chain names (twin)


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_PAIRS = tuple(_B32[i >> 5] + _B32[i & 31] for i in range(1024))  # 10 bits -> 2 characters


def py_chain_hash16(text: str) -> str:
    """The first 16 characters of base32(sha256(text)): kube-proxy's chain-name hash
    (iptables/names.py); identical to kproxy._fastpath.chain_hash16, which is ~4x faster.
    The first 80 bits of the digest, two characters per 10 bits (same as base64.b32encode)."""
    bits = int.from_bytes(hashlib.sha256(text.encode()).digest()[:10], "big")
    t = _B32_PAIRS
    return "".join(t[(bits >> shift) & 1023] for shift in (70, 60, 50, 40, 30, 20, 10, 0))


# ------------------------------------------------------------------ shared helpers (pure Python)


def maglev_share_bound(weight: int) -> int:
    """How far an endpoint's entry count may lie from size * weight / total_weight (in entries):
    the last, partial round gives each endpoint between 0 and `weight` of its turns."""
    return weight


def flow_record(src_ip: str, src_port: int, dst_ip: str, dst_port: int, protocol: int) -> bytes:
    """The packed 5-tuple hashed for flow selection: addresses, ports and protocol in network
    order; 13 bytes for IPv4 (FLOW_RECORD_LEN), 37 for IPv6 (FLOW_RECORD_LEN_V6). Short records
    matter: SipHash costs one round per 8 bytes."""
    if ":" in src_ip or ":" in dst_ip:
        addrs = _addr16(src_ip) + _addr16(dst_ip)
    else:
        addrs = socket.inet_aton(src_ip) + socket.inet_aton(dst_ip)
    return addrs + struct.pack("!HHB", src_port, dst_port, protocol)


FLOW_RECORD_LEN = 13  # IPv4
FLOW_RECORD_LEN_V6 = 37


def _addr16(ip: str) -> bytes:
    if ":" in ip:
        return socket.inet_pton(socket.AF_INET6, ip)
    return b"\0" * 10 + b"\xff\xff" + socket.inet_aton(ip)


def client_record(ip: str) -> bytes:
    """The packed key for per-client (affinity) selection: the 16-byte client address."""
    return _addr16(ip)


try:
    from kproxy._fastpath import (
        chain_hash16,
        fnv1a32,
        hash_records,
        lookup_hashes,
        lookup_records,
        maglev_table,
        siphash24,
    )

    IMPLEMENTATION = "cython"
except ImportError:  # extension not built (or built without these): the twin gives the same answers
    fnv1a32 = py_fnv1a32
    chain_hash16 = py_chain_hash16
    siphash24 = py_siphash24
    hash_records = py_hash_records
    maglev_table = py_maglev_table
    lookup_hashes = py_lookup_hashes
    lookup_records = py_lookup_records
    IMPLEMENTATION = "python"


class Maglev:
    """A Maglev table over named, weighted endpoints (frozen after construction).

    `pick(key)` maps a byte key (a flow_record or client_record) to one endpoint name; the same
    key gives the same endpoint while the endpoint set is unchanged, and mostly still after one
    endpoint is added or removed. Endpoints with weight 0 are never picked; with no endpoint of
    positive weight, pick() returns None.
    """

    __slots__ = ("names", "table", "size", "_key")

    def __init__(self, endpoints: Sequence[str] | dict[str, int], size: int = DEFAULT_TABLE_SIZE,
                 key: bytes = FLOW_KEY) -> None:
        weighted = dict(endpoints) if isinstance(endpoints, dict) else {e: 1 for e in endpoints}
        self.names = tuple(sorted(name for name, w in weighted.items() if w > 0))
        self.size = size
        self._key = key
        self.table = maglev_table([n.encode() for n in self.names], [weighted[n] for n in self.names],
                                  size, OFFSET_KEY, SKIP_KEY) if self.names else None

    def pick(self, key: bytes) -> str | None:
        if self.table is None:
            return None
        return self.names[self.table[siphash24(self._key, key) % self.size]]

    def index(self, key: bytes) -> int:
        """The endpoint index (into `names`) for `key`; -1 without endpoints."""
        if self.table is None:
            return -1
        return self.table[siphash24(self._key, key) % self.size]
