"""nftables mode sync cost next to `nft -f` loading the same ruleset, in throwaway namespaces.

    python -m bench.nftables [--sizes 100,1000,10000] [--endpoints 10] [--changes 5]

For each size N (Services x E endpoints; kproxy's layout: per-Service chains, dispatch verdict
maps, endpoints as data maps, see kproxy/nftables/render.py):
- kproxy full sync into an empty namespace: render, plan + encode (Cython encoder when built),
  and NftablesBackend.apply (name listing + one netlink batch, kernel commit included);
- `nft -f` loading the same ruleset (Ruleset.script()) into another empty namespace;
- at the largest N, one-endpoint changes: a replaced endpoint (same count: element changes only)
  and an added endpoint (the count changes, so the Service's DNAT rule is rewritten), each an
  incremental render and apply (median of --changes), and what single kernel operations cost
  in that table (commit_costs below).
Nothing here touches the machine's main namespace.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import replace

from bench import results
from kproxy.agent.config import AgentConfig
from kproxy.agent.state import Endpoint, ProxyState, ServicePort, changes_between
from kproxy.netns import NetNS
from kproxy.nftables import transaction
from kproxy.nftables.backend import NftablesBackend
from kproxy.nftables.gcpause import gc_paused
from kproxy.nftables.model import Chain, SetSpec
from kproxy.nftables.plan import plan_full
from kproxy.nftables.transaction import Transaction


def make_state(services: int, endpoints: int) -> ProxyState:
    sps = {}
    for i in range(services):
        eps = tuple(sorted(Endpoint(f"10.{128 + (i * endpoints + j) // 65536}.{((i * endpoints + j) // 256) % 256}."
                                    f"{(i * endpoints + j) % 256}", 8080, is_local=(j == 0))
                           for j in range(endpoints)))
        sp = ServicePort("bench", f"svc-{i}", "http", "TCP", 80, cluster_ips=(f"10.96.{i // 256}.{i % 256}",),
                         node_port=30000 + i if i < 2000 else 0, endpoints=eps)
        sps[sp.key] = sp
    return ProxyState("bench-node", node_ips=("10.200.0.11",), cluster_cidr="10.0.0.0/8", services=sps)


def change_one_endpoint(state: ProxyState, n: int) -> ProxyState:
    """One pod of one Service replaced by another (a rolling update's step): same count."""
    key = sorted(state.services)[len(state.services) // 2]
    sp = state.services[key]
    moved = replace(sp.endpoints[-1], ip=f"10.255.255.{1 + n % 250}")
    services = dict(state.services)
    services[key] = replace(sp, endpoints=tuple(sorted(sp.endpoints[:-1] + (moved,))))
    return replace(state, services=services, revision=state.revision + 1)


def add_one_endpoint(state: ProxyState, n: int) -> ProxyState:
    """One more pod for one Service (a scale-up step): the endpoint count changes."""
    key = sorted(state.services)[len(state.services) // 3]
    sp = state.services[key]
    extra = replace(sp.endpoints[-1], ip=f"10.255.254.{1 + n % 250}", is_local=False)
    services = dict(state.services)
    services[key] = replace(sp, endpoints=tuple(sorted(sp.endpoints + (extra,))))
    return replace(state, services=services, revision=state.revision + 1)


class Namespace:
    """A throwaway network namespace (deleted on exit)."""

    def __init__(self, tag: str) -> None:
        self.name = f"kpt-bench-nft-{tag}-{uuid.uuid4().hex[:6]}"

    def __enter__(self) -> "Namespace":
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def commit_costs(backend: NftablesBackend, ruleset, changes: int) -> None:
    """Median cost of one-operation batches in the loaded table: an element of a plain set, an
    element of a data map (no jump/goto: what an endpoint change sends), an element of a verdict
    map (goto an existing chain: what a new Service sends) and an empty chain. Tells how much
    the kernel's re-validation of the chain graph costs (any new jump, goto or DNAT rule) and
    how much it charges any commit for the size of the table."""
    probe = SetSpec("bench-probe", ("ipv4_addr",))
    vmap = ruleset.sets["service-ips"]
    target = next(iter(ruleset.elements[vmap.name].values()))
    data_map = next(s for s in ruleset.sets.values() if s.data)

    def median_ms(build) -> float:
        times = []
        for i in range(changes):
            tx = Transaction()
            build(tx, i)
            times.append(timed(backend._commit, tx)[1])
        return statistics.median(times) * 1000

    setup = Transaction()
    setup.add_set(probe)
    backend._commit(setup)
    plain = median_ms(lambda tx, i: tx.add_elements(probe, {(f"10.254.{i // 256}.{i % 256}",): None}))
    data = median_ms(lambda tx, i: tx.add_elements(data_map, {(1000 + i,): (f"10.254.1.{i % 250}", 80)}))
    verdict = median_ms(lambda tx, i: tx.add_elements(vmap, {(f"10.97.{i // 256}.{i % 256}", "TCP", 80): target}))
    chain = median_ms(lambda tx, i: tx.add_chain(Chain(f"bench-probe-{i}", ())))
    print(f"  single-operation commits in this table: plain set element {plain:.2f} ms, data map element "
          f"{data:.2f} ms, verdict map element {verdict:.2f} ms, empty chain {chain:.2f} ms (median of {changes})")


def bench_size(n: int, endpoints: int, changes: int, last: bool) -> None:
    state = make_state(n, endpoints)
    config = AgentConfig(mode="nftables")
    with Namespace("ours") as ns:
        netns = NetNS(ns.name)
        backend = NftablesBackend(netns, config)
        try:
            with gc_paused():
                ruleset, t_render = timed(backend.render, state)
                names, t_list = timed(backend._run, backend._list_names)
                tx, t_plan = timed(plan_full, ruleset, *names)
                (data, _, last), t_encode = timed(tx.encode, 1)

                def send():
                    return backend._socket().send_batch(data, 1, last)
                errors, t_kernel = timed(backend._run, send)
                assert not errors, errors
                backend._socket().seq = last + 2
            _, t_resync = timed(backend.apply, ruleset, None)
            objects = len(ruleset.chains), sum(len(c.rules) for c in ruleset.chains.values()), \
                sum(len(e) for e in ruleset.elements.values())
            print(f"N={n} x {endpoints}: {objects[0]} chains, {objects[1]} rules, {objects[2]} map elements, "
                  f"batch {len(data) / 1e6:.1f} MB ({transaction.ENCODER} encoder)")
            t_apply = t_list + t_plan + t_encode + t_kernel
            print(f"  kproxy full sync into an empty table: render {t_render * 1000:.0f} ms;"
                  f" apply {t_apply * 1000:.0f} ms ="
                  f" list {t_list * 1000:.0f} + plan {t_plan * 1000:.0f} + encode {t_encode * 1000:.0f}"
                  f" + kernel {t_kernel * 1000:.0f} ms; total {(t_render + t_apply) * 1000:.0f} ms")
            print("  kproxy full resync of the same ruleset (flush + rewrite everything):"
                  f" apply {t_resync * 1000:.0f} ms")
            _, t_verify = timed(backend.apply, ruleset, None)
            print(f"  periodic full sync with the kernel unchanged since our commit (generation check): "
                  f"apply {t_verify * 1000:.2f} ms")
            script = ruleset.script()
            if last:
                previous, current = ruleset, state
                for label, change in (("one endpoint replaced", change_one_endpoint),
                                      ("one endpoint added", add_one_endpoint)):
                    applies, renders = [], []
                    for i in range(changes):
                        before, current = current, change(current, i)
                        nxt, t_r = timed(backend.render, current, previous, changes_between(before, current))
                        _, t_a = timed(backend.apply, nxt, previous)
                        renders.append(t_r)
                        applies.append(t_a)
                        previous = nxt
                    print(f"  {label} at N={n}: render {statistics.median(renders) * 1000:.2f} ms, "
                          f"apply {statistics.median(applies) * 1000:.2f} ms (median of {changes}; "
                          f"max apply {max(applies) * 1000:.2f} ms)")
                commit_costs(backend, previous, changes)
        finally:
            backend.close()
            netns.close()
    with Namespace("nft") as ns:
        start = time.perf_counter()
        res = subprocess.run(["ip", "netns", "exec", ns.name, "nft", "-f", "-"], input=script, text=True,
                             capture_output=True)
        t_nft = time.perf_counter() - start
        if res.returncode != 0:
            print(f"  nft -f failed: {res.stderr.strip()[:300]}")
        else:
            results.point("nftables mode full sync", "kproxy (render + apply)", n, t_render + t_apply, "s")
            results.point("nftables mode full sync", "nft -f of the same ruleset", n, t_nft, "s")
            print(f"  nft -f of the same ruleset: {t_nft * 1000:.0f} ms "
                  f"(kproxy apply is {t_nft / t_apply:.1f}x faster; with render {t_nft / (t_render + t_apply):.1f}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nftables", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--changes", type=int, default=5)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    for i, n in enumerate(sizes):
        bench_size(n, args.endpoints, args.changes, last=i == len(sizes) - 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
