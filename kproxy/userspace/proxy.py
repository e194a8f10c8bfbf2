"""The asyncio driver of the userspace proxy: TCP and UDP listeners that carry out core.py's
decisions. It runs its own event loop (uvloop when installed) on one thread that has joined the
target network namespace, so every socket it opens (listeners and upstream connections) lives
there while the agent's apiserver connection stays where it started.

Guarantees:
- update(listeners, bind_ip) opens missing listeners before it returns their ports, rebuilds the
  balancer of listeners whose endpoints changed (existing connections keep going: a connection
  to a terminating or removed endpoint drains on its own) and closes UDP flows whose endpoint
  left. retire(keys) closes the listeners' sockets (accepted connections keep running).
- Backpressure: a side that cannot keep up pauses reading on the other side (asyncio write
  buffer high-water mark, WRITE_HIGH_WATER), so a slow reader costs at most about
  WRITE_HIGH_WATER plus one read per direction; nothing is buffered without bound. UDP flows are
  capped (core.UdpFlows.max_flows) and expire after udp_idle_timeout.
- A TCP connect that is refused or times out moves on to the next endpoint; when all fail, the
  client is reset.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

from kproxy.userspace.core import Balancer, Connect, UdpFlows
from kproxy.userspace.plan import ListenerSpec

log = logging.getLogger(__name__)

WRITE_HIGH_WATER = 256 * 1024
CONNECT_TIMEOUT = 3.0
UDP_IDLE_TIMEOUT = 60.0
UDP_READ_SIZE = 65535
IPPROTO = {"TCP": 6, "UDP": 17}


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed, else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


IP_TRANSPARENT = getattr(socket, "IP_TRANSPARENT", 19)


def transparent_source(spec: ListenerSpec | None, client_ip: str, endpoint: str) -> str | None:
    """The client's address when the upstream connection may use it as its source: only to
    endpoints on this node (their replies route back through it, where the kernel's socket
    match hands them to us), never for hairpin (the endpoint is the client) or loopback."""
    if spec is None or not spec.transparent or endpoint not in spec.local_endpoints:
        return None
    if client_ip.startswith("127.") or endpoint.rpartition(":")[0] == client_ip:
        return None
    return client_ip


def transparent_socket(kind: int, source: str) -> socket.socket:
    """A non-blocking socket bound to a foreign (client) address with IP_TRANSPARENT."""
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
        sock.bind((source, 0))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _reset(transport: asyncio.Transport) -> None:
    """Closes a TCP transport with RST (SO_LINGER 0) so the client sees a reset, not an EOF."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


# ------------------------------------------------------------------ TCP


class _Side(asyncio.Protocol):
    """One side of a relayed TCP connection; `peer` is the other side."""

    def __init__(self, conn: "_Relay") -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.peer: "_Side | None" = None
        self.eof = False
        self.early: list[bytes] = []  # data that arrived before the other side existed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            # asyncio may deliver a first read despite pause_reading() in connection_made:
            # keep it (one read at most, since we pause again) until the upstream is linked.
            self.early.append(data)
            if self.transport is not None:
                self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is None:
            return True  # not linked yet: the EOF is forwarded once it is
        if peer.eof:
            # Both directions finished: close. Closing the peer (closed()) sends its FIN, so a
            # shutdown() first would only cost a syscall.
            return False
        if peer.transport is not None and peer.transport.can_write_eof():
            peer.transport.write_eof()
        return True  # keep the other direction going

    def pause_writing(self) -> None:  # our send buffer is full: stop reading the other side
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.closed(self)
        self.transport = self.peer = None  # no cycle left: freed by refcount, not the collector


class _Relay:
    """A client connection and its upstream connection."""

    def __init__(self, listener: "TcpListener") -> None:
        self.listener = listener
        self.client: _Client | None = _Client(self)
        self.upstream: _Side | None = None
        self.endpoint = ""
        self.done = False

    def closed(self, side: _Side) -> None:
        """`side` lost its connection: the other one is closed. Then the relay lets go of its
        sides (as each side of its transport and peer), so a finished connection is freed by
        reference counting instead of waiting for the cycle collector."""
        if not self.done:
            self.done = True
            self.listener.relays.discard(self)
            for s in (self.client, self.upstream):
                if s is not None and s is not side and s.transport is not None:
                    s.transport.close()
        self.client = self.upstream = None


