"""Thousands of watching nodes, simulated: event delivery from kproxy's apiserver against etcd's.

Each node's agent keeps a watch on EndpointSlices (with the agent's label selector) for as long
as it runs; in a cluster of 5,000 nodes every endpoint change is delivered 5,000 times. This
bench loads S EndpointSlices (10 endpoints each), opens W watch streams from the current
resourceVersion (spread over a few client processes so the client is not the bottleneck), then
updates slices at a steady rate, each write stamping its wall-clock time into an annotation.
Every watcher decodes every event and records now - written. Reported per server:
  - delivery latency over every (watcher, event) pair, p50/p99/max;
  - latency to the last watcher of each event (the W-th node), p50/p99/max;
  - time to open all W watches; server RSS after the watches opened and after the churn; the
    server's CPU seconds during the churn.
The same objects, watchers and writes run against Debian's etcd (/v3/watch on the slices'
prefix: etcd cannot filter by label, and every slice here matches the selector anyway).
Watches start at the current revision (no initial list). With --relist N, a relist storm
follows the churn: N clients list every EndpointSlice at once, as agents restarting after an
apiserver restart would (the apiserver: LIST with the agent's selector and resourceVersion=0;
etcd: a range read of the prefix), each reading the whole answer (not decoding it, so the client
is not what is measured). Reported: time until the last list is answered, per-list latency
p50/p99, server CPU seconds and peak RSS (sampled every 20 ms) during the storm.
Timing is informational: no thresholds.

    python -m bench.watchers [--services 1000] [--watchers 5000] [--changes 40] [--rate 5] [--relist 0]
"""
from __future__ import annotations

from bench.stats import percentile

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

import aiohttp

from bench import results as bench_results
from bench.apiserver_vs_etcd import (Server, b64, etcd_version, prefix_end, process_cpu_seconds,
                                     running_apiserver, running_etcd)

NAMESPACE = "bench"
STAMP = "bench.kproxy.io/written"
# kube-proxy's EndpointSlice informer selector
AGENT_SELECTOR = "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name"
OPEN_TIMEOUT = 300.0
CHURN_GRACE = 120.0  # how long after the last write the watchers may take to see it


def endpoint_slice(i: int, generation: int = 0) -> dict[str, Any]:
    """A realistic slice of one Service: 10 ready endpoints on 10 nodes, one port."""
    name = f"svc-{i:05d}"
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": f"{name}-abcde", "namespace": NAMESPACE,
                     "labels": {"kubernetes.io/service-name": name,
                                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                     "annotations": {STAMP: "0"}},
        "endpoints": [{"addresses": [f"10.{(i >> 8) & 255}.{i & 255}.{e + generation % 5}"],
                       "conditions": {"ready": True, "serving": True, "terminating": False},
                       "nodeName": f"node-{(i + e) % 5000}"} for e in range(10)],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def etcd_key(obj: dict[str, Any]) -> str:
    return f"/registry/endpointslices/{NAMESPACE}/{obj['metadata']['name']}"


# ---- writers: the same objects into either server --------------------------------------------


class ApiserverWriter:
    path = f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices"

    def __init__(self, url: str, session: aiohttp.ClientSession):
        self.url, self.session = url, session

    async def prepare(self) -> None:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        async with self.session.post(f"{self.url}/api/v1/namespaces", json=namespace) as resp:
            if resp.status not in (201, 409):
                raise RuntimeError(f"apiserver create namespace: {resp.status}")

    async def create(self, obj: dict[str, Any]) -> None:
        async with self.session.post(self.url + self.path, json=obj) as resp:
            if resp.status != 201:
                raise RuntimeError(f"apiserver create: {resp.status} {await resp.text()}")

    async def update(self, obj: dict[str, Any]) -> None:
        async with self.session.put(f"{self.url}{self.path}/{obj['metadata']['name']}", json=obj) as resp:
            if resp.status != 200:
                raise RuntimeError(f"apiserver update: {resp.status} {await resp.text()}")

    async def revision(self) -> int:
        async with self.session.get(f"{self.url}{self.path}?limit=1") as resp:
            return int((await resp.json())["metadata"]["resourceVersion"])


