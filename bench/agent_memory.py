"""Agent memory at scale: RSS and Python heap of the real Proxier (informers, trackers, the mode's
Backend, its kernel state in a fresh network namespace) after its first full sync, per mode and
size, against the same agent with no Services (the baseline: interpreter, imports, threads).

    python -m bench.agent_memory [--modes nftables,iptables,userspace] [--sizes 1000,10000]
                                 [--endpoints 10] [--top 0]

Each measurement runs in its own process (fresh RSS) fed by an in-memory API client that drops
its copy of the objects once listed, so what is left is what the agent holds. --top N prints the
N largest allocation sites (tracemalloc; slow, and tracemalloc's own overhead inflates RSS).
Target (issue 23): <= 150 MiB at 10k Services x 10 endpoints. ipvs needs the VM's kernel.
Nothing here touches the machine's main namespace.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tracemalloc

from bench.iptables_sync import fresh_netns
from bench.network_programming import MemoryClient, agent_config, first_sync, make_objects
from kproxy.agent import backend as backends
from kproxy.agent.proxier import Proxier


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class ListOnceClient(MemoryClient):
    """Hands the objects to the informers once, then forgets them."""

    async def list(self, resource, namespace=None, label_selector=None, field_selector=None):
        out = await super().list(resource, namespace, label_selector, field_selector)
        self.objects.pop(resource.plural, None)
        return out


async def measure(mode: str, services: int, endpoints: int, top: int) -> dict:
    if top:
        tracemalloc.start(12)
    client = ListOnceClient(make_objects(services, endpoints))
    config = agent_config(mode, "auto")
    with fresh_netns(f"mem-{mode}") as netns:
        backend = backends.get(mode)(netns, config)
        proxier = Proxier(config, "bench-node", client, backend, netns)
        task = asyncio.create_task(proxier.run())
        try:
            await first_sync(proxier, task)
            gc.collect()
            result = {"rss": rss_mib(), "heap": None}
            if top:
                snapshot = tracemalloc.take_snapshot()
                result["heap"] = sum(s.size for s in snapshot.statistics("filename")) / 2 ** 20
                result["top"] = [(s.size / 2 ** 20, s.count, s.traceback.format()[-1].strip())
                                 for s in snapshot.statistics("lineno")[:top]]
        finally:
            proxier.stop()
            await asyncio.wait_for(task, 600)
            backend.cleanup()
    return result


def child(args: argparse.Namespace) -> int:
    print(json.dumps(asyncio.run(measure(args.mode, args.services, args.endpoints, args.top))))
    return 0


def one(mode: str, services: int, endpoints: int, top: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.agent_memory", "--child", "--mode", mode,
                          "--services", str(services), "--endpoints", str(endpoints), "--top", str(top)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="nftables,iptables,userspace")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--top", type=int, default=0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--services", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.agent_memory needs root (it creates network namespaces)", file=sys.stderr)
        return 1
    if args.child:
        return child(args)
    for mode in args.modes.split(","):
        try:
            with fresh_netns("probe") as netns:
                backends.get(mode).probe(netns, agent_config(mode, "auto"))
        except backends.BackendUnavailable as exc:
            print(f"{mode}: cannot run here ({exc}), skipped")
            continue
        base = one(mode, 0, args.endpoints, 0)["rss"]
        for size in (int(s) for s in args.sizes.split(",")):
            r = one(mode, size, args.endpoints, args.top)
            heap = f", Python heap {r['heap']:.0f} MiB" if r["heap"] is not None else ""
            print(f"{mode} {size}x{args.endpoints}: RSS {r['rss']:.0f} MiB, {r['rss'] - base:.0f} MiB above the "
                  f"agent with no Services ({base:.0f} MiB){heap}", flush=True)
            for size_mib, count, where in r.get("top") or ():
                print(f"    {size_mib:6.1f} MiB {count:8d}  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
