# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled fast path. Every public function here has a pure-Python twin in kproxy/fastpath.py
that returns identical results (tests/unit/test_fastpath*.py prove it); see that module for the
contracts. Inner loops touch only C integers and buffers and run without the GIL."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from array import array


def fnv1a32(bytes data):
    """FNV-1a 32-bit hash of `data` (the seed function; used for stable chain names)."""
    cdef unsigned int h = 2166136261u
    cdef unsigned char c
    for c in data:
        h ^= c
        h = h * 16777619u
    return h


# ------------------------------------------------------------------ SipHash-2-4

cdef inline uint64_t _rotl(uint64_t x, int b) noexcept nogil:
    return (x << b) | (x >> (64 - b))


cdef inline uint64_t _load64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>p[0] | (<uint64_t>p[1] << 8) | (<uint64_t>p[2] << 16) | (<uint64_t>p[3] << 24)
            | (<uint64_t>p[4] << 32) | (<uint64_t>p[5] << 40) | (<uint64_t>p[6] << 48)
            | (<uint64_t>p[7] << 56))


cdef uint64_t _siphash(uint64_t k0, uint64_t k1, const uint8_t* data, Py_ssize_t n) noexcept nogil:
    cdef uint64_t v0 = k0 ^ 0x736f6d6570736575ULL
    cdef uint64_t v1 = k1 ^ 0x646f72616e646f6dULL
    cdef uint64_t v2 = k0 ^ 0x6c7967656e657261ULL
    cdef uint64_t v3 = k1 ^ 0x7465646279746573ULL
    cdef uint64_t m
    cdef Py_ssize_t i = 0, j, end = n - (n % 8)
    cdef int r
    while i < end:
        m = _load64(data + i)
        v3 ^= m
        for r in range(2):
            v0 += v1; v1 = _rotl(v1, 13); v1 ^= v0; v0 = _rotl(v0, 32)
            v2 += v3; v3 = _rotl(v3, 16); v3 ^= v2
            v0 += v3; v3 = _rotl(v3, 21); v3 ^= v0
            v2 += v1; v1 = _rotl(v1, 17); v1 ^= v2; v2 = _rotl(v2, 32)
        v0 ^= m
        i += 8
    m = (<uint64_t>(n & 0xFF)) << 56
    j = 0
    while i + j < n:
        m |= (<uint64_t>data[i + j]) << (8 * j)
        j += 1
    v3 ^= m
    for r in range(2):
        v0 += v1; v1 = _rotl(v1, 13); v1 ^= v0; v0 = _rotl(v0, 32)
        v2 += v3; v3 = _rotl(v3, 16); v3 ^= v2
        v0 += v3; v3 = _rotl(v3, 21); v3 ^= v0
        v2 += v1; v1 = _rotl(v1, 17); v1 ^= v2; v2 = _rotl(v2, 32)
    v0 ^= m
    v2 ^= 0xFF
    for r in range(4):
        v0 += v1; v1 = _rotl(v1, 13); v1 ^= v0; v0 = _rotl(v0, 32)
        v2 += v3; v3 = _rotl(v3, 16); v3 ^= v2
        v0 += v3; v3 = _rotl(v3, 21); v3 ^= v0
        v2 += v1; v1 = _rotl(v1, 17); v1 ^= v2; v2 = _rotl(v2, 32)
    return v0 ^ v1 ^ v2 ^ v3


cdef void _split_key(bytes key, uint64_t* k0, uint64_t* k1) except *:
    if PyBytes_GET_SIZE(key) != 16:
        raise ValueError(f"SipHash key must be 16 bytes, got {PyBytes_GET_SIZE(key)}")
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(key)
    k0[0] = _load64(p)
    k1[0] = _load64(p + 8)


