"""A bounded accept loop in front of aiohttp's request handler, for the apiserver's TLS listener
and the agent's plain HTTP listeners.

asyncio gives every TLS connection a 256 KiB read buffer from the moment it is accepted, and
aiohttp keeps a peer that never sends a request for an hour. The gate accepts plain sockets
itself and only starts TLS (or hands the socket to aiohttp) once the peer has sent something,
so a silent connection costs a descriptor and a few hundred bytes. Its promises:
- a connection that sends nothing for `handshake_timeout`, or does not finish the TLS handshake
  within it, is closed; the server options in `server_options` make aiohttp close one that has
  not sent a whole request head within `header_timeout` (aiohttp's keep-alive timer starts at
  the connection and after every response, and no byte of a half-sent head resets it);
- at most `max_idle_per_source` connections of one peer address, and `max_idle` in all, wait
  for their first byte; a newer one makes the oldest of them go (so a flood of idle
  connections never locks out a client that speaks at once);
- at most `max_handshakes` TLS handshakes run at once (the oldest goes first);
- at most `max_per_source` connections of one peer address in any state (a silent one of that
  address goes to make room, else the new one is closed);
- at most `max_connections` connections in all, and never more than the descriptor limit less
  `fd_reserve`, so the process's own work (the store, iptables-restore, netlink, logs) always
  has descriptors;
- a malformed request is one debug line (no traceback) in the log.
"""
from __future__ import annotations

import asyncio
import collections
import ctypes
import ctypes.util
import errno
import logging
import resource
import select
import socket
import ssl
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionLimits:
    handshake_timeout: float = 10.0
    header_timeout: float = 30.0
    max_idle_per_source: int = 64
    max_per_source: int = 512
    max_idle: int = 512
    max_handshakes: int = 128
    max_connections: int = 4096
    fd_reserve: int = 256


def connection_budget(limits: ConnectionLimits) -> int:
    """How many connections the gate may hold: the configured cap, and always `fd_reserve`
    descriptors below the soft RLIMIT_NOFILE."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limits.max_connections
    return max(16, min(limits.max_connections, soft - limits.fd_reserve))


ACCEPT_PAUSE = 0.1  # seconds the gate stops accepting when it is full

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def release_free_memory() -> None:
    """Gives freed heap pages back to the system (glibc keeps them after a connection flood)."""
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def listen_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A bound, listening, non-blocking TCP socket (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class _BadRequestsQuiet(logging.LoggerAdapter):
    """aiohttp's server logger with a malformed request as one debug line instead of a
    traceback at error level (a peer must not be able to fill the log)."""

    def exception(self, msg: Any, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self.debug("%s: %s", msg % args if args else msg, exc_info.message or type(exc_info).__name__)
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


def server_options(limits: ConnectionLimits) -> dict[str, Any]:
    """Keyword arguments for aiohttp's AppRunner that go with the gate (see the module doc)."""
    return {"keepalive_timeout": limits.header_timeout,
            "logger": _BadRequestsQuiet(logging.getLogger("aiohttp.server"), {})}


class _Conn:
    __slots__ = ("sock", "source", "timer", "task", "transport")

    def __init__(self, sock: socket.socket, source: str):
        self.sock = sock
        self.source = source
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task | None = None
        self.transport: asyncio.BaseTransport | None = None