class _Client(_Side):
    timed_out = False  # set by _time_out() when the pending connect's CONNECT_TIMEOUT passes

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)  # type: ignore[attr-defined]
        transport.pause_reading()  # type: ignore[attr-defined]
        listener = self.conn.listener
        listener.relays.add(self.conn)
        peer = transport.get_extra_info("peername") or ("0.0.0.0", 0)
        local = transport.get_extra_info("sockname") or ("0.0.0.0", 0)
        self.client_ip = peer[0]
        attempt = listener.balancer.attempt(peer[0], peer[1], local[0], local[1], IPPROTO["TCP"], time.monotonic())
        loop = listener.loop  # not asyncio.get_running_loop(): that costs a getpid() per call
        assert loop is not None  # set by open(), before the first accept
        self.task = loop.create_task(self._connect(attempt, loop))
        listener.tasks.add(self.task)
        self.task.add_done_callback(listener.tasks.discard)

    def _time_out(self) -> None:
        self.timed_out = True
        self.task.cancel()

    @staticmethod
    async def _open_transparent(loop: asyncio.AbstractEventLoop, up: _Side, host: str, port: int,
                                source: str) -> None:
        sock = transparent_socket(socket.SOCK_STREAM, source)
        try:
            await loop.sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        await loop.create_connection(lambda: up, sock=sock)

    async def _connect(self, attempt: Any, loop: asyncio.AbstractEventLoop) -> None:
        command = attempt.start()
        while isinstance(command, Connect):
            host, port = command.host_port
            up = _Side(self.conn)
            source = transparent_source(self.conn.listener.spec, self.client_ip, command.endpoint)
            # One timer per attempt instead of asyncio.timeout(): same effect (the pending connect
            # is cancelled), without its context object and three get_running_loop() calls.
            timer = loop.call_later(CONNECT_TIMEOUT, self._time_out)
            try:
                if source is None:
                    await loop.create_connection(lambda: up, host, port)
                else:
                    await self._open_transparent(loop, up, host, port, source)
            except OSError as exc:
                log.debug("connect to %s failed: %s", command.endpoint, exc)
                command = attempt.failed()
                continue
            except asyncio.CancelledError:
                if not self.timed_out:
                    raise  # stop(): not ours to swallow
                self.timed_out = False
                self.task.uncancel()
                if up.transport is not None:  # connected just as the timer fired
                    up.transport.close()
                log.debug("connect to %s timed out", command.endpoint)
                command = attempt.failed()
                continue
            finally:
                timer.cancel()
            if self.conn.done or self.transport is None or self.transport.is_closing():
                up.transport.close()  # type: ignore[union-attr]
                return
            up.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)  # type: ignore[union-attr]
            self.conn.endpoint = attempt.succeeded()
            self.conn.upstream = up
            up.peer, self.peer = self, up
            for data in self.early:
                up.transport.write(data)  # type: ignore[union-attr]
            self.early.clear()
            if self.eof and up.transport.can_write_eof():  # type: ignore[union-attr]
                up.transport.write_eof()  # type: ignore[union-attr]
            self.transport.resume_reading()
            return
        log.info("%s: no endpoint accepted the connection (tried %s)", self.conn.listener.key,
                 ", ".join(command.tried) or "none")
        self.conn.done = True
        self.conn.listener.relays.discard(self.conn)
        if self.transport is not None:
            _reset(self.transport)


class TcpListener:
    def __init__(self, key: str, balancer: Balancer, spec: ListenerSpec | None = None) -> None:
        self.key = key
        self.balancer = balancer
        self.spec = spec
        self.relays: set[_Relay] = set()
        self.tasks: set[asyncio.Task] = set()
        self.server: asyncio.AbstractServer | None = None
        self.sock: socket.socket | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def open(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._accepted, sock=sock, backlog=4096)

    def _accepted(self) -> _Client:
        client = _Relay(self).client
        assert client is not None  # a new relay has its client
        return client

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def flows(self) -> int:
        return len(self.relays)


# ------------------------------------------------------------------ UDP


class _UdpServe(asyncio.DatagramProtocol):
    def __init__(self, listener: "UdpListener") -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.listener.from_client(data, addr)


