"""What server-side apply and managedFields cost per request, against JSON create/update of
the same objects on the same server in the same run.

Starts `kproxy apiserver --no-controllers` (plain HTTP on loopback, as bench.apiserver_vs_etcd),
then times N requests of each kind at a fixed concurrency on Services with labels, a selector
and three ports (an associative list):
  json-create   POST                                 (the baseline for apply-create)
  json-update   PUT with one label changed           (the baseline for apply-update)
  merge-patch   PATCH merge-patch+json, one label
  apply-create  PATCH apply-patch+yaml of a new object
  apply-update  PATCH apply-patch+yaml, one label changed
  apply-noop    PATCH apply-patch+yaml of the same configuration again (nothing written)
and, in process, the field manager's own work per object (record_update of a create and of a
one-label update, record_apply) against a JSON encode+decode of the same object.
Timing is informational: no thresholds.

    python -m bench.apiserver_apply [--requests 300] [--concurrency 8] [--rounds 3] [--loops 2000]
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import json
import sys
import tempfile
import time
from typing import Any, Callable

import aiohttp

from bench.apiserver_vs_etcd import running_apiserver
from kproxy.api import resources as R
from kproxy.apiserver import fieldmanager as fm

NAMESPACE = "default"
SVCS = f"/api/v1/namespaces/{NAMESPACE}/services"
APPLY = "application/apply-patch+yaml"


def service(name: str, tier: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name, "tier": tier}},
            "spec": {"selector": {"app": name}, "ports": [
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "https", "port": 443, "targetPort": 8443},
                {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"}]}}


async def timed(count: int, concurrency: int, one: Callable[[int], Any]) -> float:
    """Requests per second of `one(i)` for i in 0..count-1 with `concurrency` in flight."""
    queue = list(range(count))
    start = time.perf_counter()

    async def worker() -> None:
        while queue:
            await one(queue.pop())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


async def http_rates(url: str, n: int, concurrency: int, rounds: int) -> dict[str, float]:
    """The best rate of each kind over `rounds` rounds, the kinds interleaved in every round so
    that a change in the machine's load does not favour one of them."""
    best: dict[str, float] = {}
    for r in range(rounds):
        for kind, rate in (await one_round(url, n, concurrency, f"r{r}")).items():
            best[kind] = max(best.get(kind, 0.0), rate)
    return best


async def one_round(url: str, n: int, concurrency: int, tag: str) -> dict[str, float]:
    async with aiohttp.ClientSession(headers={"User-Agent": "bench/1"}) as session:
        async def call(method: str, path: str, body: Any, ctype: str = "application/json") -> None:
            async with session.request(method, url + path, data=json.dumps(body),
                                       headers={"Content-Type": ctype}) as resp:
                if resp.status >= 300:
                    raise RuntimeError(f"{method} {path}: {resp.status} {(await resp.text())[:200]}")
                await resp.read()

        rates = {}
        def j(i: int) -> str:
            return f"{tag}-j{i}"

        def a(i: int) -> str:
            return f"{tag}-a{i}"

        apply_url = SVCS + "/{}?fieldManager=bench"
        rates["json-create"] = await timed(n, concurrency, lambda i: call("POST", SVCS, service(j(i), "a")))
        rates["apply-create"] = await timed(n, concurrency, lambda i: call(
            "PATCH", apply_url.format(a(i)), service(a(i), "a"), APPLY))
        rates["json-update"] = await timed(n, concurrency, lambda i: call("PUT", f"{SVCS}/{j(i)}", service(j(i), "b")))
        rates["apply-update"] = await timed(n, concurrency, lambda i: call(
            "PATCH", apply_url.format(a(i)), service(a(i), "b"), APPLY))
        rates["merge-patch"] = await timed(n, concurrency, lambda i: call(
            "PATCH", f"{SVCS}/{j(i)}", {"metadata": {"labels": {"tier": "c"}}}, "application/merge-patch+json"))
        rates["apply-noop"] = await timed(n, concurrency, lambda i: call(
            "PATCH", apply_url.format(a(i)), service(a(i), "b"), APPLY))
        return rates


def per_call_us(loops: int, fn: Callable[[], Any], repeats: int = 5) -> float:
    """Microseconds per call: the best of `repeats` runs of loops/repeats calls (the least
    disturbed by other work on the machine)."""
    n = max(1, loops // repeats)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def in_process(loops: int) -> dict[str, float]:
    """Microseconds per object for the field manager's steps and a JSON round trip."""
    config = service("x", "a")
    stored = fm.record_update(R.SERVICES, None, copy.deepcopy(config), fm.Manager("bench"), "2026-01-01T00:00:00Z")
    changed = copy.deepcopy(stored)
    changed["metadata"]["labels"]["tier"] = "b"
    applied = fm.record_apply(R.SERVICES, None, config, fm.Manager("bench", fm.APPLY), "t", False)
    return {
        "json encode+decode (baseline)": per_call_us(loops, lambda: json.loads(json.dumps(stored))),
        "record_update, create": per_call_us(loops, lambda: fm.record_update(
            R.SERVICES, None, config, fm.Manager("bench"), "t")),
        "record_update, one label": per_call_us(loops, lambda: fm.record_update(
            R.SERVICES, stored, changed, fm.Manager("bench"), "t")),
        "record_apply, create": per_call_us(loops, lambda: fm.record_apply(
            R.SERVICES, None, config, fm.Manager("bench", fm.APPLY), "t", False)),
        "record_apply, same config": per_call_us(loops, lambda: fm.record_apply(
            R.SERVICES, applied, config, fm.Manager("bench", fm.APPLY), "t", False)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.apiserver_apply", description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--loops", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="kproxy-bench-apply-") as workdir, running_apiserver(workdir) as server:
            rates = asyncio.run(http_rates(server.url, args.requests, args.concurrency, args.rounds))
    except (RuntimeError, OSError) as exc:
        print(f"bench.apiserver_apply: {exc}", file=sys.stderr)
        return 1
    print(f"\nServices over HTTP, {args.requests} requests each, {args.concurrency} in flight, best of "
          f"{args.rounds} interleaved rounds (requests/s; ratio to its JSON baseline)")
    base = {"json-create": None, "json-update": None, "merge-patch": "json-update", "apply-create": "json-create",
            "apply-update": "json-update", "apply-noop": "json-update"}
    for name, rate in rates.items():
        ref = base[name]
        ratio = f"{rate / rates[ref]:.2f}x of {ref}" if ref else "baseline"
        print(f"  {name:<14} {rate:9.1f}/s   {ratio}")
    costs = in_process(args.loops)
    print(f"\nfield manager in process, per object ({args.loops} loops; microseconds)")
    baseline = costs["json encode+decode (baseline)"]
    for name, us in costs.items():
        print(f"  {name:<30} {us:9.1f} us   {us / baseline:5.1f}x the JSON round trip")
    return 0


if __name__ == "__main__":
    sys.exit(main())