class EtcdWriter:
    def __init__(self, url: str, session: aiohttp.ClientSession):
        self.url, self.session = url, session

    async def prepare(self) -> None:
        pass

    async def create(self, obj: dict[str, Any]) -> None:
        await self.update(obj)

    async def update(self, obj: dict[str, Any]) -> None:
        value = json.dumps(obj, separators=(",", ":"))
        async with self.session.post(f"{self.url}/v3/kv/put",
                                     json={"key": b64(etcd_key(obj)), "value": b64(value)}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"etcd put: {resp.status}")
            await resp.read()

    async def revision(self) -> int:
        prefix = f"/registry/endpointslices/{NAMESPACE}/"
        async with self.session.post(f"{self.url}/v3/kv/range",
                                     json={"key": b64(prefix), "range_end": prefix_end(prefix), "limit": 1}) as resp:
            return int((await resp.json(content_type=None))["header"]["revision"])


def make_writer(server: Server, session: aiohttp.ClientSession) -> ApiserverWriter | EtcdWriter:
    return ApiserverWriter(server.url, session) if server.name == "kproxy" else EtcdWriter(server.url, session)


# ---- watchers: one client process holds many streams ------------------------------------------


async def apiserver_stream(session: aiohttp.ClientSession, url: str, revision: int,
                           opened: Callable[[], None]) -> AsyncIterator[dict[str, Any]]:
    query = f"watch=1&resourceVersion={revision}&allowWatchBookmarks=true&labelSelector={AGENT_SELECTOR}"
    async with session.get(f"{url}/apis/discovery.k8s.io/v1/endpointslices?{query}",
                           timeout=aiohttp.ClientTimeout(total=None)) as resp:
        if resp.status != 200:
            raise RuntimeError(f"apiserver watch: {resp.status} {await resp.text()}")
        opened()  # the server subscribed before it sent the headers
        async for line in resp.content:
            event = json.loads(line)
            if event["type"] == "ERROR":
                raise RuntimeError(f"apiserver watch error: {event['object'].get('message')}")
            if event["type"] != "BOOKMARK":
                yield event["object"]


async def etcd_stream(session: aiohttp.ClientSession, url: str, revision: int,
                      opened: Callable[[], None]) -> AsyncIterator[dict[str, Any]]:
    prefix = f"/registry/endpointslices/{NAMESPACE}/"
    request = {"create_request": {"key": b64(prefix), "range_end": prefix_end(prefix),
                                  "start_revision": revision + 1}}
    async with session.post(f"{url}/v3/watch", json=request,
                            timeout=aiohttp.ClientTimeout(total=None)) as resp:
        if resp.status != 200:
            raise RuntimeError(f"etcd watch: {resp.status}")
        async for line in resp.content:
            result = json.loads(line).get("result", {})
            if result.get("created"):
                opened()
            for event in result.get("events", []):
                yield json.loads(base64.b64decode(event["kv"]["value"]))


async def hold_watchers(server: str, url: str, count: int, revision: int, expected: int,
                        conn: Any) -> None:
    """Opens `count` streams, reports "open", then collects every watcher's latencies until
    each has seen `expected` stamped events (or the parent says stop)."""
    stream = apiserver_stream if server == "kproxy" else etcd_stream
    latencies: list[list[float]] = [[] for _ in range(count)]
    opened = 0
    all_open = asyncio.Event()
    done = asyncio.Event()
    finished = 0

    def one_open() -> None:
        nonlocal opened
        opened += 1
        if opened == count:
            all_open.set()

    async def watcher(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal finished
        mine = latencies[index]
        async for obj in stream(session, url, revision, one_open):
            stamp = float(obj["metadata"]["annotations"][STAMP])
            if stamp:
                mine.append(time.time() - stamp)
                if len(mine) == expected:
                    finished += 1
                    if finished == count:
                        done.set()
                    return

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(watcher(i, session)) for i in range(count)]
        await asyncio.wait_for(all_open.wait(), OPEN_TIMEOUT)
        conn.send("open")
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(conn.fileno(), stop.set)  # the parent's "stop" after the grace period
        await asyncio.wait([asyncio.create_task(done.wait()), asyncio.create_task(stop.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    conn.send(latencies)


def watcher_process(server: str, url: str, count: int, revision: int, expected: int, conn: Any) -> None:
    try:
        asyncio.run(hold_watchers(server, url, count, revision, expected, conn))
    except Exception as exc:  # reported to the parent, which fails the run with it
        conn.send(f"error: {type(exc).__name__}: {exc}")


# ---- the run ----------------------------------------------------------------------------------


def proc_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    return percentile(values, q) if values else float("nan")


@dataclass
class Relist:
    clients: int
    wall_s: float  # until the last list was answered
    p50_s: float
    p99_s: float
    kib_per_list: float
    cpu_s: float
    rss_peak: float


class PeakRss:
    """Samples a process's RSS every `interval` seconds on a thread while in the `with` block."""

    def __init__(self, pid: int, interval: float = 0.02):
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, proc_rss_mib(self.pid))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, proc_rss_mib(self.pid))


async def list_once(session: aiohttp.ClientSession, server: Server) -> int:
    """Every EndpointSlice, as one relisting agent asks for them; returns the answer's size."""
    if server.name == "kproxy":
        request = session.get(f"{server.url}/apis/discovery.k8s.io/v1/endpointslices",
                              params={"labelSelector": AGENT_SELECTOR, "resourceVersion": "0"})
    else:
        prefix = "/registry/endpointslices/"
        request = session.post(f"{server.url}/v3/kv/range", json={"key": b64(prefix), "range_end": prefix_end(prefix)})
    async with request as resp:
        body = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{server.name} list: {resp.status} {body[:200]!r}")
    return len(body)


def relist_storm(server: Server, clients: int) -> Relist:
    """`clients` lists of every slice at once, each on its own connection."""
    latencies: list[float] = []
    sizes: list[int] = []

    async def storm() -> float:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         timeout=aiohttp.ClientTimeout(total=OPEN_TIMEOUT)) as session:
            start = time.monotonic()

            async def one() -> None:
                sizes.append(await list_once(session, server))
                latencies.append(time.monotonic() - start)

            await asyncio.gather(*(one() for _ in range(clients)))
            return time.monotonic() - start

    cpu_before = process_cpu_seconds(server.proc.pid)
    with PeakRss(server.proc.pid) as rss:
        wall = asyncio.run(storm())
    return Relist(clients, wall, pct(latencies, 0.5), pct(latencies, 0.99), max(sizes) / 1024,
                  process_cpu_seconds(server.proc.pid) - cpu_before, rss.peak)


