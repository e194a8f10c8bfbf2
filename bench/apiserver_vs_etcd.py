"""kproxy's apiserver + SQLite store next to Debian's etcd, same workload, same run.

Starts `kproxy apiserver --no-controllers` and /usr/bin/etcd, each on 127.0.0.1 random ports with
a temporary data directory (both removed at the end), then measures:
  1. writes/s: N creates of small Endpoints objects at a fixed concurrency, over HTTP
     (apiserver POST vs etcd's JSON gateway /v3/kv/put with the same JSON bytes as the value);
  2. the same writes against the store itself (SQLiteStore.create from threads) vs etcd put,
     at the same concurrency and serially;
  3. watch events/s delivered: W concurrent watchers (apiserver ?watch=1 streams vs etcd
     /v3/watch streams), each must receive every event of a burst of B creates; the rate is
     W*B / (time from the first write until the last watcher has its last event);
  4. server CPU ms per write: the server process's user+system CPU time (/proc/PID/stat) spent
     during the concurrent writes of 1., divided by N. Wall-clock rates swing with the load of
     a shared machine; CPU per request does not, so it is the figure to compare runs by.
Every watcher decodes every event into an object (etcd: base64 + JSON), so both sides do the
same client work. Both servers fsync every acknowledged write (etcd defaults; our store
synchronous=FULL). Timing is informational: no thresholds.

    python -m bench.apiserver_vs_etcd [--writes 2000] [--concurrency 16] [--watchers 100] [--burst 300]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Iterator, Sequence

import aiohttp

from kproxy.store.sqlite import SQLiteStore

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
START_TIMEOUT = 30.0
WATCH_TIMEOUT = 60.0
NAMESPACE = "bench"
WATCH_NAMESPACE = "bench-watch"


def endpoints_object(name: str, namespace: str) -> dict:
    """A small, realistic object: one Endpoints with one address and one port (~250 bytes)."""
    return {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
        "subsets": [{"addresses": [{"ip": "10.244.1.5", "nodeName": "node-1"}],
                     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def prefix_end(prefix: str) -> str:
    """etcd's range_end for "every key with this prefix" (last byte + 1)."""
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


# ---- servers ------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen


def wait_until(check: Callable[[], bool], proc: subprocess.Popen, what: str, log_path: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {tail(log_path)}")
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready within {START_TIMEOUT:.0f}s: {tail(log_path)}")


def tail(path: str, lines: int = 8) -> str:
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running_apiserver(workdir: str, extra_args: Sequence[str] = ()) -> Iterator[Server]:
    data_dir = os.path.join(workdir, "apiserver")
    os.makedirs(data_dir)
    log_path = os.path.join(workdir, "apiserver.log")
    kubeconfig = os.path.join(data_dir, "admin.kubeconfig")
    # plain HTTP on loopback, like the etcd it is compared with (the HTTPS listener is unused)
    plain_port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kproxy", "apiserver", "--data-dir", data_dir,
             "--bind", "127.0.0.1:0", "--insecure-bind", f"127.0.0.1:{plain_port}", "--no-controllers",
             *extra_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: os.path.exists(kubeconfig), proc, "kproxy apiserver", log_path)
        yield Server("kproxy", f"http://127.0.0.1:{plain_port}", proc)
    finally:
        stop_process(proc)


