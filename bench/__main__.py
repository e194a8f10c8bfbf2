"""Runs every benchmark module in bench/ (or the ones named), each in its own process so one
failing or hanging benchmark cannot take the others down, then prints a short summary.

    python -m bench                  # all
    python -m bench apiserver_vs_etcd
    python -m bench --list
    python -m bench --plot DIR       # the size sweeps, then one PNG per figure in DIR
"""
from __future__ import annotations

import argparse
import os
import pkgutil
import signal
import subprocess
import sys
import time

from bench import results as bench_results
from bench.plot import plot

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
DEFAULT_TIMEOUT = 1800.0
# Modules of bench/ that are tools for the benchmarks, not benchmarks.
TOOLS = {"results", "plot", "stats"}
# What --plot runs when no names are given: the benchmarks that record cost against size or
# latency distributions (bench/results.py).
PLOTTED = ["nftables", "iptables_sync", "latency", "network_programming", "watchers"]
# On timeout: SIGINT first (KeyboardInterrupt runs the benchmark's cleanup: namespaces, servers),
# then SIGTERM, then SIGKILL, each after a grace period.
GRACE = 30.0


def discover() -> list[str]:
    """Benchmark module names, sorted: every module in bench/ not starting with "_"."""
    return sorted(m.name for m in pkgutil.iter_modules([BENCH_DIR])
                  if not m.name.startswith("_") and not m.ispkg and m.name not in TOOLS)


def stop(proc: subprocess.Popen) -> None:
    """Asks the benchmark to stop so its cleanup runs; forces it only if it does not."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(GRACE)
        except subprocess.TimeoutExpired:
            continue


def run_one(name: str, timeout: float, results: str | None = None) -> tuple[str, float]:
    """Runs `python -m bench.<name>` with its output passed through; returns (outcome, seconds).
    With `results`, the benchmark appends what it measured there (bench/results.py)."""
    print(f"\n=== bench.{name} ===", flush=True)
    start = time.monotonic()
    env = dict(os.environ)
    if results:
        env[bench_results.ENV] = results
    proc = subprocess.Popen([sys.executable, "-m", f"bench.{name}"], cwd=REPO_ROOT, env=env)
    try:
        returncode = proc.wait(timeout)
        outcome = "ok" if returncode == 0 else f"failed (exit {returncode})"
    except subprocess.TimeoutExpired:
        stop(proc)
        outcome = f"stopped after the {timeout:.0f}s timeout"
    except KeyboardInterrupt:
        stop(proc)
        raise
    return outcome, time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"per benchmark; then it is interrupted (default {DEFAULT_TIMEOUT:.0f})")
    parser.add_argument("--plot", metavar="DIR",
                        help="record results and write one PNG per figure into DIR "
                             f"(default benchmarks: {', '.join(PLOTTED)})")
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
    selected = args.names or (PLOTTED if args.plot else available)
    results_file = None
    if args.plot:
        os.makedirs(args.plot, exist_ok=True)
        results_file = os.path.join(args.plot, "results.jsonl")
        open(results_file, "w").close()  # this run's results only
    results = [(name, *run_one(name, args.timeout, results_file)) for name in selected]
    print("\n=== summary ===")
    width = max((len(n) for n, _, _ in results), default=4)
    for name, outcome, seconds in results:
        print(f"{name:<{width}}  {seconds:6.1f}s  {outcome}")
    if results_file:
        try:
            for path in plot(results_file, args.plot):
                print(f"figure: {path}")
        except (OSError, ValueError) as exc:
            print(f"python -m bench: cannot plot: {exc}", file=sys.stderr)
            return 1
    return 0 if all(outcome == "ok" for _, outcome, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
