"""The asyncio proxy driver in-process, over loopback sockets: relaying, retry after a refused
endpoint, reset when every endpoint refuses, half close, UDP flows, listener lifecycle."""
from __future__ import annotations

import errno
import gc
import socket
import threading
import time

import pytest

from kproxy.userspace.plan import ListenerSpec
from kproxy.userspace.proxy import ProxyServer, transparent_source


@pytest.fixture
def server():
    s = ProxyServer(None)
    try:
        yield s
    finally:
        s.stop()


class LineServer:
    """A TCP server on loopback answering every line with "<name> <line>" and closing."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(self.name.encode() + b" " + data)

    def close(self) -> None:
        self.sock.close()


def refused_address() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"127.0.0.1:{port}"


def exchange(port: int, payload: bytes = b"hello\n") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)  # half close: the answer must still come back
        out = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                return out
            out += chunk


def test_relays_and_half_closes(server):
    a = LineServer("a")
    try:
        port = server.update({"k": ListenerSpec("k", "TCP", (a.address,))}, "127.0.0.1")["k"]
        big = b"x" * (3 << 20) + b"\n"  # larger than every buffer on the way
        assert exchange(port, big) == b"a " + big
    finally:
        a.close()


def test_refused_endpoint_is_retried_and_all_refused_resets(server):
    b = LineServer("b")
    dead = refused_address()
    try:
        port = server.update({"k": ListenerSpec("k", "TCP", (dead, b.address))}, "127.0.0.1")["k"]
        assert {exchange(port) for _ in range(10)} == {b"b hello\n"}
        server.update({"k": ListenerSpec("k", "TCP", (dead,))}, "127.0.0.1")
        # the proxy resets the client; depending on when the RST lands, the client sees it at
        # send (EPIPE), at shutdown (ENOTCONN: the connection is already gone) or at recv
        with pytest.raises(OSError) as reset:
            exchange(port)
        assert reset.value.errno in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN), reset.value
    finally:
        b.close()


def unanswering_address(stack: list[socket.socket]) -> str:
    """A loopback address whose SYNs go unanswered: a listener with a full accept queue (the
    kernel drops SYNs then), so a connect to it hangs until the connector gives up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    stack.append(listener)
    address = listener.getsockname()
    for _ in range(4):  # more than the queue holds (backlog + 1)
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(address)
        stack.append(filler)
    return f"127.0.0.1:{address[1]}"


def test_connect_timeout_moves_on_to_the_next_endpoint(monkeypatch):
    monkeypatch.setattr("kproxy.userspace.proxy.CONNECT_TIMEOUT", 0.5)
    sockets: list[socket.socket] = []
    a = LineServer("a")
    server = ProxyServer(None, balancer="roundrobin")  # the first connection tries endpoints[0]
    try:
        hung = unanswering_address(sockets)
        port = server.update({"k": ListenerSpec("k", "TCP", (hung, a.address))}, "127.0.0.1")["k"]
        assert exchange(port) == b"a hello\n"
    finally:
        server.stop()
        a.close()
        for s in sockets:
            s.close()


def test_finished_connections_are_freed_without_the_cycle_collector(server):
    """A relayed connection that ended leaves no reference cycle behind (the cycle collector's
    passes cost CPU on every few hundred connections)."""
    a = LineServer("a")
    try:
        port = server.update({"k": ListenerSpec("k", "TCP", (a.address,))}, "127.0.0.1")["k"]
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds goes to gc.garbage
        try:
            for _ in range(50):
                assert exchange(port) == b"a hello\n"
            deadline = time.monotonic() + 30
            while server.listeners()[0].flows and time.monotonic() < deadline:
                time.sleep(0.01)
            assert server.listeners()[0].flows == 0
            gc.collect()
            left = [type(o).__name__ for o in gc.garbage
                    if type(o).__module__ == "kproxy.userspace.proxy" or type(o).__name__ == "TCPTransport"]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        assert left == []
    finally:
        a.close()


