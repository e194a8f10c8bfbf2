# cython: language_level=3
"""Compiled fast path. Filled by the fast-path work (Maglev, 5-tuple hashing); every function
here has a pure-Python twin in kproxy/fastpath.py that must return identical results."""


def fnv1a32(bytes data):
    """FNV-1a 32-bit hash of `data` (the seed function; used for stable chain names)."""
    cdef unsigned int h = 2166136261u
    cdef unsigned char c
    for c in data:
        h ^= c
        h = h * 16777619u
    return h


include "_fastpath_netlink.pxi"