class _TrackedProtocol(asyncio.Protocol):
    """Passes every event on to `inner`, telling the gate when the connection opens and closes."""

    def __init__(self, inner: Any, made: Callable[[asyncio.BaseTransport], None], lost: Callable[[], None]):
        self.inner, self._made, self._lost = inner, made, lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._made(transport)
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self.inner.connection_lost(exc)
        finally:
            self._lost()

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class GatedListener:
    """Serves `protocol_factory` (aiohttp's web server) on a listening socket, over TLS when
    `ssl_context` is given."""

    def __init__(self, protocol_factory: Callable[[], asyncio.Protocol], ssl_context: ssl.SSLContext | None,
                 limits: ConnectionLimits = ConnectionLimits()):
        self.protocol_factory = protocol_factory
        self.ssl_context = ssl_context
        self.limits = limits
        self.budget = connection_budget(limits)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        # waiting for a first byte, oldest first; per source and in all
        self._idle: collections.OrderedDict[_Conn, None] = collections.OrderedDict()
        self._idle_by_source: dict[str, collections.OrderedDict[_Conn, None]] = {}
        self._handshaking: collections.OrderedDict[_Conn, None] = collections.OrderedDict()
        self._established: dict[asyncio.BaseTransport, _Conn] = {}
        self._per_source: collections.Counter[str] = collections.Counter()
        self._peak = 0
        self.refused = 0  # connections closed by a bound (for tests and logs)

    # ------------------------------------------------------------------ lifecycle
    def start(self, sock: socket.socket) -> tuple[str, int]:
        """Serves the listening, non-blocking `sock` (see listen_socket); returns its address."""
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._loop.add_reader(sock.fileno(), self._accept)
        return sock.getsockname()[:2]

    async def close(self) -> None:
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for conn in list(self._idle):
            self._drop_idle(conn)
        for conn in list(self._handshaking):
            if conn.task is not None:
                conn.task.cancel()
        for transport in list(self._established):
            transport.close()

    @property
    def open_connections(self) -> int:
        return len(self._idle) + len(self._handshaking) + len(self._established)

    # ------------------------------------------------------------------ accepting
    def _accept(self) -> None:
        assert self._sock is not None and self._loop is not None
        for _ in range(64):  # a bounded batch per wake-up; the reader fires again if more wait
            if self.open_connections >= self.budget:
                if not select.select([self._sock], [], [], 0)[0]:
                    return  # nobody is waiting: keep what is open
                if not self._make_room():
                    self._pause_accepting()  # nothing idle to drop: the kernel backlog holds them
                    return
            try:
                sock, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("cannot accept a connection: %s", exc.strerror)
                    if not self._make_room():
                        self._pause_accepting()
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise
            sock.setblocking(False)
            conn = _Conn(sock, str(addr[0]))
            if self._per_source[conn.source] >= self.limits.max_per_source and \
                    not self._evict_silent(self._idle_by_source.get(conn.source, collections.OrderedDict())):
                self.refused += 1
                sock.close()
                continue
            self._per_source[conn.source] += 1
            self._idle[conn] = None
            by_source = self._idle_by_source.setdefault(conn.source, collections.OrderedDict())
            by_source[conn] = None
            if len(by_source) > self.limits.max_idle_per_source:
                self._evict_silent(by_source)
            if len(self._idle) > self.limits.max_idle:
                self._evict_silent(self._idle)
            self._loop.add_reader(sock.fileno(), self._first_bytes, conn)
            conn.timer = self._loop.call_later(self.limits.handshake_timeout, self._refuse, conn)
            self._peak = max(self._peak, self.open_connections)

    def _pause_accepting(self) -> None:
        """Stops watching the listening socket for a moment (it stays readable while
        connections wait in the backlog, and would wake the loop without end)."""
        assert self._sock is not None and self._loop is not None
        self._loop.remove_reader(self._sock.fileno())
        self._loop.call_later(ACCEPT_PAUSE, self._resume_accepting)

    def _resume_accepting(self) -> None:
        if self._sock is not None and self._loop is not None:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def _make_room(self) -> bool:
        """Closes the oldest connection that has not sent a byte; False if there is none."""
        return self._evict_silent(self._idle)

    def _evict_silent(self, waiting: collections.OrderedDict[_Conn, None]) -> bool:
        """Closes the oldest connection in `waiting` that has still sent nothing; one whose bytes
        arrived but were not yet seen by the loop moves on to serving instead. False if none."""
        while waiting:
            conn = next(iter(waiting))
            try:
                has_data = bool(conn.sock.recv(1, socket.MSG_PEEK))
            except (BlockingIOError, InterruptedError):
                has_data = False
            except OSError:
                has_data = False
            if not has_data:
                self._refuse(conn)
                return True
            self._first_bytes(conn)
        return False

    def _refuse(self, conn: _Conn) -> None:
        self.refused += 1
        if conn in self._idle:
            self._drop_idle(conn)
        elif conn in self._handshaking and conn.task is not None:
            conn.task.cancel()

    def _drop_idle(self, conn: _Conn) -> None:
        assert self._loop is not None
        self._forget_idle(conn)
        self._loop.remove_reader(conn.sock.fileno())
        conn.sock.close()
        self._release(conn)

    def _forget_idle(self, conn: _Conn) -> None:
        self._idle.pop(conn, None)
        by_source = self._idle_by_source.get(conn.source)
        if by_source is not None:
            by_source.pop(conn, None)
            if not by_source:
                del self._idle_by_source[conn.source]
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None

    # ------------------------------------------------------------------ serving
    def _first_bytes(self, conn: _Conn) -> None:
        assert self._loop is not None
        self._loop.remove_reader(conn.sock.fileno())
        self._forget_idle(conn)
        self._handshaking[conn] = None
        if len(self._handshaking) > self.limits.max_handshakes:
            self._refuse(next(iter(self._handshaking)))
        conn.task = self._loop.create_task(self._handshake(conn))

    async def _handshake(self, conn: _Conn) -> None:
        assert self._loop is not None
        try:
            transport, _ = await self._loop.connect_accepted_socket(
                lambda: self._tracked_protocol(conn), conn.sock, ssl=self.ssl_context,
                ssl_handshake_timeout=self.limits.handshake_timeout if self.ssl_context else None)
        except asyncio.CancelledError:
            conn.sock.close()
            self._release(conn)
        except Exception as exc:  # refused TLS, a reset, a timeout: the peer's problem, not ours
            log.debug("connection from %s failed before its first request: %s", conn.source, exc)
            conn.sock.close()
            self._release(conn)
        else:
            conn.transport = transport
        finally:
            self._handshaking.pop(conn, None)

    def _tracked_protocol(self, conn: _Conn) -> asyncio.Protocol:
        """aiohttp's protocol for one connection, wrapped so the gate sees it open and close."""
        def made(transport: asyncio.BaseTransport) -> None:
            self._established[transport] = conn
            conn.transport = transport

        def lost() -> None:
            if conn.transport is not None:
                self._established.pop(conn.transport, None)
            self._release(conn)

        return _TrackedProtocol(self.protocol_factory(), made, lost)

    def _release(self, conn: _Conn) -> None:
        """`conn` is closed for good (each connection ends in exactly one place)."""
        self._per_source[conn.source] -= 1
        if self._per_source[conn.source] <= 0:
            del self._per_source[conn.source]
        self._maybe_trim()

    def _maybe_trim(self) -> None:
        """After a flood has drained, hand its memory back (glibc keeps freed pages otherwise)."""
        if self._peak > 256 and self.open_connections < 16:
            self._peak = self.open_connections
            release_free_memory()


class GatedSite:
    """One aiohttp application served through a GatedListener on one listening socket."""

    def __init__(self, app: Any, sock: socket.socket, limits: ConnectionLimits,
                 ssl_context: ssl.SSLContext | None = None):
        self.sock = sock
        self.limits = limits
        self.ssl_context = ssl_context
        self._runner = web.AppRunner(app, access_log=None, **server_options(limits))
        self.gate: GatedListener | None = None

    async def start(self) -> tuple[str, int]:
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        self.gate = GatedListener(server, self.ssl_context, self.limits)
        return self.gate.start(self.sock)

    async def stop(self) -> None:
        if self.gate is not None:
            await self.gate.close()
        await self._runner.cleanup()
