"""Fast-path functions: the compiled extension when present, else the pure-Python twin.

`IMPLEMENTATION` says which one is in use ("cython" or "python"); `kproxy version` prints it.
"""


def py_fnv1a32(data: bytes) -> int:
    """FNV-1a 32-bit hash of `data`; identical to kproxy._fastpath.fnv1a32."""
    h = 2166136261
    for c in data:
        h ^= c
        h = (h * 16777619) & 0xFFFFFFFF
    return h


try:
    from kproxy._fastpath import fnv1a32  # type: ignore[import-not-found]

    IMPLEMENTATION = "cython"
except ImportError:  # extension not built: the twin gives the same answers
    fnv1a32 = py_fnv1a32
    IMPLEMENTATION = "python"
