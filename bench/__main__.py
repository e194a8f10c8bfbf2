"""Runs every benchmark module in bench/ (or the ones named), each in its own process so one
failing or hanging benchmark cannot take the others down, then prints a short summary.

    python -m bench                  # all
    python -m bench apiserver_vs_etcd
    python -m bench --list
"""
from __future__ import annotations

import argparse
import os
import pkgutil
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
PER_BENCHMARK_TIMEOUT = 300.0


def discover() -> list[str]:
    """Benchmark module names, sorted: every module in bench/ not starting with "_"."""
    return sorted(m.name for m in pkgutil.iter_modules([BENCH_DIR])
                  if not m.name.startswith("_") and not m.ispkg)


def run_one(name: str) -> tuple[str, float]:
    """Runs `python -m bench.<name>` with its output passed through; returns (outcome, seconds)."""
    print(f"\n=== bench.{name} ===", flush=True)
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=REPO_ROOT,
                              timeout=PER_BENCHMARK_TIMEOUT)
        outcome = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    except subprocess.TimeoutExpired:
        outcome = f"timed out after {PER_BENCHMARK_TIMEOUT:.0f}s"
    return outcome, time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    available = discover()
    if args.list:
        print("\n".join(available))
        return 0
    unknown = [n for n in args.names if n not in available]
    if unknown:
        print(f"python -m bench: unknown benchmark(s) {', '.join(unknown)}; "
              f"available: {', '.join(available) or 'none'}", file=sys.stderr)
        return 2
    selected = args.names or available
    results = [(name, *run_one(name)) for name in selected]
    print("\n=== summary ===")
    width = max((len(n) for n, _, _ in results), default=4)
    for name, outcome, seconds in results:
        print(f"{name:<{width}}  {seconds:6.1f}s  {outcome}")
    return 0 if all(outcome == "ok" for _, outcome, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