@dataclass
class Result:
    open_s: float
    all_p50: float
    all_p99: float
    all_max: float
    last_p50: float
    last_p99: float
    last_max: float
    delivered: int
    expected: int
    rss_open: float
    rss_after: float
    cpu_s: float
    relist: Relist | None = None


async def load(writer: Any, services: int, concurrency: int = 16) -> None:
    await writer.prepare()
    indexes = iter(range(services))

    async def worker() -> None:
        for i in indexes:
            await writer.create(endpoint_slice(i))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def churn(writer: Any, services: int, changes: int, rate: float) -> None:
    """`changes` slice updates at `rate`/s, round robin over the Services, each stamped."""
    start = time.monotonic()
    for n in range(changes):
        await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
        obj = endpoint_slice((n * 7919) % services, generation=n + 1)
        obj["metadata"]["annotations"][STAMP] = repr(time.time())
        await writer.update(obj)


def run_server(server: Server, args: argparse.Namespace) -> Result:
    async def setup() -> int:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            writer = make_writer(server, session)
            await load(writer, args.services)
            return await writer.revision()

    revision = asyncio.run(setup())
    ctx = multiprocessing.get_context("spawn")
    share = [args.watchers // args.client_procs + (1 if i < args.watchers % args.client_procs else 0)
             for i in range(args.client_procs)]
    pipes, procs = [], []
    started = time.monotonic()
    for count in share:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=watcher_process,
                           args=(server.name, server.url, count, revision, args.changes, child))
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    try:
        for conn in pipes:
            if not conn.poll(OPEN_TIMEOUT):
                raise RuntimeError(f"{server.name}: watchers did not open within {OPEN_TIMEOUT:.0f}s")
            message = conn.recv()
            if message != "open":
                raise RuntimeError(f"{server.name}: {message}")
        open_s = time.monotonic() - started
        rss_open = proc_rss_mib(server.proc.pid)
        cpu_before = process_cpu_seconds(server.proc.pid)

        async def write() -> None:
            async with aiohttp.ClientSession() as session:
                writer = make_writer(server, session)
                await churn(writer, args.services, args.changes, args.rate)

        asyncio.run(write())
        results: list[list[float]] = []
        deadline = time.monotonic() + CHURN_GRACE
        for conn in pipes:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                conn.send("stop")  # late watchers count what they have
            message = conn.recv()
            if isinstance(message, str):
                raise RuntimeError(f"{server.name}: {message}")
            results.extend(message)
        cpu_s = process_cpu_seconds(server.proc.pid) - cpu_before
        rss_after = proc_rss_mib(server.proc.pid)
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    every = [x for watcher in results for x in watcher]
    bench_results.distribution(f"watch event delivery, {args.watchers} watchers",
                               "kproxy apiserver" if server.name == "kproxy" else f"etcd {etcd_version()}",
                               [x * 1000 for x in every], "ms")
    # per event: the latest delivery; events are the n-th stamped object each watcher saw
    last = [max(watcher[n] for watcher in results if len(watcher) > n)
            for n in range(args.changes) if any(len(w) > n for w in results)]
    return Result(open_s, pct(every, 0.5), pct(every, 0.99), max(every, default=float("nan")),
                  pct(last, 0.5), pct(last, 0.99), max(last, default=float("nan")),
                  len(every), args.watchers * args.changes, rss_open, rss_after, cpu_s,
                  relist_storm(server, args.relist) if args.relist else None)


