"""Maglev table build and flow lookups: the Cython extension against its pure-Python twin.

    python -m bench.fastpath [--sizes 10,100,1000] [--table-size 65537] [--flows 2000000]

For each endpoint count N: the time to build the M-entry table (best of a few runs) with the
extension and with the twin (twin runs fewer times: it is slow), their ratio, and that both
tables are identical. Then lookups per second: batched (lookup_records over packed 5-tuples:
SipHash-2-4 + table index per flow, GIL released; and lookup_hashes over precomputed hashes),
and one call per flow through Maglev.pick for comparison. Then kube-proxy chain-name hashing
(sha256 + base32) per name, and a full iptables render with iptables/names.py's hash against
the extension's. Pure computation: no kernel, no network.
Targets (issue 4): build of 100 endpoints < 5 ms and >= 20x the twin; > 10 M lookups/s batched.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

from kproxy import fastpath as fp


def best_of(fn: Callable[[], object], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def endpoint_names(n: int) -> list[bytes]:
    return [f"10.244.{i // 250}.{i % 250 + 1}:8080".encode() for i in range(n)]


def flow_records(count: int) -> bytes:
    """`count` packed IPv4 5-tuples (random bytes stand in for addresses and ports)."""
    return os.urandom(count * fp.FLOW_RECORD_LEN)


def chain_names(services: int) -> None:
    """kube-proxy chain-name hashing (sha256 + base32): the twin, the extension, and a full
    iptables render of `services` Services x 10 endpoints with iptables/names.py's own hash and
    with the extension's (patched in for this process only)."""
    from kproxy.agent.state import Endpoint, ProxyState, ServicePort
    from kproxy.iptables import names
    from kproxy.iptables.render import render

    texts = [f"default/svc-{i}:httptcp10.244.{i % 250}.{i % 200}:8080" for i in range(100_000)]
    print(f"\nChain-name hash (sha256 + base32, first 16 chars), {len(texts):,} names, best of 3")
    for label, fn in (("iptables/names.py _hash16", names._hash16), ("fastpath twin (hashlib)", fp.py_chain_hash16),
                      ("cython chain_hash16", fp.chain_hash16)):
        t = best_of(lambda: [fn(x) for x in texts], 3)
        print(f"  {label:<28} {t / len(texts) * 1e6:6.2f} us/name")
    eps = lambda i: tuple(Endpoint(f"10.244.{i % 250}.{j + 1}", 8080) for j in range(10))
    state = ProxyState("n1", node_ips=("10.200.0.11",), cluster_cidr="10.244.0.0/16", services={
        sp.key: sp for sp in (ServicePort("default", f"svc-{i}", "http", "TCP", 80,
                                          cluster_ips=(f"10.96.{i // 250}.{i % 250 + 1}",), endpoints=eps(i))
                              for i in range(services))})
    original = names._hash16
    try:
        base = best_of(lambda: render(state), 3)
        names._hash16 = fp.chain_hash16
        fast = best_of(lambda: render(state), 3)
        fast_rules = render(state)
        names._hash16 = original
        same = fast_rules == render(state)
    finally:
        names._hash16 = original
    print(f"  full iptables render, {services} Services x 10 endpoints: {base * 1e3:.0f} ms with names._hash16, "
          f"{fast * 1e3:.0f} ms with the extension's ({base / fast:.2f}x), identical rulesets: {same}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fastpath", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10,100,1000", help="endpoint counts, comma-separated")
    p.add_argument("--table-size", type=int, default=fp.DEFAULT_TABLE_SIZE)
    p.add_argument("--flows", type=int, default=2_000_000, help="flows per batched lookup run")
    p.add_argument("--render-services", type=int, default=2000, help="Services in the render comparison")
    args = p.parse_args(argv)
    try:
        from kproxy import _fastpath as ext
    except ImportError:
        print("kproxy._fastpath is not built: run `python setup.py build_ext --inplace`", file=sys.stderr)
        return 1
    m = args.table_size
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"Maglev table build, M={m} (best of runs)")
    print(f"{'endpoints':>10} {'cython ms':>10} {'python ms':>10} {'speed-up':>9} {'identical':>9}")
    for n in sizes:
        names = endpoint_names(n)
        weights = [1] * n
        build_args = (names, weights, m, fp.OFFSET_KEY, fp.SKIP_KEY)
        c = best_of(lambda: ext.maglev_table(*build_args), 20)
        py = best_of(lambda: fp.py_maglev_table(*build_args), 2)
        same = ext.maglev_table(*build_args) == fp.py_maglev_table(*build_args)
        print(f"{n:>10} {c * 1e3:>10.2f} {py * 1e3:>10.1f} {py / c:>8.0f}x {str(same):>9}")

    table = ext.maglev_table(endpoint_names(100), [1] * 100, m, fp.OFFSET_KEY, fp.SKIP_KEY)
    records = flow_records(args.flows)
    count = args.flows
    print(f"\nLookups over a 100-endpoint table ({count:,} flows per run, best of 5)")
    t = best_of(lambda: ext.lookup_records(table, fp.FLOW_KEY, records, fp.FLOW_RECORD_LEN), 5)
    print(f"  cython lookup_records (hash + lookup, batched): {count / t / 1e6:8.1f} M/s")
    hashes = ext.hash_records(fp.FLOW_KEY, records, fp.FLOW_RECORD_LEN)
    t = best_of(lambda: ext.lookup_hashes(table, hashes), 5)
    print(f"  cython lookup_hashes (precomputed hashes):       {count / t / 1e6:8.1f} M/s")
    few = records[: 20_000 * fp.FLOW_RECORD_LEN]
    t = best_of(lambda: fp.py_lookup_records(table, fp.FLOW_KEY, few, fp.FLOW_RECORD_LEN), 1)
    print(f"  python twin lookup_records (20,000 flows):       {20_000 / t / 1e6:8.3f} M/s")
    chain_names(args.render_services)
    maglev = fp.Maglev([n.decode() for n in endpoint_names(100)])
    keys = [few[i:i + fp.FLOW_RECORD_LEN] for i in range(0, len(few), fp.FLOW_RECORD_LEN)]
    t = best_of(lambda: [maglev.pick(k) for k in keys], 3)
    print(f"  Maglev.pick, one call per flow ({fp.IMPLEMENTATION}):      {len(keys) / t / 1e6:8.3f} M/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
