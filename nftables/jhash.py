"""The kernel's jhash (include/linux/jhash.h, Bob Jenkins' lookup3) as nft's `jhash ... mod N
seed S offset O` expression computes it, so that `kproxy rules trace` can say which slot, and
so which endpoint, a given client address and port gets under maglev endpoint selection.

nft_jhash hashes the bytes of the source registers: `ip saddr . th sport` is the address (4
bytes, network order) then the port (2 bytes, network order) zero-padded to a 4-byte register:
8 bytes. The result is scaled into [0, N) by reciprocal_scale and the offset added.
"""
from __future__ import annotations

import socket
import struct

JHASH_INITVAL = 0xDEADBEEF
_M = 0xFFFFFFFF


def _rol(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - c) & _M; a ^= _rol(c, 4); c = (c + b) & _M
    b = (b - a) & _M; b ^= _rol(a, 6); a = (a + c) & _M
    c = (c - b) & _M; c ^= _rol(b, 8); b = (b + a) & _M
    a = (a - c) & _M; a ^= _rol(c, 16); c = (c + b) & _M
    b = (b - a) & _M; b ^= _rol(a, 19); a = (a + c) & _M
    c = (c - b) & _M; c ^= _rol(b, 4); b = (b + a) & _M
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    c ^= b; c = (c - _rol(b, 14)) & _M
    a ^= c; a = (a - _rol(c, 11)) & _M
    b ^= a; b = (b - _rol(a, 25)) & _M
    c ^= b; c = (c - _rol(b, 16)) & _M
    a ^= c; a = (a - _rol(c, 4)) & _M
    b ^= a; b = (b - _rol(a, 14)) & _M
    c ^= b; c = (c - _rol(b, 24)) & _M
    return c


def jhash(data: bytes, initval: int) -> int:
    """jhash(key, length, initval) for a byte string (words read little-endian, as the kernel
    reads them on x86)."""
    length = len(data)
    a = b = c = (JHASH_INITVAL + length + initval) & _M
    k = 0
    while length > 12:
        x, y, z = struct.unpack_from("<III", data, k)
        a, b, c = _mix((a + x) & _M, (b + y) & _M, (c + z) & _M)
        length -= 12
        k += 12
    if length == 0:
        return c
    tail = data[k:] + b"\0" * (12 - length)
    x, y, z = struct.unpack("<III", tail)
    return _final((a + x) & _M, (b + y) & _M, (c + z) & _M)


def client_slot(address: str, port: int, modulus: int, seed: int, offset: int = 0) -> int:
    """The slot `jhash ip saddr . th sport mod MODULUS seed SEED offset OFFSET` picks."""
    data = socket.inet_aton(address) + struct.pack(">H2x", port)
    return ((jhash(data, seed) * modulus) >> 32) + offset