def test_listener_keeps_its_port_until_retired(server):
    a, b = LineServer("a"), LineServer("b")
    try:
        port = server.update({"k": ListenerSpec("k", "TCP", (a.address,))}, "127.0.0.1")["k"]
        assert server.update({"k": ListenerSpec("k", "TCP", (b.address,))}, "127.0.0.1")["k"] == port
        assert exchange(port) == b"b hello\n"
        assert [i.key for i in server.listeners()] == ["k"]
        assert server.retire(set()) == ["k"]
        assert server.listeners() == []
        with pytest.raises(ConnectionRefusedError):
            exchange(port)
    finally:
        a.close()
        b.close()


def test_udp_flow_follows_its_endpoint_and_moves_when_it_leaves(server):
    endpoints = []
    for name in ("u1", "u2"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        endpoints.append((name, s))

        def answer(sock=s, name=name) -> None:
            while True:
                try:
                    data, addr = sock.recvfrom(2048)
                except OSError:
                    return
                sock.sendto(name.encode() + b" " + data, addr)

        threading.Thread(target=answer, daemon=True).start()
    addr = {name: f"127.0.0.1:{s.getsockname()[1]}" for name, s in endpoints}
    try:
        port = server.update({"u": ListenerSpec("u", "UDP", (addr["u1"],))}, "127.0.0.1")["u"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(5)
            c.connect(("127.0.0.1", port))
            c.send(b"one")
            assert c.recv(100) == b"u1 one"
            assert server.listeners()[0].flows == 1
            server.update({"u": ListenerSpec("u", "UDP", (addr["u2"],))}, "127.0.0.1")
            assert server.listeners()[0].flows == 0  # its endpoint left: the flow is gone
            c.send(b"two")  # same client address, picked again
            assert c.recv(100) == b"u2 two"
    finally:
        for _, s in endpoints:
            s.close()


def test_transparent_source_only_for_local_non_hairpin_endpoints():
    spec = ListenerSpec("k", "TCP", ("10.244.1.2:80", "10.244.2.2:80"), transparent=True,
                        local_endpoints=("10.244.1.2:80",))
    assert transparent_source(spec, "10.200.0.2", "10.244.1.2:80") == "10.200.0.2"
    assert transparent_source(spec, "10.200.0.2", "10.244.2.2:80") is None  # remote
    assert transparent_source(spec, "10.244.1.2", "10.244.1.2:80") is None  # hairpin
    assert transparent_source(spec, "127.0.0.1", "10.244.1.2:80") is None  # loopback
    assert transparent_source(None, "10.200.0.2", "10.244.1.2:80") is None


def test_affinity_outlives_an_endpoint_change_while_its_endpoint_stays(server):
    """ClientIP affinity is remembered per listener: adding an endpoint rebuilds the balancer,
    and the client keeps its endpoint (it used to be chosen afresh)."""
    a, b, c = LineServer("a"), LineServer("b"), LineServer("c")
    try:
        spec = ListenerSpec("k", "TCP", tuple(sorted((a.address, b.address))), affinity_timeout=600)
        port = server.update({"k": spec}, "127.0.0.1")["k"]
        first = exchange(port)
        for extra in (c.address, None):  # one more endpoint, then a changed spec without it
            endpoints = tuple(sorted((a.address, b.address) + ((extra,) if extra else ())))
            server.update({"k": ListenerSpec("k", "TCP", endpoints, affinity_timeout=600)}, "127.0.0.1")
            assert {exchange(port) for _ in range(10)} == {first}
        # the remembered endpoint leaves: the client is balanced afresh over the others
        gone = a.address if first.startswith(b"a ") else b.address
        rest = tuple(sorted({a.address, b.address, c.address} - {gone}))
        server.update({"k": ListenerSpec("k", "TCP", rest, affinity_timeout=600)}, "127.0.0.1")
        assert exchange(port) != first
    finally:
        a.close()
        b.close()
        c.close()