@contextlib.contextmanager
def running_etcd(workdir: str) -> Iterator[Server]:
    client, peer = free_port(), free_port()
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    log_path = os.path.join(workdir, "etcd.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [ETCD, "--name", "bench", "--data-dir", os.path.join(workdir, "etcd"),
             "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
             "--initial-cluster", f"bench={peer_url}", "--initial-cluster-state", "new",
             "--logger", "zap", "--log-level", "error"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def healthy() -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(client_url + "/health", timeout=1) as resp:
                return json.load(resp).get("health") == "true"
        except OSError:
            return False

    try:
        wait_until(healthy, proc, "etcd", log_path)
        yield Server("etcd", client_url, proc)
    finally:
        stop_process(proc)


def etcd_version() -> str:
    try:
        out = subprocess.run([ETCD, "--version"], capture_output=True, text=True, timeout=10).stdout
        return out.split()[2] if out.startswith("etcd Version:") else "?"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


# ---- clients: the same operations against both servers ----------------------------------------


class Apiserver:
    def __init__(self, url: str, session: aiohttp.ClientSession):
        self.url, self.session = url, session

    async def check(self, resp: aiohttp.ClientResponse, what: str) -> dict:
        body = await resp.json(content_type=None)
        if resp.status >= 300:
            raise RuntimeError(f"apiserver {what}: {resp.status} {body.get('message')}")
        return body

    async def create_namespace(self, name: str) -> None:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        async with self.session.post(f"{self.url}/api/v1/namespaces", json=namespace) as resp:
            if resp.status != 409:
                await self.check(resp, f"create namespace {name}")

    async def create(self, namespace: str, name: str) -> None:
        async with self.session.post(f"{self.url}/api/v1/namespaces/{namespace}/endpoints",
                                     json=endpoints_object(name, namespace)) as resp:
            await self.check(resp, f"create {name}")

    async def revision(self, namespace: str) -> int:
        async with self.session.get(f"{self.url}/api/v1/namespaces/{namespace}/endpoints?limit=1") as resp:
            return int((await self.check(resp, "list"))["metadata"]["resourceVersion"])

    async def watch(self, namespace: str, after: int, ready: Callable[[], None]) -> AsyncIterator[dict]:
        url = f"{self.url}/api/v1/namespaces/{namespace}/endpoints?watch=1&resourceVersion={after}"
        async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as resp:
            if resp.status != 200:
                raise RuntimeError(f"apiserver watch: {resp.status}")
            ready()  # the server subscribed to the store before it sent the headers
            async for line in resp.content:
                if line.strip():
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        raise RuntimeError(f"apiserver watch error: {event['object'].get('message')}")
                    if event["type"] != "BOOKMARK":
                        yield event["object"]


class Etcd:
    def __init__(self, url: str, session: aiohttp.ClientSession):
        self.url, self.session = url, session

    @staticmethod
    def key(namespace: str, name: str = "") -> str:
        return f"/registry/core/endpoints/{namespace}/{name}"

    async def create_namespace(self, name: str) -> None:
        pass  # etcd has no namespaces: keys carry them

    async def create(self, namespace: str, name: str) -> None:
        # Same bytes the apiserver would store; a create is a put guarded by "key absent" in
        # kube-apiserver (a txn), a plain put here: the cheaper of the two for etcd.
        value = json.dumps(endpoints_object(name, namespace), separators=(",", ":"))
        async with self.session.post(f"{self.url}/v3/kv/put",
                                     json={"key": b64(self.key(namespace, name)), "value": b64(value)}) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"etcd put: {resp.status} {body}")

    async def revision(self, namespace: str) -> int:
        prefix = self.key(namespace)
        async with self.session.post(f"{self.url}/v3/kv/range",
                                     json={"key": b64(prefix), "range_end": prefix_end(prefix), "limit": 1}) as resp:
            return int((await resp.json(content_type=None))["header"]["revision"])

    async def watch(self, namespace: str, after: int, ready: Callable[[], None]) -> AsyncIterator[dict]:
        prefix = self.key(namespace)
        request = {"create_request": {"key": b64(prefix), "range_end": prefix_end(prefix),
                                      "start_revision": after + 1}}
        async with self.session.post(f"{self.url}/v3/watch", json=request,
                                     timeout=aiohttp.ClientTimeout(total=None)) as resp:
            if resp.status != 200:
                raise RuntimeError(f"etcd watch: {resp.status}")
            async for line in resp.content:
                if not line.strip():
                    continue
                result = json.loads(line).get("result", {})
                if result.get("created"):
                    ready()
                for event in result.get("events", []):
                    yield json.loads(base64.b64decode(event["kv"]["value"]))


# ---- workloads ------------------------------------------------------------------------------


