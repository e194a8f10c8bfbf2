"""iptables mode sync cost next to iptables-restore alone, in throwaway network namespaces.

    python -m bench.iptables_sync [--sizes 1000,10000] [--endpoints 10] [--variants nft,legacy]
                                  [--nft-max 2000] [--no-profile]

For each iptables variant and size N (Services x E endpoints):
- full sync: render time, restore-text time, apply time (IptablesBackend.apply with no
  previous ruleset: kernel chain listing, iptables-restore, jump rules), and the kernel-only time
  of iptables-restore loading the same text into the same (emptied) namespace;
- at the largest N, a one-endpoint change: incremental render, partial restore text, apply, and
  iptables-restore alone loading the same partial text;
- at the largest N, the periodic resync of the unchanged ruleset (what the agent does every
  syncPeriod between its hourly full syncs: the canary check, IptablesBackend.drifted(), then an
  incremental render and apply that find nothing to write), as a fraction of the full sync.
Every full-sync measurement (agent, and restore alone) starts from a fresh empty namespace.
The restore text is the agent's own (for nft, COMMIT sections of Variant.chains_per_commit
chains: one section per table costs iptables-nft-restore 1.8.9 time growing with lines x chains,
see kproxy/iptables/restore.py). --nft-max caps the sizes measured with nft.
"agent overhead" = (render + text + apply - kernel) / kernel. Then cProfile of one full render at
the largest N (top functions by own time). Nothing here touches the machine's main namespace.
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import subprocess
import sys
import time
from dataclasses import replace
from typing import Iterator

from bench import results
from kproxy.agent.config import AgentConfig, IptablesConfig
from kproxy.agent.state import Changes, Endpoint, ProxyState, ServicePort, changes_between
from kproxy.iptables.backend import IptablesBackend
from kproxy.iptables.driver import VARIANTS
from kproxy.iptables.render import render
from kproxy.iptables.restore import full_restore, partial_restore
from kproxy.netns import NetNS


def make_state(services: int, endpoints: int) -> ProxyState:
    sps = {}
    for i in range(services):
        eps = tuple(sorted(Endpoint(f"10.{128 + (i * endpoints + j) // 65536}.{((i * endpoints + j) // 256) % 256}."
                                    f"{(i * endpoints + j) % 256}", 8080, is_local=(j == 0))
                           for j in range(endpoints)))
        sp = ServicePort("bench", f"svc-{i}", "http", "TCP", 80,
                         cluster_ips=(f"10.96.{i // 256}.{i % 256}",),
                         node_port=30000 + i if i < 2000 else 0, endpoints=eps)
        sps[sp.key] = sp
    return ProxyState("bench-node", node_ips=("10.200.0.11",), cluster_cidr="10.0.0.0/8",
                      services=sps)


def change_one_endpoint(state: ProxyState) -> ProxyState:
    key = sorted(state.services)[len(state.services) // 2]
    sp = state.services[key]
    moved = replace(sp.endpoints[-1], ip="10.255.255.254")
    services = dict(state.services)
    services[key] = replace(sp, endpoints=tuple(sorted(sp.endpoints[:-1] + (moved,))))
    return replace(state, services=services, revision=state.revision + 1)


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def kernel_only(netns: NetNS, variant, text: str) -> float:
    start = time.perf_counter()
    res = netns.command([variant.restore, "--noflush", "-w", "5"], input=text, check=False, timeout=600)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise RuntimeError(f"{variant.restore}: {res.stderr.strip()}")
    return elapsed


def periodic_resync(backend: IptablesBackend, state: ProxyState, applied) -> float:
    """Seconds the agent spends on one periodic resync of an unchanged ruleset (median of 5):
    the canary check, then render against the applied ruleset and an apply with nothing to
    write. Raises if the check sees drift or the apply writes anything (it must not)."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        if backend.drifted():
            raise RuntimeError("the canary check reports drift on an untouched namespace")
        result = backend.apply(backend.render(state, applied, Changes(full=False)), applied)
        times.append(time.perf_counter() - start)
        if result.objects_written:
            raise RuntimeError(f"a resync of an unchanged ruleset wrote {result.objects_written} chains")
    return sorted(times)[len(times) // 2]


def row(label: str, render_s: float, text_s: float, apply_s: float, kernel_s: float) -> str:
    agent = render_s + text_s + apply_s
    overhead = (agent - kernel_s) / kernel_s * 100 if kernel_s else float("nan")
    return (f"{label:<34} render {render_s * 1000:8.1f} ms  text {text_s * 1000:7.1f} ms  "
            f"apply {apply_s * 1000:8.1f} ms  | restore alone {kernel_s * 1000:8.1f} ms  "
            f"| agent total {agent * 1000:8.1f} ms, overhead {overhead:+6.1f}%")


@contextlib.contextmanager
def fresh_netns(tag: str) -> Iterator[NetNS]:
    """A new, empty network namespace for one measurement; always deleted."""
    name = f"kpbench{os.getpid()}-{tag}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    netns = NetNS(name)
    try:
        yield netns
    finally:
        netns.close()
        subprocess.run(["ip", "netns", "del", name], check=False)


def bench_variant(variant_name: str, sizes: list[int], endpoints: int) -> None:
    variant = VARIANTS[variant_name]
    if not variant.available():
        print(f"{variant_name}: {variant.restore} not installed, skipped")
        return
    config = AgentConfig(iptables=IptablesConfig(backend=variant_name))
    for n in sizes:
        state = make_state(n, endpoints)
        with fresh_netns(f"{variant_name}-agent") as netns:
            backend = IptablesBackend(netns, config)
            backend.variant, backend.options  # probe outside the timed region
            sections = variant.chains_per_commit
            ruleset, render_s = timed(backend.render, state, None)
            text, text_s = timed(full_restore, ruleset, None, (), sections)
            _, apply_s = timed(backend.apply, ruleset, None)
            if n == max(sizes):
                periodic_s = periodic_resync(backend, state, ruleset)
                changed = change_one_endpoint(state)
                new, render2_s = timed(backend.render, changed, ruleset, changes_between(state, changed))
                ptext, ptext_s = timed(partial_restore, new, ruleset, sections)
                _, papply_s = timed(backend.apply, new, ruleset)
                pkernel_s = kernel_only(netns, variant, ptext)  # the same delta once more, tool alone
        with fresh_netns(f"{variant_name}-kernel") as netns:
            kernel_s = kernel_only(netns, variant, text)
        results.point(f"iptables-{variant_name} mode full sync", "kproxy agent (render + text + apply)", n,
                      render_s + text_s + apply_s, "s")
        results.point(f"iptables-{variant_name} mode full sync", "iptables-restore of the same text", n, kernel_s, "s")
        print(row(f"{variant_name} full {n}x{endpoints} ({ruleset.rule_count()} rules)",
                  render_s, text_s, apply_s, kernel_s), flush=True)
        if n == max(sizes):
            print(row(f"{variant_name} one-endpoint change at {n}", render2_s, ptext_s, papply_s, pkernel_s)
                  + f"  ({len(ptext.splitlines())} restore lines)", flush=True)
            agent_full = render_s + text_s + apply_s
            print(f"{'':<34} change / full sync: agent {(render2_s + ptext_s + papply_s) / agent_full:.3f}, "
                  f"restore alone {pkernel_s / kernel_s:.3f}", flush=True)
            print(f"{variant_name} periodic resync of the unchanged ruleset at {n}: {periodic_s * 1000:8.1f} ms "
                  f"= {periodic_s / agent_full * 100:.2f}% of the full sync ({agent_full * 1000:.1f} ms; "
                  f"target < 5%)", flush=True)


def profile_render(n: int, endpoints: int) -> None:
    state = make_state(n, endpoints)
    profiler = cProfile.Profile()
    profiler.enable()
    render(state)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    print(f"\ncProfile of render() at {n}x{endpoints} (top by own time):")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:4000])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.iptables_sync", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--variants", default="nft,legacy")
    parser.add_argument("--nft-max", type=int, default=10000,
                        help="largest size measured with iptables-nft (default 10000)")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)
    try:
        sizes = sorted(int(s) for s in args.sizes.split(","))
    except ValueError:
        parser.error(f"--sizes: want comma-separated integers, got {args.sizes!r}")
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            parser.error(f"--variants: unknown {v!r} (want nft, legacy)")
    if os.geteuid() != 0:
        print("bench.iptables_sync needs root (it creates a network namespace)", file=sys.stderr)
        return 1
    print(f"iptables sync benchmark, {args.endpoints} endpoints per Service, each measurement in a "
          "fresh network namespace")
    for v in variants:
        v_sizes = sizes if v != "nft" else [s for s in sizes if s <= args.nft_max]
        if v_sizes != sizes:
            print(f"nft: sizes above {args.nft_max} skipped (--nft-max raises the limit)")
        if v_sizes:
            bench_variant(v, v_sizes, args.endpoints)
    if not args.no_profile:
        profile_render(max(sizes), args.endpoints)
    return 0


if __name__ == "__main__":
    sys.exit(main())
