"""The userspace proxy keeps its memory bounded: a client that never reads stalls the endpoint
(backpressure) instead of filling the proxy, and idle connections cost a few KiB each. The proxy
runs as its real process (daemon.py) in a throwaway namespace; traffic stays on its loopback."""
from __future__ import annotations

import socket
import threading

import pytest

from kproxy.netns import NetNS
from kproxy.userspace.control import ProxyControl
from kproxy.userspace.plan import ListenerSpec
from tests import nsutil

pytestmark = pytest.mark.kernel

FLOOD_LIMIT = 256 << 20  # what the endpoint tries to push at a client that never reads
BUFFER_BOUND = 48 << 20  # kernel socket buffers on both hops + the proxy's high-water marks
IDLE_CONNECTIONS = 400


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def proxy():
    with nsutil.netns("usmem") as name:
        ns = NetNS(name)
        control = ProxyControl(ns)
        try:
            yield ns, control
        finally:
            control.stop_daemon()
            ns.close()


def listen(ns: NetNS) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1024)
        return s
    return ns.run(make)


def connect(ns: NetNS, port: int) -> socket.socket:
    return ns.run(socket.create_connection, ("127.0.0.1", port), 5)


def test_a_client_that_never_reads_stalls_the_endpoint_not_the_proxy_memory(proxy):
    ns, control = proxy
    server = listen(ns)
    ep = f"127.0.0.1:{server.getsockname()[1]}"
    port = control.update({"flood": ListenerSpec("flood", "TCP", (ep,))}, "127.0.0.1")["flood"]
    pid = control.call("ping")["pid"]
    before = rss(pid)
    sent = []

    def flood() -> None:
        conn, _ = server.accept()
        conn.settimeout(2.0)  # a send blocked this long: the path is full
        chunk = b"\0" * (1 << 20)
        total = 0
        try:
            while total < FLOOD_LIMIT:
                total += conn.send(chunk)
        except (socket.timeout, OSError):
            pass
        sent.append(total)
        conn.close()

    t = threading.Thread(target=flood)
    t.start()
    client = connect(ns, port)  # never reads
    try:
        t.join(120)
        assert sent, "the flooding endpoint did not finish"
        grown = rss(pid) - before
    finally:
        client.close()
        server.close()
    assert sent[0] < BUFFER_BOUND, f"the endpoint pushed {sent[0] >> 20} MiB into the proxy path"
    assert grown < 16 << 20, f"the proxy grew by {grown >> 20} MiB"


def test_idle_connections_cost_little_and_are_all_tracked(proxy):
    ns, control = proxy
    server = listen(ns)
    ep = f"127.0.0.1:{server.getsockname()[1]}"
    port = control.update({"idle": ListenerSpec("idle", "TCP", (ep,))}, "127.0.0.1")["idle"]
    pid = control.call("ping")["pid"]
    accepted: list[socket.socket] = []

    def accept_all() -> None:
        while len(accepted) < IDLE_CONNECTIONS:
            accepted.append(server.accept()[0])

    t = threading.Thread(target=accept_all)
    t.start()
    # warm up the proxy (first connection allocates its loop structures)
    clients = [connect(ns, port)]
    before = rss(pid)
    try:
        clients += [connect(ns, port) for _ in range(IDLE_CONNECTIONS - 1)]
        t.join(60)
        assert len(accepted) == IDLE_CONNECTIONS
        (info,) = control.listeners()
        assert info.flows == IDLE_CONNECTIONS
        per_connection = (rss(pid) - before) / (IDLE_CONNECTIONS - 1)
    finally:
        for s in clients + accepted:
            s.close()
        server.close()
    assert per_connection < 64 * 1024, f"{per_connection / 1024:.0f} KiB per idle connection"