async def timed_writes(create: Callable[[str], Awaitable[None]], count: int, concurrency: int) -> float:
    """Runs `count` creates with `concurrency` workers; returns writes/s."""
    names = iter(range(count))

    async def worker() -> None:
        for i in names:
            await create(f"obj-{i:06d}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


async def watch_fanout(client, watchers: int, burst: int, concurrency: int) -> float:
    """W watchers each receive all B events of a burst; returns delivered events/s."""
    await client.create_namespace(WATCH_NAMESPACE)
    after = await client.revision(WATCH_NAMESPACE)
    all_ready = asyncio.Event()
    ready_count = 0
    done_at: list[float] = []

    def ready() -> None:
        nonlocal ready_count
        ready_count += 1
        if ready_count == watchers:
            all_ready.set()

    async def watcher() -> None:
        seen = 0
        async for obj in client.watch(WATCH_NAMESPACE, after, ready):
            if obj["metadata"]["name"].startswith("w-"):
                seen += 1
                if seen == burst:
                    done_at.append(time.perf_counter())
                    return

    tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
    try:
        await asyncio.wait_for(all_ready.wait(), WATCH_TIMEOUT)
        start = time.perf_counter()
        names = iter(range(burst))

        async def writer() -> None:
            for i in names:
                await client.create(WATCH_NAMESPACE, f"w-{i:06d}")

        await asyncio.gather(*(writer() for _ in range(concurrency)))
        await asyncio.wait_for(asyncio.gather(*tasks), WATCH_TIMEOUT)
        return watchers * burst / (max(done_at) - start)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
    # fields[0] is the state (field 3 of proc(5)); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def http_workloads(server: Server, args: argparse.Namespace) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = Apiserver(server.url, session) if server.name == "kproxy" else Etcd(server.url, session)
        await client.create_namespace(NAMESPACE)
        cpu_before = process_cpu_seconds(server.proc.pid)
        results = {"http_writes": await timed_writes(lambda n: client.create(NAMESPACE, n),
                                                     args.writes, args.concurrency)}
        results["cpu_ms_per_write"] = (process_cpu_seconds(server.proc.pid) - cpu_before) * 1000 / args.writes
        results["http_serial"] = await timed_writes(lambda n: client.create(NAMESPACE, "s" + n),
                                                    args.serial_writes, 1)
        results["watch"] = await watch_fanout(client, args.watchers, args.burst, args.concurrency)
        return results


def store_writes(path: str, count: int, concurrency: int, key_prefix: str) -> float:
    """SQLiteStore.create from `concurrency` threads; returns writes/s."""
    store = SQLiteStore(path)
    try:
        value = endpoints_object("x", NAMESPACE)
        start = time.perf_counter()

        def work(worker: int) -> None:
            for i in range(worker, count, concurrency):
                store.create(f"{key_prefix}{i:06d}", value)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return count / (time.perf_counter() - start)
    finally:
        store.close()


# ---- report ---------------------------------------------------------------------------------


def print_table(rows: list[tuple[str, float | None, float | None]], etcd_label: str) -> None:
    def cell(v: float | None, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    width = max(len(r[0]) for r in rows)
    print(f"{'workload':<{width}}  {'kproxy':>12}  {etcd_label:>14}  {'kproxy/etcd':>11}")
    for label, ours, theirs in rows:
        fmt = ".2f" if "CPU ms" in label else ",.0f"  # rates are large numbers, CPU ms per write small
        ratio = f"{ours / theirs:.2f}x" if ours and theirs else "-"
        print(f"{label:<{width}}  {cell(ours, fmt):>12}  {cell(theirs, fmt):>14}  {ratio:>11}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.apiserver_vs_etcd", description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000, help="creates in the concurrent write test")
    parser.add_argument("--serial-writes", type=int, default=300, help="creates in the serial write test")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent writers")
    parser.add_argument("--watchers", type=int, default=100, help="concurrent watchers")
    parser.add_argument("--burst", type=int, default=300, help="writes every watcher must receive")
    args = parser.parse_args(argv)
    for name in ("writes", "serial_writes", "concurrency", "watchers", "burst"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    have_etcd = os.access(ETCD, os.X_OK)
    etcd_label = f"etcd {etcd_version()}" if have_etcd else "etcd (missing)"
    workdir = tempfile.mkdtemp(prefix="kproxy-bench-")
    try:
        started = time.monotonic()
        ours: dict[str, float] = {}
        theirs: dict[str, float] = {}
        with running_apiserver(workdir) as api:
            ours = asyncio.run(http_workloads(api, args))
        if have_etcd:
            with running_etcd(workdir) as etcd:
                theirs = asyncio.run(http_workloads(etcd, args))
        else:
            print(f"{ETCD} not found: etcd column left empty")
        store_path = os.path.join(workdir, "raw-store.db")
        store_concurrent = store_writes(store_path, args.writes, args.concurrency, "/raw/c/")
        store_serial = store_writes(store_path, args.serial_writes, 1, "/raw/s/")

        c, w, b = args.concurrency, args.watchers, args.burst
        print(f"\nkproxy apiserver (SQLite store) vs {etcd_label}; every write fsynced before it is "
              f"acknowledged; {os.cpu_count()} CPUs shared with other work\n")
        print_table([
            (f"writes/s: apiserver POST vs etcd put (HTTP, {c} concurrent)",
             ours.get("http_writes"), theirs.get("http_writes")),
            ("writes/s: apiserver POST vs etcd put (HTTP, serial)", ours.get("http_serial"), theirs.get("http_serial")),
            (f"server CPU ms per write (HTTP, {c} concurrent; lower is better)",
             ours.get("cpu_ms_per_write"), theirs.get("cpu_ms_per_write")),
            (f"writes/s: SQLiteStore.create vs etcd put ({c} concurrent)", store_concurrent, theirs.get("http_writes")),
            ("writes/s: SQLiteStore.create vs etcd put (serial)", store_serial, theirs.get("http_serial")),
            (f"watch events/s delivered ({w} watchers x {b} writes)", ours.get("watch"), theirs.get("watch")),
        ], etcd_label)
        print(f"\n(total {time.monotonic() - started:.1f}s; store rows: in-process store vs etcd over HTTP)")
        return 0
    except (RuntimeError, OSError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
        print(f"bench.apiserver_vs_etcd: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # servers are stopped by their context managers on the way out
        print("bench.apiserver_vs_etcd: interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
