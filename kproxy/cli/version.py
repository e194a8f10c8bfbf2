"""`kproxy version`."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    import kproxy
    from kproxy import fastpath

    print(f"kproxy {kproxy.__version__} (fastpath: {fastpath.IMPLEMENTATION})")
    return 0
