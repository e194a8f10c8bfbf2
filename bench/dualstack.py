"""Dual-stack sync cost: N dual-stack Services (an IPv4 and an IPv6 ClusterIP, endpoints of both
families) through the agent's backend pair (kproxy.agent.dualstack), per mode, next to the
kernel tools loading the same IPv6 ruleset, in throwaway namespaces.

    python -m bench.dualstack [--sizes 1000,10000] [--endpoints 5] [--modes iptables,nftables]

For each mode and size:
- full sync of both families into an empty namespace (render + apply, kernel commits included),
  and the IPv6 pass alone;
- the tool's own load of the IPv6 pass's ruleset into another empty namespace: ip6tables-restore
  (nft variant) of the same restore text, or `nft -f` of the same ip6 table script;
- one IPv6 endpoint replaced: an incremental render and apply of both families (median of 5).
Timing is printed, never asserted. Nothing here touches the machine's main namespace.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import time
from dataclasses import replace
from typing import Iterator

from kproxy.agent import backend as backends
from kproxy.agent.config import AgentConfig, IptablesConfig
from kproxy.agent.dualstack import DualStackBackend
from kproxy.agent.families import IPV6, family_view
from kproxy.agent.state import Endpoint, ProxyState, ServicePort, changes_between
from kproxy.netns import NetNS


def make_state(services: int, endpoints: int) -> ProxyState:
    """N Services, each with both families' ClusterIPs and E endpoints of each family."""
    sps = {}
    for i in range(services):
        eps = []
        for j in range(endpoints):
            k = i * endpoints + j
            eps.append(Endpoint(f"10.{128 + k // 65536}.{(k // 256) % 256}.{k % 256}", 8080, is_local=j == 0))
            eps.append(Endpoint(f"fd00:10:244:{k // 65536:x}::{k % 65536:x}", 8080, is_local=j == 0))
        sp = ServicePort("bench", f"svc-{i}", "http", "TCP", 80,
                         cluster_ips=(f"10.96.{i // 256}.{i % 256}", f"fd00:10:96::{i:x}"),
                         node_port=30000 + i if i < 2000 else 0, endpoints=tuple(sorted(eps)))
        sps[sp.key] = sp
    return ProxyState("bench-node", node_ips=("10.200.0.11", "fd00:200::11"),
                      cluster_cidr="10.0.0.0/8,fd00:10:244::/56", services=sps)


def move_one_ipv6_endpoint(state: ProxyState, n: int) -> ProxyState:
    """One Service's last IPv6 endpoint replaced by another address (a rolling update's step)."""
    key = sorted(state.services)[len(state.services) // 2]
    sp = state.services[key]
    v6 = [e for e in sp.endpoints if ":" in e.ip]
    moved = replace(v6[-1], ip=f"fd00:10:255::{1 + n % 250:x}")
    services = dict(state.services)
    services[key] = replace(sp, endpoints=tuple(sorted([e for e in sp.endpoints if e != v6[-1]] + [moved])))
    return replace(state, services=services, revision=state.revision + 1)


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


def make_backend(mode: str, netns: NetNS) -> DualStackBackend:
    config = AgentConfig(mode=mode, iptables=IptablesConfig(backend="nft"))
    cls = backends.get(mode)
    return DualStackBackend({family: cls(netns, config, family) for family in (4, 6)})


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def tool_load(mode: str, netns: NetNS, ruleset) -> float:
    """Seconds the mode's own tool takes to load the IPv6 pass's ruleset into `netns`."""
    if mode == "nftables":
        argv, text = ["nft", "-f", "-"], ruleset.script()
    else:
        from kproxy.iptables.driver import VARIANTS6
        from kproxy.iptables.restore import full_restore
        variant = VARIANTS6["nft"]  # the same text the backend writes: its sections of chains
        argv = [variant.restore, "--noflush", "-w", "5"]
        text = full_restore(ruleset, None, (), variant.chains_per_commit)
    start = time.perf_counter()
    res = netns.command(argv, input=text, check=False, timeout=1800)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise RuntimeError(f"{argv[0]}: {res.stderr.strip()[:300]}")
    return elapsed


def bench(mode: str, n: int, endpoints: int) -> None:
    state = make_state(n, endpoints)
    with fresh_netns(f"{mode[:3]}-{n}") as netns:
        backend = make_backend(mode, netns)
        try:
            ruleset, render_s = timed(backend.render, state)
            _, apply_s = timed(netns.run, backend.apply, ruleset, None)
            v6 = backend.passes[IPV6]
            view = family_view(state, IPV6)
            v6_ruleset, v6_render_s = timed(v6.render, view)
            changes = []
            previous, before = ruleset, state
            for i in range(5):
                after = move_one_ipv6_endpoint(before, i)
                changed = changes_between(before, after)  # the tracker's answer, not timed
                start = time.perf_counter()
                new = backend.render(after, previous, changed)
                netns.run(backend.apply, new, previous)
                changes.append(time.perf_counter() - start)
                previous, before = new, after
        finally:
            backend.cleanup()
            backend.close()
    with fresh_netns(f"{mode[:3]}-{n}-v6") as netns:
        v6_backend = make_backend(mode, netns).passes[IPV6]
        try:
            _, v6_apply_s = timed(netns.run, v6_backend.apply, v6_ruleset, None)
        finally:
            v6_backend.cleanup()
            v6_backend.close()
    with fresh_netns(f"{mode[:3]}-{n}-tool") as netns:
        tool_s = tool_load(mode, netns, v6_ruleset)
    tool = "nft -f" if mode == "nftables" else "ip6tables-nft-restore"
    print(f"{mode:<9} {n:>6} dual-stack Services x {endpoints}+{endpoints} endpoints: "
          f"full sync both families {1000 * (render_s + apply_s):8.1f} ms "
          f"(render {1000 * render_s:.1f}, apply {1000 * apply_s:.1f}) | IPv6 pass alone "
          f"{1000 * (v6_render_s + v6_apply_s):8.1f} ms vs {tool} of the same ruleset {1000 * tool_s:8.1f} ms | "
          f"one IPv6 endpoint moved {1000 * statistics.median(changes):6.1f} ms", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--endpoints", type=int, default=5)
    parser.add_argument("--modes", default="iptables,nftables")
    args = parser.parse_args(argv)
    for mode in args.modes.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            bench(mode, n, args.endpoints)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
