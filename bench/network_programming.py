"""Network programming latency per mode (KEP-3453): from an EndpointSlice change delivered to
the running agent to the new endpoint being in the kernel, next to the mode's full sync.

    python -m bench.network_programming [--mode nftables] [--services 2000] [--endpoints 10]
                                        [--changes 50] [--after-resync 3] [--sync-period 30]
                                        [--variant nft]

The real Proxier (informers, change tracker, runner, the mode's Backend) runs in a fresh network
namespace, fed by an in-memory API client (list + watch stream), with kube-proxy's default
periods (minSyncPeriod 1 s, syncPeriod 30 s). After the first (full) sync, each change moves one
endpoint of one Service to a new address and carries the last-change-trigger-time annotation
(set when the change is handed to the agent), so the agent's own
kubeproxy_network_programming_duration_seconds observes it when the sync that holds it has been
applied; the raw samples are printed as p50/p99. In iptables mode the time is also taken from
outside: until `iptables -t nat -S <the new KUBE-SEP- chain>` (polled from a separate process)
shows its DNAT rule. Changes are at least minSyncPeriod apart, so the bounded-frequency wait is
not what is measured. Then --after-resync more changes are made each right after a periodic
resync: they must not wait minSyncPeriod for it. Baseline: the mode's first full sync
of the same cluster. ipvs needs the VM's kernel (python -m kproxy.vm -- python -m
bench.network_programming --mode ipvs). Nothing here touches the machine's main namespace.
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import os
import sys
import time

from bench.iptables_sync import fresh_netns
from bench import results
from kproxy import modes
from kproxy.agent import backend as backends
from kproxy.agent.config import AgentConfig, IptablesConfig, IpvsConfig, NftablesConfig
from kproxy.agent.metrics import ProxyMetrics
from kproxy.agent.proxier import Proxier
from kproxy.api.meta import TRIGGER_TIME_ANNOTATION
from kproxy.controllers.triggertime import format_trigger_time
from kproxy.iptables.driver import VARIANTS
from kproxy.iptables.names import endpoint_chain_name

PORT = 8080
POLL = 0.05  # seconds between two looks at the kernel (each one is an iptables -S process)
PERIODS = {"min_sync_period": 1.0, "sync_period": 30.0}  # kube-proxy's defaults


class SampledMetrics(ProxyMetrics):
    """The agent's metrics, also keeping each network programming sample (the histogram keeps
    only buckets)."""

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[float] = []

    def record_programmed(self, trigger_times, now=None) -> None:
        now = time.time() if now is None else now
        self.samples.extend(now - t for t in trigger_times if now >= t)
        super().record_programmed(trigger_times, now)


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


def agent_config(mode: str, variant: str, sync_period: float = PERIODS["sync_period"]) -> AgentConfig:
    periods = {**PERIODS, "sync_period": sync_period}
    return AgentConfig(mode=mode, cluster_cidr="10.0.0.0/8",
                       iptables=IptablesConfig(backend=variant, **periods),
                       nftables=NftablesConfig(**periods), ipvs=IpvsConfig(**periods))


async def change_and_wait(client: MemoryClient, metrics: SampledMetrics, slices: list[dict], index: int,
                          new_ip: str, probe: tuple[str, str] | None, timeout: float) -> float | None:
    """Moves endpoint 0 of Service `index` to `new_ip`, stamped with its trigger time; waits for
    the agent's programming sample. With `probe` (netns, iptables command), also until its DNAT
    rule is seen from outside: returns those seconds."""
    eps = slices[index]
    eps["endpoints"][0]["addresses"] = [new_ip]
    eps["metadata"]["resourceVersion"] = str(int(eps["metadata"]["resourceVersion"]) + 1)
    seen = len(metrics.samples)
    start = time.perf_counter()
    eps["metadata"]["annotations"] = {TRIGGER_TIME_ANNOTATION: format_trigger_time(time.time())}
    client.send("endpointslices", "MODIFIED", eps)
    outside = None
    if probe is not None:
        chain = endpoint_chain_name(f"bench/svc-{index}:http" + "tcp", f"{new_ip}:{PORT}")
        while not await rule_present(probe[0], probe[1], chain, f"{new_ip}:{PORT}"):
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"change {index} -> {new_ip} not in the kernel after {timeout:.0f}s")
            await asyncio.sleep(POLL)
        outside = time.perf_counter() - start
    while len(metrics.samples) == seen:
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"change {index} -> {new_ip} was never programmed ({timeout:.0f}s)")
        await asyncio.sleep(0.005)
    return outside


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def ms(values: list[float]) -> str:
    return (f"p50 {percentile(values, 0.5) * 1000:.0f} ms, p99 {percentile(values, 0.99) * 1000:.0f} ms, "
            f"max {max(values) * 1000:.0f} ms")


async def first_sync(proxier: Proxier, task: asyncio.Task) -> None:
    """Waits until the proxier's first sync; re-raises if its run task ended first."""
    while proxier.sync_count < 1:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)