def print_table(ours: Result, theirs: Result, args: argparse.Namespace) -> None:
    print(f"{args.watchers} watchers of {args.services} EndpointSlices, {args.changes} changes at "
          f"{args.rate:g}/s, {args.client_procs} client processes; etcd {etcd_version()}")
    rows = [
        ("open all watches (s)", ours.open_s, theirs.open_s, "{:.2f}"),
        ("delivery p50 (ms)", ours.all_p50 * 1e3, theirs.all_p50 * 1e3, "{:.1f}"),
        ("delivery p99 (ms)", ours.all_p99 * 1e3, theirs.all_p99 * 1e3, "{:.1f}"),
        ("delivery max (ms)", ours.all_max * 1e3, theirs.all_max * 1e3, "{:.1f}"),
        ("to the last watcher p50 (ms)", ours.last_p50 * 1e3, theirs.last_p50 * 1e3, "{:.1f}"),
        ("to the last watcher p99 (ms)", ours.last_p99 * 1e3, theirs.last_p99 * 1e3, "{:.1f}"),
        ("events delivered", ours.delivered, theirs.delivered, "{:.0f}"),
        ("server RSS, watches open (MiB)", ours.rss_open, theirs.rss_open, "{:.0f}"),
        ("server RSS after churn (MiB)", ours.rss_after, theirs.rss_after, "{:.0f}"),
        ("server CPU during churn (s)", ours.cpu_s, theirs.cpu_s, "{:.2f}"),
    ]
    if ours.relist and theirs.relist:
        a, b = ours.relist, theirs.relist
        rows += [
            (f"relist storm, {a.clients} lists: all answered (ms)", a.wall_s * 1e3, b.wall_s * 1e3, "{:.1f}"),
            ("relist: one list p50 (ms)", a.p50_s * 1e3, b.p50_s * 1e3, "{:.1f}"),
            ("relist: one list p99 (ms)", a.p99_s * 1e3, b.p99_s * 1e3, "{:.1f}"),
            ("relist: one answer (KiB)", a.kib_per_list, b.kib_per_list, "{:.0f}"),
            ("relist: server CPU (s)", a.cpu_s, b.cpu_s, "{:.2f}"),
            ("relist: server peak RSS (MiB)", a.rss_peak, b.rss_peak, "{:.0f}"),
        ]
    width = max(34, max(len(r[0]) for r in rows) + 2)
    print(f"{'':{width}}{'kproxy':>12}{'etcd':>12}")
    for label, a, b, fmt in rows:
        print(f"{label:{width}}{fmt.format(a):>12}{fmt.format(b):>12}")
    print(f"(expected {ours.expected} deliveries per server)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.watchers", description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=1000, help="EndpointSlices loaded first")
    parser.add_argument("--watchers", type=int, default=5000, help="watch streams held open")
    parser.add_argument("--changes", type=int, default=40, help="slice updates during the churn")
    parser.add_argument("--rate", type=float, default=5.0, help="slice updates per second")
    parser.add_argument("--client-procs", type=int, default=2, help="processes holding the watchers")
    parser.add_argument("--relist", type=int, default=0, help="clients listing every slice at once after "
                        "the churn (0: no relist storm)")
    args = parser.parse_args(argv)
    if args.relist < 0:
        parser.error("--relist must not be negative")
    for name in ("services", "watchers", "changes", "client_procs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.rate <= 0:
        parser.error("--rate must be positive")
    with tempfile.TemporaryDirectory(prefix="kproxy-bench-watchers-") as workdir:
        for side in ("k", "e"):
            os.makedirs(os.path.join(workdir, side))
        extra = ["--max-watches-per-user", str(args.watchers + 10)]
        with running_apiserver(os.path.join(workdir, "k"), extra) as server:
            ours = run_server(server, args)
        with running_etcd(os.path.join(workdir, "e")) as server:
            theirs = run_server(server, args)
    print_table(ours, theirs, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
