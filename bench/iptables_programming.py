"""Network programming latency in iptables mode: from an EndpointSlice change delivered to the
running agent to the new endpoint's DNAT rule being in the kernel, next to the full sync.

    python -m bench.iptables_programming [--services 2000] [--endpoints 10] [--changes 50]
                                         [--variant nft] [--during-resync 3]

The real Proxier (informers, change tracker, runner, IptablesBackend) runs in a fresh network
namespace, fed by an in-memory API client (list + watch stream), with kube-proxy's default
periods (minSyncPeriod 1 s, syncPeriod 30 s). After the first (full) sync, each change moves one
endpoint of one Service to a new address; the time is taken from handing the watch event to the
agent until `iptables -t nat -S <the new KUBE-SEP- chain>` (polled from a separate process) shows
its DNAT rule. Changes are at least minSyncPeriod apart, so the bounded-frequency wait is not
what is measured. Then --during-resync more changes are made each just after a full resync was
requested: they must wait at most for that one resync. Baseline: the agent's first full sync.
Nothing here touches the machine's main namespace.
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import os
import sys
import time

from bench.iptables_sync import fresh_netns
from kproxy.agent.config import AgentConfig, IptablesConfig
from kproxy.agent.proxier import Proxier
from kproxy.iptables.backend import IptablesBackend
from kproxy.iptables.driver import VARIANTS
from kproxy.iptables.names import endpoint_chain_name

PORT = 8080
POLL = 0.05  # seconds between two looks at the kernel (each one is an iptables -S process)


class MemoryClient:
    """The API client the informers need: list() returns the objects, watch() streams events."""

    def __init__(self, objects: dict[str, list[dict]]) -> None:
        self.objects = objects
        self.queues: dict[str, asyncio.Queue] = {}

    async def list(self, resource, namespace=None, label_selector=None, field_selector=None):
        return {"items": copy.deepcopy(self.objects.get(resource.plural, [])), "metadata": {"resourceVersion": "1"}}

    async def watch(self, resource, **_):
        queue = self.queues.setdefault(resource.plural, asyncio.Queue())
        while True:
            yield await queue.get()

    def send(self, plural: str, etype: str, obj: dict) -> None:
        self.queues.setdefault(plural, asyncio.Queue()).put_nowait((etype, copy.deepcopy(obj)))


def endpoint_ip(n: int) -> str:
    return f"10.{128 + n // 65536}.{(n // 256) % 256}.{n % 256}"


def make_objects(services: int, endpoints: int) -> dict[str, list[dict]]:
    svcs, slices = [], []
    for i in range(services):
        name = f"svc-{i}"
        svcs.append({"metadata": {"name": name, "namespace": "bench", "resourceVersion": "1"},
                     "spec": {"clusterIP": f"10.96.{i // 256}.{i % 256}",
                              "ports": [{"name": "http", "port": 80, "targetPort": PORT}]}})
        slices.append({"metadata": {"name": f"{name}-1", "namespace": "bench", "resourceVersion": "1",
                                    "labels": {"kubernetes.io/service-name": name}},
                       "addressType": "IPv4", "ports": [{"name": "http", "port": PORT}],
                       "endpoints": [{"addresses": [endpoint_ip(i * endpoints + j)], "nodeName": "other",
                                      "conditions": {"ready": True}} for j in range(endpoints)]})
    return {"services": svcs, "endpointslices": slices}


async def rule_present(netns_name: str, iptables: str, chain: str, address: str) -> bool:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns_name, iptables, "-w", "5", "-t", "nat", "-S", chain,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    return proc.returncode == 0 and f"--to-destination {address}" in out.decode()


async def change_and_wait(client: MemoryClient, slices: list[dict], index: int, new_ip: str,
                          netns_name: str, iptables: str, timeout: float) -> float:
    """Moves endpoint 0 of Service `index` to `new_ip`; seconds until its DNAT rule is in the kernel."""
    eps = slices[index]
    eps["endpoints"][0]["addresses"] = [new_ip]
    eps["metadata"]["resourceVersion"] = str(int(eps["metadata"]["resourceVersion"]) + 1)
    chain = endpoint_chain_name(f"bench/svc-{index}:http" + "tcp", f"{new_ip}:{PORT}")
    start = time.perf_counter()
    client.send("endpointslices", "MODIFIED", eps)
    while not await rule_present(netns_name, iptables, chain, f"{new_ip}:{PORT}"):
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"change {index} -> {new_ip} not in the kernel after {timeout:.0f}s")
        await asyncio.sleep(POLL)
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def run(args: argparse.Namespace) -> None:
    variant = VARIANTS[args.variant]
    objects = make_objects(args.services, args.endpoints)
    slices = objects["endpointslices"]
    client = MemoryClient(objects)
    config = AgentConfig(mode="iptables", cluster_cidr="10.0.0.0/8",
                         iptables=IptablesConfig(min_sync_period=1.0, sync_period=30.0, backend=args.variant))
    with fresh_netns(f"prog-{args.variant}") as netns:
        backend = IptablesBackend(netns, config)
        backend.variant, backend.options  # probe outside the measured region
        proxier = Proxier(config, "bench-node", client, backend, netns)
        full_sum = "kubeproxy_sync_full_proxy_rules_duration_seconds_sum"
        task = asyncio.create_task(proxier.run())
        try:
            while proxier.sync_count < 1:
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)
            full_s = proxier.metrics.registry.get_sample_value(full_sum)
            print(f"{args.variant} {args.services}x{args.endpoints}: first full sync {full_s * 1000:.0f} ms",
                  flush=True)
            timeout = max(120.0, 4 * full_s)
            next_ip = args.services * args.endpoints
            latencies = []
            partial_sum = "kubeproxy_sync_partial_proxy_rules_duration_seconds"
            for k in range(args.changes):
                latencies.append(await change_and_wait(client, slices, (k * 37) % args.services,
                                                       endpoint_ip(next_ip + k), netns.name, variant.iptables, timeout))
                # the sync that served this change started before it was seen: waiting
                # minSyncPeriod from here keeps the next change from waiting for the runner
                await asyncio.sleep(config.min_sync_period + 0.05)
            next_ip += args.changes
            print(f"  endpoint change -> rule in kernel over {len(latencies)} changes: "
                  f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms, "
                  f"max {max(latencies) * 1000:.0f} ms (target p99 < 1000 ms; "
                  f"p99 / full sync = {percentile(latencies, 0.99) / full_s:.3f})", flush=True)
            registry = proxier.metrics.registry
            partials = registry.get_sample_value(partial_sum + "_count") or 0
            if partials:
                print(f"  the agent's own partial syncs (build, render, apply; from the metrics): "
                      f"{partials:.0f}, mean "
                      f"{registry.get_sample_value(partial_sum + '_sum') / partials * 1000:.0f} ms; "
                      f"the rest is the watch hand-off and the polling iptables -S", flush=True)
            behind = []
            fulls_before = proxier.metrics.registry.get_sample_value(full_sum)
            for k in range(args.during_resync):
                proxier.runner.run(full=True)
                await asyncio.sleep(0.2)  # the full resync has started
                behind.append(await change_and_wait(client, slices, (k * 53 + 11) % args.services,
                                                    endpoint_ip(next_ip + k), netns.name, variant.iptables, timeout))
                await asyncio.sleep(config.min_sync_period + 0.05)
            if behind:
                resyncs = args.during_resync
                resync_s = (proxier.metrics.registry.get_sample_value(full_sum) - fulls_before) / resyncs
                print(f"  change made during a full resync ({resyncs}x): max {max(behind) * 1000:.0f} ms, "
                      f"mean full resync {resync_s * 1000:.0f} ms (a change waits for at most the one resync "
                      f"in progress, then a partial sync)", flush=True)
        finally:
            proxier.stop()
            await asyncio.wait_for(task, 600)
            backend.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.iptables_programming", description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--during-resync", type=int, default=3)
    parser.add_argument("--variant", default="nft", choices=sorted(VARIANTS))
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.iptables_programming needs root (it creates a network namespace)", file=sys.stderr)
        return 1
    if not VARIANTS[args.variant].available():
        print(f"{VARIANTS[args.variant].restore} not installed, skipped")
        return 0
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
