# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled fast path. Every public function here has a pure-Python twin in kproxy/fastpath.py
that returns identical results (tests/unit/test_fastpath*.py prove it); see that module for the
contracts. Inner loops touch only C integers and buffers and run without the GIL."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t
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


# ------------------------------------------------------------------ chain names (sha256 + base32)

cdef uint32_t _K256[64]
for _i, _k in enumerate((
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2)):
    _K256[_i] = _k

cdef const char* _B32 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


cdef inline uint32_t _rotr(uint32_t x, int n) noexcept nogil:
    return (x >> n) | (x << (32 - n))


cdef void _sha256_block(uint32_t* h, const uint8_t* p) noexcept nogil:
    cdef uint32_t w[64]
    cdef uint32_t a, b, c, d, e, f, g, hh, t1, t2, s0, s1
    cdef int i
    for i in range(16):
        w[i] = ((<uint32_t>p[4 * i] << 24) | (<uint32_t>p[4 * i + 1] << 16)
                | (<uint32_t>p[4 * i + 2] << 8) | <uint32_t>p[4 * i + 3])
    for i in range(16, 64):
        s0 = _rotr(w[i - 15], 7) ^ _rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
        s1 = _rotr(w[i - 2], 17) ^ _rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
        w[i] = w[i - 16] + s0 + w[i - 7] + s1
    a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; hh = h[7]
    for i in range(64):
        s1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
        t1 = hh + s1 + ((e & f) ^ ((~e) & g)) + _K256[i] + w[i]
        s0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
        t2 = s0 + ((a & b) ^ (a & c) ^ (b & c))
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh


cdef void _sha256(const uint8_t* data, Py_ssize_t n, uint8_t* out) noexcept nogil:
    cdef uint32_t h[8]
    h[0] = 0x6a09e667; h[1] = 0xbb67ae85; h[2] = 0x3c6ef372; h[3] = 0xa54ff53a
    h[4] = 0x510e527f; h[5] = 0x9b05688c; h[6] = 0x1f83d9ab; h[7] = 0x5be0cd19
    cdef Py_ssize_t i = 0, rest
    cdef uint8_t tail[128]
    cdef uint64_t bits = (<uint64_t>n) * 8
    cdef int j, tail_len
    while n - i >= 64:
        _sha256_block(h, data + i)
        i += 64
    rest = n - i
    memset(tail, 0, 128)
    for j in range(rest):
        tail[j] = data[i + j]
    tail[rest] = 0x80
    tail_len = 64 if rest < 56 else 128
    for j in range(8):
        tail[tail_len - 1 - j] = <uint8_t>(bits >> (8 * j))
    _sha256_block(h, tail)
    if tail_len == 128:
        _sha256_block(h, tail + 64)
    for j in range(8):
        out[4 * j] = <uint8_t>(h[j] >> 24)
        out[4 * j + 1] = <uint8_t>(h[j] >> 16)
        out[4 * j + 2] = <uint8_t>(h[j] >> 8)
        out[4 * j + 3] = <uint8_t>h[j]


def chain_hash16(str text):
    """The first 16 characters of base32(sha256(text.encode())): kube-proxy's chain-name hash."""
    cdef bytes data = text.encode()
    cdef uint8_t digest[32]
    cdef char out[16]
    cdef uint64_t hi
    cdef int j
    _sha256(<const uint8_t*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), digest)
    # 80 bits = 16 base32 characters of 5 bits: the first 8 bytes, then 2 more
    hi = 0
    for j in range(8):
        hi = (hi << 8) | digest[j]
    for j in range(12):  # 60 bits from hi
        out[j] = _B32[(hi >> (59 - 5 * j)) & 31]
    cdef uint32_t lo = ((<uint32_t>(hi & 0xF)) << 16) | (<uint32_t>digest[8] << 8) | digest[9]  # 20 bits
    for j in range(4):
        out[12 + j] = _B32[(lo >> (15 - 5 * j)) & 31]
    return out[:16].decode("ascii")


include "_fastpath_netlink.pxi"
