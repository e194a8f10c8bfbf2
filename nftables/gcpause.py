"""A context manager that pauses Python's cyclic garbage collector.

Rendering and encoding a large ruleset allocate millions of small tuples and no cycles; with the
collector on, its repeated full passes over the (large, live) heap cost more than the work
itself (measured: about half of a 1k x 10 render). Reference counting still frees everything.
"""
from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
