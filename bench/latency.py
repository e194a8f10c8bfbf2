"""First-packet latency to a ClusterIP with 100, 1k and 10k Services installed: iptables mode
against nftables mode, in the same run, through real namespaces (tests/kernel/topology.py:
client -> node -> pod running the echo server).

    python -m bench.latency [--sizes 100,1000,10000] [--connects 300]
                            [--iptables-variants legacy,nft] [--nft-max 1000]

For each mode and size N, the node holds N Services (2 endpoints each; the measured Service is
the last one in iptables' KUBE-SERVICES order), and the client times `connect()` of --connects
new TCP connections to the measured ClusterIP (each a new conntrack entry, so every SYN walks
the NAT rules); p50/p99 in microseconds. A baseline connects straight to the pod IP. iptables-nft
restore of ~10k Services takes minutes (user time grows with the square of the chain count), so
the nft variant stops at --nft-max unless raised. Nothing touches the main namespace.
"""
from __future__ import annotations

from bench.stats import percentile

import argparse
import os
import socket
import struct
import sys
import time

from bench import results
from kproxy.agent.config import AgentConfig, IptablesConfig
from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from kproxy.iptables.backend import IptablesBackend
from kproxy.netns import NetNS
from kproxy.nftables.backend import NftablesBackend

TARGET_IP = "10.111.255.254"


def make_state(n: int, pod_ips: list[str]) -> ProxyState:
    services = {}
    eps = tuple(sorted(Endpoint(ip, 8080, is_local=True) for ip in pod_ips))
    for i in range(n - 1):
        sp = ServicePort("bench", f"svc-{i:05d}", "", "TCP", 80,
                         cluster_ips=(f"10.{100 + i // 65536}.{(i // 256) % 256}.{i % 256}",), endpoints=eps)
        services[sp.key] = sp
    target = ServicePort("bench", "zzz-target", "", "TCP", 80, cluster_ips=(TARGET_IP,), endpoints=eps)
    services[target.key] = target
    return ProxyState("node1", node_ips=("10.200.0.11",), cluster_cidr="10.244.0.0/16", services=services)


def connect_times(topo, ip: str, port: int, count: int) -> list[float]:
    """Seconds per connect() of `count` new connections from the client namespace."""
    def run() -> list[float]:
        out = []
        for _ in range(count):
            with socket.socket() as s:
                s.settimeout(5)
                start = time.perf_counter()
                s.connect((ip, port))
                out.append(time.perf_counter() - start)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return out
    return topo.ns(topo.client).run(run)


def measure(topo, backend, state: ProxyState, connects: int) -> tuple[float, list[float]]:
    """Seconds to load the rules, and the connect() times in microseconds."""
    start = time.perf_counter()
    backend.apply(backend.render(state), None)
    load = time.perf_counter() - start
    connect_times(topo, TARGET_IP, 80, 20)  # warm up
    return load, [t * 1e6 for t in connect_times(topo, TARGET_IP, 80, connects)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--connects", type=int, default=300)
    parser.add_argument("--iptables-variants", default="legacy,nft")
    parser.add_argument("--nft-max", type=int, default=1000)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tests.kernel.topology import POD_PORT, single_node

    with single_node(["p1", "p2"], tag="lat") as topo:
        pod_ips = [p.ip for p in topo.pods.values()]
        base = connect_times(topo, pod_ips[0], POD_PORT, args.connects)
        for n in sizes:
            results.point("first-packet connect latency p99", "pod IP, no Service rules", n,
                          percentile(base, .99) * 1e6, "us")
        print(f"baseline (client -> pod IP, no Service rules): p50 {percentile(base, .5) * 1e6:.0f} us, "
              f"p99 {percentile(base, .99) * 1e6:.0f} us")
        modes = [("nftables", None)] + [("iptables", v) for v in args.iptables_variants.split(",") if v]
        rows = []
        for n in sizes:
            state = make_state(n, pod_ips)
            for mode, variant in modes:
                if variant == "nft" and n > args.nft_max:
                    rows.append((n, f"iptables-{variant}", None))
                    continue
                netns = NetNS(topo.node)
                if mode == "nftables":
                    nft_config = AgentConfig(mode="nftables")
                    backend = NftablesBackend(netns, nft_config)
                else:
                    backend = IptablesBackend(netns, AgentConfig(
                        iptables=IptablesConfig(backend=variant, localhost_nodeports=False)))
                try:
                    load, times = measure(topo, backend, state, args.connects)
                    p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
                    name = mode if variant is None else f"iptables-{variant}"
                    results.point("first-packet connect latency p99", name, n, p99, "us")
                    results.distribution(f"first-packet connect latency at {n} Services", name, times, "us")
                    rows.append((n, name, (load, p50, p99)))
                    print(f"N={n:>6} {rows[-1][1]:<15} rules loaded in {load:6.2f} s; "
                          f"connect p50 {p50:7.0f} us  p99 {p99:7.0f} us", flush=True)
                finally:
                    backend.cleanup()
                    backend.close()
                    topo.run(topo.node, ["conntrack", "-F"], check=False)
                    netns.close()
        print("\nsummary (connect latency p50 / p99, microseconds):")
        for mode in [m for m, _ in modes[:1]] + [f"iptables-{v}" for _, v in modes[1:]]:
            cells = []
            for n in sizes:
                r = next(r for r in rows if r[0] == n and r[1] == mode)
                cells.append(f"N={n}: " + (f"{r[2][1]:.0f} / {r[2][2]:.0f}" if r[2] else "skipped (--nft-max)"))
            print(f"  {mode:<15} " + "   ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