class UdpListener:
    def __init__(self, key: str, balancer: Balancer, idle_timeout: float, spec: ListenerSpec | None = None) -> None:
        self.key = key
        self.balancer = balancer
        self.spec = spec
        self.flows_table = UdpFlows(idle_timeout)
        self.transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("0.0.0.0", 0)
        self.loop: asyncio.AbstractEventLoop | None = None

    async def open(self, sock: socket.socket) -> None:
        self.loop = asyncio.get_running_loop()
        self.local = sock.getsockname()[:2]
        self.transport, _ = await self.loop.create_datagram_endpoint(lambda: _UdpServe(self), sock=sock)

    def from_client(self, data: bytes, client: tuple) -> None:
        now = time.monotonic()
        client = (client[0], client[1])
        flow = self.flows_table.get(client, now)
        if flow is None:
            order = self.balancer.order(client[0], client[1], self.local[0], self.local[1], IPPROTO["UDP"], now)
            if not order:
                return
            host, port = Connect(order[0]).host_port
            source = transparent_source(self.spec, client[0], order[0])
            try:
                if source is None:
                    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.setblocking(False)
                else:
                    up = transparent_socket(socket.SOCK_DGRAM, source)
            except OSError:
                return
            try:
                up.connect((host, port))
            except OSError:
                up.close()
                return
            self.balancer.remember(client[0], order[0], now)
            for old in self.flows_table.add(client, order[0], now, up):
                self._close_flow(old)
            assert self.loop is not None
            self.loop.add_reader(up.fileno(), self._from_upstream, client, up)
            flow = self.flows_table.get(client, now)
        try:
            flow.upstream.send(data)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            pass  # UDP: a full socket buffer drops the datagram, as the kernel would
        except OSError:
            self._drop(client)

    def _from_upstream(self, client: tuple[str, int], up: socket.socket) -> None:
        for _ in range(64):  # bounded batch per wakeup
            try:
                data = up.recv(UDP_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable from the endpoint: pick again next time
                self._drop(client)
                return
            flow = self.flows_table.get(client, time.monotonic())
            if flow is None or self.transport is None:
                return
            self.transport.sendto(data, client)

    def _drop(self, client: tuple[str, int]) -> None:
        flow = self.flows_table.remove(client)
        if flow is not None:
            self._close_flow(flow)

    def _close_flow(self, flow: Any) -> None:
        up = flow.upstream
        if up is not None and up.fileno() >= 0:
            if self.loop is not None:
                self.loop.remove_reader(up.fileno())
            up.close()

    def expire(self, now: float) -> None:
        for flow in self.flows_table.expire(now):
            self._close_flow(flow)

    def retain(self, endpoints: set[str]) -> None:
        for flow in self.flows_table.retain_endpoints(endpoints):
            self._close_flow(flow)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        for flow in self.flows_table:
            self._close_flow(flow)
        self.flows_table.retain_endpoints(set())

    def flows(self) -> int:
        return len(self.flows_table)


# ------------------------------------------------------------------ the server


@dataclass(frozen=True)
class ListenerInfo:
    """What one open listener is (inspect())."""

    key: str
    protocol: str
    address: str
    port: int
    endpoints: tuple[str, ...]
    flows: int


class ProxyServer:
    """Owns the proxy thread and its listeners. Thread-safe public methods (see module doc)."""

    def __init__(self, netns_path: str | None = None, balancer: str = "maglev",
                 udp_idle_timeout: float = UDP_IDLE_TIMEOUT) -> None:
        self.netns_path = netns_path
        self.balancer_kind = balancer
        self.udp_idle_timeout = udp_idle_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listeners: dict[str, TcpListener | UdpListener] = {}
        self._specs: dict[str, ListenerSpec] = {}
        self._bind: dict[str, str] = {}
        self._lock = threading.Lock()
        self._sweeper: asyncio.Task | None = None

    # -- lifecycle

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            ready = threading.Event()
            failure: list[BaseException] = []

            def main() -> None:
                try:
                    if self.netns_path:
                        from kproxy.netns import setns

                        setns(self.netns_path)
                    loop = new_event_loop()
                    asyncio.set_event_loop(loop)
                    self._loop = loop
                except BaseException as exc:  # reported to start()'s caller
                    failure.append(exc)
                    ready.set()
                    return
                loop.call_soon(ready.set)
                self._sweeper = loop.create_task(self._sweep())
                try:
                    loop.run_forever()
                finally:
                    loop.close()

            self._thread = threading.Thread(target=main, name="kproxy-userspace", daemon=True)
            self._thread.start()
            ready.wait()
            if failure:
                self._thread = None
                raise failure[0]

    def stop(self) -> None:
        """Closes every listener and connection and ends the thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None:
                return
            try:
                asyncio.run_coroutine_threadsafe(self._close_all(), loop).result(10)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(10)
                self._thread = None
                self._loop = None

    def _call(self, coro: Any, timeout: float = 30) -> Any:
        self.start()
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- public operations

    def configure(self, balancer: str, udp_idle_timeout: float) -> None:
        """Changes the balancer kind and UDP idle timeout; listeners pick them up at the next
        update() (their sockets stay)."""
        if balancer != self.balancer_kind or udp_idle_timeout != self.udp_idle_timeout:
            Balancer((), kind=balancer)  # validates the name (ValueError)
            self.balancer_kind = balancer
            self.udp_idle_timeout = udp_idle_timeout

    def update(self, listeners: Mapping[str, ListenerSpec], bind_ip: str | None) -> dict[str, int]:
        """Makes every listener in `listeners` open and current; returns key -> port for them.
        Listeners not named are left open (retire() closes them once no rule points at them)."""
        return self._call(self._update(dict(listeners), bind_ip or "0.0.0.0"))

    def retire(self, keep: set[str]) -> list[str]:
        """Closes the listeners whose key is not in `keep`; returns their keys."""
        return self._call(self._retire(set(keep)))

    def listeners(self) -> list[ListenerInfo]:
        return self._call(self._info())

    # -- on the loop thread

    def _balancer(self, spec: ListenerSpec) -> Balancer:
        return Balancer(spec.endpoints, spec.affinity_timeout, self.balancer_kind)

    async def _update(self, specs: dict[str, ListenerSpec], bind_ip: str) -> dict[str, int]:
        ports: dict[str, int] = {}
        for key, spec in specs.items():
            current = self._listeners.get(key)
            old = self._specs.get(key)
            if current is not None and (old is None or old.protocol != spec.protocol or self._bind[key] != bind_ip):
                current.close()
                del self._listeners[key]
                current = None
            if current is None:
                current = await self._open(spec, bind_ip)
            elif old != spec or current.balancer.kind != self.balancer_kind:
                balancer = self._balancer(spec)
                balancer.keep_affinity(current.balancer)
                current.balancer = balancer
                current.spec = spec
                if isinstance(current, UdpListener):
                    current.retain(set(spec.endpoints))
            if isinstance(current, UdpListener):
                current.flows_table.idle_timeout = self.udp_idle_timeout
            self._specs[key] = spec
            ports[key] = self._port(current)
        return ports

    async def _open(self, spec: ListenerSpec, bind_ip: str) -> TcpListener | UdpListener:
        kind = socket.SOCK_STREAM if spec.protocol == "TCP" else socket.SOCK_DGRAM
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((bind_ip, 0))
            sock.setblocking(False)
            listener: TcpListener | UdpListener
            if spec.protocol == "TCP":
                sock.listen(4096)
                listener = TcpListener(spec.key, self._balancer(spec), spec)
            else:
                listener = UdpListener(spec.key, self._balancer(spec), self.udp_idle_timeout, spec)
            await listener.open(sock)
        except BaseException:
            sock.close()
            raise
        self._listeners[spec.key] = listener
        self._bind[spec.key] = bind_ip
        return listener

    @staticmethod
    def _port(listener: TcpListener | UdpListener) -> int:
        if isinstance(listener, TcpListener):
            return listener.sock.getsockname()[1]  # type: ignore[union-attr]
        return listener.local[1]

    async def _retire(self, keep: set[str]) -> list[str]:
        gone = [k for k in self._listeners if k not in keep]
        for key in gone:
            self._listeners.pop(key).close()
            self._specs.pop(key, None)
            self._bind.pop(key, None)
        return gone

    async def _info(self) -> list[ListenerInfo]:
        return [ListenerInfo(key, self._specs[key].protocol, self._bind[key], self._port(l),
                             self._specs[key].endpoints, l.flows())
                for key, l in sorted(self._listeners.items())]

    async def _close_all(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for listener in self._listeners.values():
            listener.close()
            if isinstance(listener, TcpListener):
                for relay in list(listener.relays):
                    for side in (relay.client, relay.upstream):
                        if side is not None and side.transport is not None:
                            side.transport.abort()
                for task in list(listener.tasks):
                    task.cancel()
        self._listeners.clear()
        self._specs.clear()
        self._bind.clear()

    async def _sweep(self) -> None:
        """Expires idle UDP flows and round-robin affinity entries, once a second."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for listener in list(self._listeners.values()):
                if isinstance(listener, UdpListener):
                    listener.expire(now)
                listener.balancer.expire_affinity(now)