def siphash24(bytes key, bytes data):
    """SipHash-2-4 of `data` under the 16-byte `key`, as an unsigned 64-bit int."""
    cdef uint64_t k0, k1
    _split_key(key, &k0, &k1)
    return _siphash(k0, k1, <const uint8_t*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


def hash_records(bytes key, const uint8_t[::1] records, Py_ssize_t record_len):
    """SipHash-2-4 of each `record_len`-byte record of `records` -> array('Q')."""
    if record_len <= 0 or records.shape[0] % record_len:
        raise ValueError("records must be a whole number of record_len-byte records")
    cdef uint64_t k0, k1
    _split_key(key, &k0, &k1)
    cdef Py_ssize_t count = records.shape[0] // record_len, i
    out = array("Q", bytes(8 * count))
    cdef uint64_t[::1] res = out
    if count:
        with nogil:
            for i in range(count):
                res[i] = _siphash(k0, k1, &records[i * record_len], record_len)
    return out


# ------------------------------------------------------------------ Maglev

def maglev_table(list names, list weights, Py_ssize_t size, bytes offset_key, bytes skip_key):
    """Maglev lookup table (see kproxy.fastpath.maglev_table for the contract)."""
    cdef Py_ssize_t n = len(names), i, filled = 0, turn
    cdef uint64_t ko0, ko1, ks0, ks1
    _split_key(offset_key, &ko0, &ko1)
    _split_key(skip_key, &ks0, &ks1)
    if len(weights) != n:
        raise ValueError("names and weights differ in length")
    if size < 2:
        raise ValueError("table size must be at least 2")
    if n and (min(weights) < 0 or sum(weights) <= 0):
        raise ValueError("weights must be >= 0 with a positive sum")
    out = array("i", bytes(4 * size))
    cdef int32_t[::1] table = out
    if n == 0:
        table[:] = -1
        return out
    cdef uint64_t* pos = <uint64_t*>malloc(n * sizeof(uint64_t))
    cdef uint64_t* skip = <uint64_t*>malloc(n * sizeof(uint64_t))
    cdef long* weight = <long*>malloc(n * sizeof(long))
    cdef uint64_t m = <uint64_t>size, c
    cdef bytes name
    try:
        if pos == NULL or skip == NULL or weight == NULL:
            raise MemoryError()
        for i in range(n):
            name = names[i]
            pos[i] = _siphash(ko0, ko1, <const uint8_t*>PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name)) % m
            skip[i] = _siphash(ks0, ks1, <const uint8_t*>PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name)) % (m - 1) + 1
            weight[i] = weights[i]
        with nogil:
            memset(&table[0], 0xFF, size * sizeof(int32_t))  # -1: empty
            while filled < size:
                for i in range(n):
                    turn = 0
                    while turn < weight[i] and filled < size:
                        c = pos[i]
                        while table[c] >= 0:
                            c += skip[i]
                            if c >= m:
                                c -= m
                        table[c] = <int32_t>i
                        c += skip[i]
                        if c >= m:
                            c -= m
                        pos[i] = c
                        filled += 1
                        turn += 1
                    if filled == size:
                        break
    finally:
        free(pos)
        free(skip)
        free(weight)
    return out


def lookup_hashes(const int32_t[::1] table, const uint64_t[::1] hashes):
    """table[h % len(table)] for every h -> array('i')."""
    cdef Py_ssize_t count = hashes.shape[0], i
    cdef uint64_t m = <uint64_t>table.shape[0]
    if m == 0:
        raise ValueError("empty table")
    out = array("i", bytes(4 * count))
    cdef int32_t[::1] res = out
    if count:
        with nogil:
            for i in range(count):
                res[i] = table[hashes[i] % m]
    return out


def lookup_records(const int32_t[::1] table, bytes key, const uint8_t[::1] records, Py_ssize_t record_len):
    """table[siphash24(key, record) % len(table)] for each record -> array('i')."""
    if record_len <= 0 or records.shape[0] % record_len:
        raise ValueError("records must be a whole number of record_len-byte records")
    cdef uint64_t k0, k1
    _split_key(key, &k0, &k1)
    cdef uint64_t m = <uint64_t>table.shape[0]
    if m == 0:
        raise ValueError("empty table")
    cdef Py_ssize_t count = records.shape[0] // record_len, i
    out = array("i", bytes(4 * count))
    cdef int32_t[::1] res = out
    if count:
        with nogil:
            for i in range(count):
                res[i] = table[_siphash(k0, k1, &records[i * record_len], record_len) % m]
    return out


include "_fastpath_netlink.pxi"
