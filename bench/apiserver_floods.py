"""The apiserver's latency for an authenticated GET while each denial-of-service flood of
issue 15 runs, against the same GET with no flood, in the same run on the same server.

    python -m bench.apiserver_floods [--gets 200] [--idle 3000]

Floods (each runs on its own thread while the GETs are timed, then stops):
  idle-tls      --idle connections that never start TLS (kept open)
  large-yaml    3 MiB YAML bodies, one after another
  alias-bomb    a YAML billion-laughs Event, again and again
  patch-copy    a JSON patch of 14 doubling `copy` operations, again and again
  anonymous     anonymous requests as fast as one client sends them
For each: p50/p99/max of a GET of /api/v1/namespaces/default on a kept-alive connection and of
a GET on a new TLS connection (ms), the apiserver's RSS, and how many flood requests ran.
"""
from __future__ import annotations

from bench.stats import percentile

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.apiserver.fixtures import start_apiserver  # noqa: E402
from tests.apiserver.httputil import Http, client_tls_context  # noqa: E402
from tests.security.test_dos_apiserver import billion_laughs, event, rss_bytes  # noqa: E402

import http.client  # noqa: E402

EVENTS = "/api/v1/namespaces/default/events"
TARGET = "/api/v1/namespaces/default"


def timed_gets(admin: Http, count: int) -> tuple[list[float], list[float]]:
    """Seconds per GET: `count` on one kept-alive connection, count // 4 on new connections."""
    kept, fresh = [], []
    conn = http.client.HTTPSConnection(admin.host, admin.port, timeout=60, context=admin.ssl_context)
    try:
        for _ in range(count):
            start = time.perf_counter()
            conn.request("GET", TARGET)
            resp = conn.getresponse()
            resp.read()
            kept.append(time.perf_counter() - start)
            assert resp.status == 200, resp.status
    finally:
        conn.close()
    for _ in range(max(1, count // 4)):
        start = time.perf_counter()
        status, _, _ = admin.raw("GET", TARGET)
        fresh.append(time.perf_counter() - start)
        assert status == 200, status
    return kept, fresh


class Flood:
    """Runs `step()` over and over on a thread until stopped; counts the steps."""

    def __init__(self, step: Callable[[], None], setup: Callable[[], None] = lambda: None,
                 teardown: Callable[[], None] = lambda: None):
        self.step, self.setup, self.teardown = step, setup, teardown
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except OSError:
                pass
            self.count += 1

    def __enter__(self) -> "Flood":
        self.setup()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(120)
        self.teardown()


def floods(server, admin: Http, idle: int) -> dict[str, Flood]:
    anonymous = Http(server.url, 30, client_tls_context(server.data_dir, None))
    idle_socks: list[socket.socket] = []

    def open_idle() -> None:
        for _ in range(idle):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((admin.host, admin.port))
            idle_socks.append(s)

    def keep_idle() -> None:  # the flood keeps topping up what the server closed
        time.sleep(0.5)

    def close_idle() -> None:
        for s in idle_socks:
            s.close()
        idle_socks.clear()

    big_yaml = (b"apiVersion: v1\nkind: Event\nmetadata: {name: big, namespace: default}\n"
                b"involvedObject: {kind: Pod, name: p}\nreason: Test\nx:\n" + b"- a\n" * 700_000)
    bomb = billion_laughs(7)
    admin.call("POST", EVENTS, event("bench-amplified", message="x" * 1024))
    ops = [{"op": "add", "path": "/d0", "value": ["x" * 1024]}]
    for i in range(1, 15):
        ops.append({"op": "add", "path": f"/d{i}", "value": []})
        ops += [{"op": "copy", "from": f"/d{i - 1}", "path": f"/d{i}/-"}] * 2
    patch = json.dumps(ops).encode()
    slow = Http(server.url, 300, admin.ssl_context)
    return {
        "idle-tls": Flood(keep_idle, open_idle, close_idle),
        "large-yaml": Flood(lambda: slow.call("POST", EVENTS, big_yaml, content_type="application/yaml") and None),
        "alias-bomb": Flood(lambda: slow.call("POST", EVENTS, bomb, content_type="application/yaml") and None),
        "patch-copy": Flood(lambda: slow.call("PATCH", f"{EVENTS}/bench-amplified", patch,
                                              content_type="application/json-patch+json") and None),
        "anonymous": Flood(lambda: anonymous.call("POST", "/api/v1/namespaces", {"metadata": {"name": "x"}}) and None),
    }


def row(name: str, kept: list[float], fresh: list[float], rss: int, steps: int | str) -> str:
    ms = lambda v: f"{v * 1000:8.1f}"  # noqa: E731
    return (f"{name:<12} {ms(percentile(kept, 0.5))} {ms(percentile(kept, 0.99))} {ms(max(kept))}   "
            f"{ms(percentile(fresh, 0.5))} {ms(percentile(fresh, 0.99))}   {rss / 2**20:7.0f}   {steps}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gets", type=int, default=200)
    parser.add_argument("--idle", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kproxy-bench-floods-") as tmp:
        server = start_apiserver(tmp, ["--no-controllers"])
        try:
            admin = Http(server.url, 60, client_tls_context(server.data_dir, "admin"))
            pid = server.proc.pid
            print(f"{'flood':<12} {'kept p50':>8} {'p99':>8} {'max':>8}   {'new p50':>8} {'p99':>8}   "
                  f"{'RSS MiB':>7}   flood requests")
            timed_gets(admin, 20)  # warm up
            print(row("none", *timed_gets(admin, args.gets), rss_bytes(pid), "-"), flush=True)
            for name, flood in floods(server, admin, args.idle).items():
                with flood:
                    time.sleep(0.5)
                    kept, fresh = timed_gets(admin, args.gets)
                    rss = rss_bytes(pid)
                print(row(name, kept, fresh, rss, flood.count if name != "idle-tls" else f"{args.idle} open"),
                      flush=True)
            print(row("none again", *timed_gets(admin, args.gets), rss_bytes(pid), "-"), flush=True)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
