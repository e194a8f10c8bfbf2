"""Userspace proxy throughput and connection rate, next to a direct connection and haproxy.

    python -m bench.userspace [--bytes 1073741824] [--connections 3000] [--concurrency 16]

Everything runs inside one throwaway network namespace (loopback only), each party in its own
process so they do not share a GIL: a server (streams --bytes to each client of the throughput
port; answers one line per connection on the request port), kproxy's userspace proxy
(kproxy.userspace.proxy.ProxyServer, uvloop when installed), haproxy (Debian's, `mode tcp`) and
the load client. For each path (direct, kproxy userspace, haproxy), in the same run:
- throughput: one connection reading --bytes (MB/s);
- connection rate: --connections request/answer exchanges, each on a new TCP connection, from
  --concurrency parallel asyncio clients: connections per second and p50/p99 latency;
- CPU per connection: the proxy process's utime+stime (/proc/PID/stat, all its threads) over
  the connection run divided by the connections, in microseconds. Wall-clock rates swing on a
  loaded machine; this column does not (for direct it is the server's).
Issue 4's target: the userspace proxy reaches at least half of haproxy's throughput and rate;
issue 23's: a connection rate and p99 at least haproxy's, throughput kept.
haproxy missing: `apt-get install -y haproxy` (the bench says so and skips that column).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Iterator

CHUNK = 1 << 20
REPLY = b"ok\n"


# ------------------------------------------------------------------ child roles


def serve(stream_port: int, request_port: int, total: int) -> None:
    """Streams `total` bytes to every client of stream_port; one line back on request_port."""
    from kproxy.userspace.proxy import new_event_loop

    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    payload = b"\0" * CHUNK

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        left = total
        while left > 0:
            n = min(left, CHUNK)
            writer.write(payload[:n])
            await writer.drain()
            left -= n
        writer.close()

    async def request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(REPLY)
        writer.close()

    async def main() -> None:
        await asyncio.start_server(stream, "127.0.0.1", stream_port, backlog=4096)
        await asyncio.start_server(request, "127.0.0.1", request_port, backlog=4096)
        print("ready", flush=True)
        await asyncio.Event().wait()

    loop.run_until_complete(main())


def proxy(endpoints: list[str]) -> None:
    """kproxy's userspace proxy, one listener per endpoint; prints the listener ports."""
    from kproxy.userspace.plan import ListenerSpec
    from kproxy.userspace.proxy import ProxyServer

    server = ProxyServer(None)
    ports = server.update({ep: ListenerSpec(ep, "TCP", (ep,)) for ep in endpoints}, "127.0.0.1")
    print(json.dumps([ports[ep] for ep in endpoints]), flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


def client(mode: str, port: int, amount: int, concurrency: int) -> None:
    """Prints one JSON result line."""
    from kproxy.userspace.proxy import new_event_loop

    if mode == "stream":
        with socket.create_connection(("127.0.0.1", port)) as s:
            buf = bytearray(CHUNK)
            got = 0
            t = time.perf_counter()
            while True:
                n = s.recv_into(buf)
                if not n:
                    break
                got += n
            elapsed = time.perf_counter() - t
        print(json.dumps({"bytes": got, "seconds": elapsed}), flush=True)
        return

    loop = new_event_loop()
    latencies: list[float] = []
    errors = 0

    async def one() -> None:
        nonlocal errors
        t = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello\n")
            if await reader.readline() != REPLY:
                errors += 1
            writer.close()
        except OSError:
            errors += 1
            return
        latencies.append(time.perf_counter() - t)

    async def worker(n: int) -> None:
        for _ in range(n):
            await one()

    async def main() -> float:
        t = time.perf_counter()
        per = [amount // concurrency + (1 if i < amount % concurrency else 0) for i in range(concurrency)]
        await asyncio.gather(*(worker(n) for n in per))
        return time.perf_counter() - t

    elapsed = loop.run_until_complete(main())
    latencies.sort()
    pct = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan"))
    print(json.dumps({"connections": len(latencies), "errors": errors, "seconds": elapsed,
                      "p50": pct(0.50), "p99": pct(0.99)}), flush=True)


# ------------------------------------------------------------------ orchestration


@contextlib.contextmanager
def namespace() -> Iterator[str]:
    name = f"kpbench-us-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], check=False)


def spawn(ns: str, argv: list[str], procs: list[subprocess.Popen]) -> subprocess.Popen:
    p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE, text=True,
                         start_new_session=True)
    procs.append(p)
    return p


def me(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.userspace", *args]


def run_client(ns: str, *args: str, timeout: float = 300) -> dict:
    out = subprocess.run(["ip", "netns", "exec", ns, *me("--role", "client", *args)], capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"client failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (every thread), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()  # after "(comm)", which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # fields 14, 15


def haproxy_config(stream_port: int, request_port: int, front: tuple[int, int]) -> str:
    return "\n".join([
        "global", "  maxconn 8000", "defaults", "  mode tcp", "  timeout connect 5s",
        "  timeout client 60s", "  timeout server 60s",
        "listen stream", f"  bind 127.0.0.1:{front[0]}", f"  server s1 127.0.0.1:{stream_port}",
        "listen request", f"  bind 127.0.0.1:{front[1]}", f"  server s1 127.0.0.1:{request_port}", ""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.userspace", description=__doc__.splitlines()[0])
    p.add_argument("--bytes", type=int, default=1 << 30, help="bytes per throughput run (default 1 GiB)")
    p.add_argument("--connections", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--role", choices=["server", "proxy", "client"], help=argparse.SUPPRESS)
    p.add_argument("--args", default="", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role == "server":
        stream_port, request_port = (int(x) for x in args.args.split(","))
        serve(stream_port, request_port, args.bytes)
        return 0
    if args.role == "proxy":
        proxy(args.args.split(","))
        return 0
    if args.role == "client":
        client(args.mode, args.port, args.connections, args.concurrency)
        return 0
    if os.geteuid() != 0:
        print("bench.userspace needs root (it creates a network namespace)", file=sys.stderr)
        return 1

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt  # so the finally blocks below stop children and delete the namespace

    signal.signal(signal.SIGTERM, interrupted)
    stream_port, request_port = 9000, 9001
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        print("haproxy not installed (apt-get install -y haproxy): its column is skipped", file=sys.stderr)
    procs: list[subprocess.Popen] = []
    results: dict[str, dict] = {}
    with namespace() as ns, tempfile.TemporaryDirectory() as tmp:
        try:
            server = spawn(ns, me("--role", "server", "--args", f"{stream_port},{request_port}",
                                  "--bytes", str(args.bytes)), procs)
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            paths = {"direct": (stream_port, request_port)}
            pids = {"direct": server.pid}  # `ip netns exec` execs: the child's pid is the party's
            kp = spawn(ns, me("--role", "proxy", "--args", f"127.0.0.1:{stream_port},127.0.0.1:{request_port}"), procs)
            assert kp.stdout is not None
            paths["kproxy userspace"] = tuple(json.loads(kp.stdout.readline()))
            pids["kproxy userspace"] = kp.pid
            if haproxy:
                cfg = os.path.join(tmp, "haproxy.cfg")
                with open(cfg, "w") as f:
                    f.write(haproxy_config(stream_port, request_port, (9100, 9101)))
                pids["haproxy"] = spawn(ns, [haproxy, "-db", "-f", cfg], procs).pid
                _wait_port(ns, 9101)
                paths["haproxy"] = (9100, 9101)
            for name, (sport, rport) in paths.items():
                print(f"{name}: throughput ...", file=sys.stderr, flush=True)
                thr = run_client(ns, "--mode", "stream", "--port", str(sport))
                print(f"{name}: connections ...", file=sys.stderr, flush=True)
                cpu = cpu_seconds(pids[name])
                con = run_client(ns, "--mode", "connect", "--port", str(rport), "--connections",
                                 str(args.connections), "--concurrency", str(args.concurrency))
                cpu = cpu_seconds(pids[name]) - cpu
                results[name] = {"MB/s": thr["bytes"] / thr["seconds"] / 1e6, "bytes": thr["bytes"],
                                 "conn/s": con["connections"] / con["seconds"], "p50 ms": con["p50"] * 1e3,
                                 "p99 ms": con["p99"] * 1e3, "errors": con["errors"],
                                 "CPU us/conn": cpu / max(1, con["connections"]) * 1e6}
        finally:
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    print(f"{args.bytes / 2**20:.0f} MiB per throughput run; {args.connections} connections, "
          f"concurrency {args.concurrency}")
    print(f"{'path':<18} {'MB/s':>8} {'conn/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/conn':>12} {'errors':>6}")
    for name, r in results.items():
        print(f"{name:<18} {r['MB/s']:>8.0f} {r['conn/s']:>8.0f} {r['p50 ms']:>8.2f} {r['p99 ms']:>8.2f}"
              f" {r['CPU us/conn']:>12.1f} {r['errors']:>6}")
    if "haproxy" in results:
        us, ha = results["kproxy userspace"], results["haproxy"]
        print(f"kproxy/haproxy: throughput {us['MB/s'] / ha['MB/s']:.2f}x, connection rate "
              f"{us['conn/s'] / ha['conn/s']:.2f}x (target >= 1x), CPU per connection "
              f"{us['CPU us/conn'] / ha['CPU us/conn']:.2f}x (lower is better)")
    return 0


def _wait_port(ns: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Htln", f"sport = :{port}"],
                             capture_output=True, text=True).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


if __name__ == "__main__":
    sys.exit(main())