async def run(args: argparse.Namespace) -> None:
    objects = make_objects(args.services, args.endpoints)
    slices = objects["endpointslices"]
    client = MemoryClient(objects)
    config = agent_config(args.mode, args.variant, args.sync_period)
    label = args.mode + (f"-{args.variant}" if args.mode == "iptables" else "")
    with fresh_netns(f"prog-{label}") as netns:
        backend = backends.get(args.mode)(netns, config)
        metrics = SampledMetrics()
        proxier = Proxier(config, "bench-node", client, backend, netns, metrics=metrics)
        probe = (netns.name, VARIANTS[args.variant].iptables) if args.mode == "iptables" else None
        full_sum = "kubeproxy_sync_full_proxy_rules_duration_seconds_sum"
        task = asyncio.create_task(proxier.run())
        try:
            await first_sync(proxier, task)
            full_s = metrics.registry.get_sample_value(full_sum)
            print(f"{label} {args.services}x{args.endpoints}: first full sync {full_s * 1000:.0f} ms (the baseline)",
                  flush=True)
            timeout = max(120.0, 4 * full_s)
            await asyncio.sleep(config.min_sync_period + 0.05)  # changes are spaced from the first sync too
            next_ip = args.services * args.endpoints
            outside: list[float] = []
            first_sample = len(metrics.samples)
            for k in range(args.changes):
                seen = await change_and_wait(client, metrics, slices, (k * 37) % args.services,
                                             endpoint_ip(next_ip + k), probe, timeout)
                if seen is not None:
                    outside.append(seen)
                # the sync that served this change started before it was seen: waiting
                # minSyncPeriod from here keeps the next change from waiting for the runner
                await asyncio.sleep(config.min_sync_period + 0.05)
            next_ip += args.changes
            agent = metrics.samples[first_sample:]
            results.distribution(f"network programming latency, {args.services} Services",
                                 f"{label} (first full sync {full_s * 1000:.0f} ms)", [s * 1000 for s in agent], "ms")
            print(f"  endpoint change -> applied, the agent's network_programming_duration_seconds over "
                  f"{len(agent)} changes: {ms(agent)} (p99 / full sync = {percentile(agent, 0.99) / full_s:.3f})",
                  flush=True)
            if outside:
                print(f"  endpoint change -> DNAT rule seen by iptables -S from outside: {ms(outside)}", flush=True)
            partial = "kubeproxy_sync_partial_proxy_rules_duration_seconds"
            partials = metrics.registry.get_sample_value(partial + "_count") or 0
            if partials:
                print(f"  the agent's own partial syncs (build, render, apply): {partials:.0f}, mean "
                      f"{metrics.registry.get_sample_value(partial + '_sum') / partials * 1000:.0f} ms", flush=True)
            behind_from = len(metrics.samples)
            for k in range(args.after_resync):
                syncs = proxier.sync_count
                while proxier.sync_count == syncs:  # the next periodic resync (no change pending)
                    await asyncio.sleep(0.002)
                await change_and_wait(client, metrics, slices, (k * 53 + 11) % args.services,
                                      endpoint_ip(next_ip + k), None, timeout)
            behind = metrics.samples[behind_from:]
            if behind:
                print(f"  change made right after a periodic resync ({len(behind)}x): {ms(behind)} (it must not "
                      f"wait minSyncPeriod, {config.min_sync_period * 1000:.0f} ms, for the resync)", flush=True)
        finally:
            proxier.stop()
            await asyncio.wait_for(task, 600)
            backend.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.network_programming",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="nftables", choices=[m.name for m in modes.MODES])
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--after-resync", type=int, default=3, help="changes made right after a periodic resync")
    parser.add_argument("--sync-period", type=float, default=PERIODS["sync_period"], help="seconds (syncPeriod)")
    parser.add_argument("--variant", default="nft", choices=sorted(VARIANTS), help="iptables mode's variant")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.network_programming needs root (it creates a network namespace)", file=sys.stderr)
        return 1
    if args.mode == "iptables" and not VARIANTS[args.variant].available():
        print(f"{VARIANTS[args.variant].restore} not installed, skipped")
        return 0
    try:
        with fresh_netns("probe") as netns:
            backends.get(args.mode).probe(netns, agent_config(args.mode, args.variant))
    except backends.BackendUnavailable as exc:
        print(f"{args.mode} mode cannot run here ({exc}), skipped")
        return 0
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
