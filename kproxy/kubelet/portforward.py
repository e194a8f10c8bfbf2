"""pods/portforward on the kubelet: TCP connections to 127.0.0.1:PORT inside a pod's network
namespace, carried over one WebSocket in either of two framings.

- `v4.channel.k8s.io` (the official Python client, kubelet's websocket port-forward): the
  ports come as `?port=` query values; port i has data channel 2i and error channel 2i+1
  (first byte of each binary message); the first message on each channel is the port as
  2 bytes little-endian. One connection per port, for the life of the socket.
- `SPDY/3.1+portforward.k8s.io` (kubectl >= 1.30, KEP-4006): SPDY/3.1 frames sliced into
  binary messages. Each forwarded connection is a pair of client-opened streams with headers
  `streamtype` (data|error), `port` and `requestid`; the connection starts when both are open.

Guarantees (as kubelet and containerd do it):
- a port nothing listens on gives, on that port's error channel/stream, "error forwarding port
  P to pod SANDBOX, uid : failed to connect to localhost:P inside namespace ..." and ends that
  connection only; the others go on;
- the target closing ends its connection (data then error closed); the client closing its data
  stream half-closes the target; the WebSocket going away closes every target;
- nothing listens anywhere: the kubelet only dials, from inside the pod's namespace.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Awaitable, Callable, Iterable

from aiohttp import WSMsgType, web

from kproxy.api import status as st
from kproxy.kubelet import spdy
from kproxy.kubelet.execstream import message_bytes
from kproxy.netns import NetNS, NetNSError

log = logging.getLogger(__name__)

V4 = "v4.channel.k8s.io"
TUNNEL = "SPDY/3.1+portforward.k8s.io"
PROTOCOLS = (V4, TUNNEL)  # the WebSocket subprotocols served, preferred first
PORT_QUERY = "port"
READ_CHUNK = 32 * 1024
MAX_QUEUED = 32  # frames waiting for a slow client before the targets' reads pause (~1 MiB)
DATA, ERROR = "data", "error"

# dials 127.0.0.1:port in the pod: (reader, writer), or DialError with the runtime's message
Dial = Callable[[int], Awaitable["tuple[asyncio.StreamReader, asyncio.StreamWriter]"]]
Send = Callable[[bytes], Awaitable[None]]


class DialError(Exception):
    pass


def choose_protocol(offered: str) -> str | None:
    """The first served subprotocol of the client's Sec-WebSocket-Protocol list."""
    names = [p.strip() for p in offered.split(",")]
    return next((p for p in names if p in PROTOCOLS), None)


def parse_ports(values: Iterable[str]) -> tuple[int, ...]:
    """The `port` query values (each may be a comma list), checked with kubelet's messages."""
    ports: list[int] = []
    for value in values:
        if value == "":
            raise st.bad_request(f'query parameter "{PORT_QUERY}" cannot be empty')
        for p in value.split(","):
            if not p.isdigit() or int(p) > 65535:
                why = "invalid syntax" if not p.isdigit() else "value out of range"
                raise st.bad_request(f'unable to parse "{value}" as a port: strconv.ParseUint: parsing "{p}": {why}')
            if int(p) < 1:
                raise st.bad_request(f'port "{value}" must be > 0')
            ports.append(int(p))
    if not ports:
        raise st.bad_request(f'query parameter "{PORT_QUERY}" is required')
    return tuple(ports)


def forward_error(port: int, sandbox: str, reason: str) -> str:
    """What the error channel says when a connection cannot be forwarded (kubelet's wording
    around the runtime's: the pod is named by its sandbox, the uid is empty under CRI)."""
    return f"error forwarding port {port} to pod {sandbox}, uid : {reason}"


def netns_dialer(netns: str) -> Dial:
    """Dials localhost:port inside network namespace `netns` (IPv4, then IPv6, as containerd)."""
    async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        errors = []
        for family, host, name in ((socket.AF_INET, "127.0.0.1", "tcp4"), (socket.AF_INET6, "::1", "tcp6")):
            try:
                ns = NetNS(netns)
                try:
                    sock = await ns.arun(socket.socket, family, socket.SOCK_STREAM)
                finally:
                    ns.close()
            except (NetNSError, OSError) as exc:
                errors.append(f"dial {name}: {exc}")
                continue
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, (host, port))
            except OSError as exc:
                sock.close()
                shown = f"[{host}]" if ":" in host else host
                why = os.strerror(exc.errno) if exc.errno else str(exc)
                errors.append(f"dial {name} {shown}:{port}: connect: {why.lower()}")
                continue
            return await asyncio.open_connection(sock=sock)
        raise DialError(f'failed to connect to localhost:{port} inside namespace "{netns}", '
                        f"IPv4: {errors[0]} IPv6 {errors[-1]} ")
    return dial


class Forward:
    """One forwarded connection: the client's bytes (fed in) to 127.0.0.1:port in the pod,
    the target's bytes out through `send`."""

    def __init__(self, port: int, dial: Dial, send: Send):
        self.port = port
        self.dial = dial
        self.send = send
        self._inbound: asyncio.Queue[bytes | None] = asyncio.Queue()

    def feed(self, data: bytes) -> None:
        if data:
            self._inbound.put_nowait(data)

    def close_write(self) -> None:
        """The client sends no more: the target gets EOF once all before it is written."""
        self._inbound.put_nowait(None)

    async def run(self) -> str | None:
        """Until the target closes (or the task is cancelled); the dial error's message, if any."""
        try:
            reader, writer = await self.dial(self.port)
        except DialError as exc:
            return str(exc)
        upstream = asyncio.create_task(self._to_target(writer))
        try:
            while chunk := await reader.read(READ_CHUNK):
                await self.send(chunk)
        except (ConnectionError, OSError):
            pass
        finally:
            upstream.cancel()
            await asyncio.gather(upstream, return_exceptions=True)
            writer.close()
        return None

    async def _to_target(self, writer: asyncio.StreamWriter) -> None:
        while (chunk := await self._inbound.get()) is not None:
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def _send_ws(ws: web.WebSocketResponse, data: bytes) -> None:
    await ws.send_bytes(data)


async def serve_channels(ws: web.WebSocketResponse, ports: tuple[int, ...], dial: Dial, sandbox: str) -> None:
    """The v4.channel.k8s.io framing: one connection per requested port. Returns when every
    connection has ended or the client has gone."""
    for i, port in enumerate(ports):
        prefix = port.to_bytes(2, "little")
        await ws.send_bytes(bytes([2 * i]) + prefix)
        await ws.send_bytes(bytes([2 * i + 1]) + prefix)

    def sender(channel: int) -> Send:
        return lambda data: _send_ws(ws, bytes([channel]) + data)

    forwards = [Forward(port, dial, sender(2 * i)) for i, port in enumerate(ports)]

    async def one(i: int, f: Forward) -> None:
        failure = await f.run()
        if failure:
            await sender(2 * i + 1)(forward_error(f.port, sandbox, failure).encode())

    async def client() -> None:
        async for msg in ws:
            data = message_bytes(msg)
            if not data:
                continue
            channel = data[0]
            if channel % 2 == 0 and channel // 2 < len(forwards):
                forwards[channel // 2].feed(data[1:])

    await _until_done_or_gone([asyncio.create_task(one(i, f)) for i, f in enumerate(forwards)], client())


async def _until_done_or_gone(work: list[asyncio.Task], client: Awaitable[None]) -> None:
    """Waits for all of `work`, cancelling it when `client` (the reading side) ends first."""
    async def all_done() -> None:
        await asyncio.gather(*work, return_exceptions=True)  # a send to a closed socket ends one

    reading: asyncio.Future[None] = asyncio.ensure_future(client)
    done = asyncio.ensure_future(all_done())
    try:
        await asyncio.wait({reading, done}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (*work, reading, done):
            t.cancel()
        await asyncio.gather(*work, reading, done, return_exceptions=True)


class _Pair:
    """The two streams of one forwarded connection (SPDY)."""

    def __init__(self, request_id: str):
        self.request_id = request_id
        self.streams: dict[str, int] = {}  # streamtype -> stream id
        self.forward: Forward | None = None
        self.task: asyncio.Task | None = None


class SpdySession:
    """Port-forward over SPDY/3.1 carried by `send` (one call per slice of the byte stream)."""

    def __init__(self, dial: Dial, sandbox: str, send: Send):
        self.dial = dial
        self.sandbox = sandbox
        self._send = send
        self.reader = spdy.FrameReader()
        self.headers = spdy.HeaderCodec()
        self.pairs: dict[str, _Pair] = {}
        self.by_stream: dict[int, _Pair] = {}
        self.last_stream = 0
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()  # one writer keeps frames in order
        self._drained = asyncio.Event()  # set while no more than MAX_QUEUED frames wait

    @property
    def queued(self) -> int:
        """Frames waiting for the client."""
        return self._out.qsize()

    async def writer(self) -> None:
        while (frame := await self._out.get()) is not None:
            await self._send(frame)
            if self._out.qsize() <= MAX_QUEUED:
                self._drained.set()

    def _emit(self, frame: bytes) -> None:
        self._out.put_nowait(frame)

    def receive(self, chunk: bytes) -> bool:
        """Takes bytes from the client; False once the client said GOAWAY."""
        for frame in self.reader.feed(chunk):
            if isinstance(frame, spdy.Data):
                self._data(frame)
            elif frame.type == spdy.SYN_STREAM:
                self._syn_stream(frame)
            elif frame.type == spdy.RST_STREAM:
                pair = self.by_stream.get(spdy.stream_id_of(frame))
                if pair is not None and pair.task is not None:
                    pair.task.cancel()
            elif frame.type == spdy.PING:
                self._emit(spdy.ping(frame.payload))
            elif frame.type == spdy.GOAWAY:
                return False
        return True

    def _syn_stream(self, frame: spdy.Control) -> None:
        stream_id, block = spdy.syn_stream_id(frame)
        headers = self.headers.decode(block)  # always: the decompressor's state moves on
        self.last_stream = max(self.last_stream, stream_id)
        kind, port_text = headers.get("streamtype", ""), headers.get("port", "")
        if kind not in (DATA, ERROR) or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            self._emit(spdy.rst_stream(stream_id, spdy.RST_REFUSED_STREAM))
            return
        request_id = headers.get("requestid") or str(stream_id if kind == ERROR else stream_id - 2)
        pair = self.pairs.setdefault(request_id, _Pair(request_id))
        if kind in pair.streams:
            self._emit(spdy.rst_stream(stream_id, spdy.RST_PROTOCOL_ERROR))
            return
        pair.streams[kind] = stream_id
        self.by_stream[stream_id] = pair
        self._emit(spdy.syn_reply(stream_id, self.headers.encode({})))
        if len(pair.streams) == 2:
            data_id = pair.streams[DATA]
            pair.forward = Forward(int(port_text), self.dial,
                                   lambda chunk: self._queue(spdy.data(data_id, chunk)))
            pair.task = asyncio.create_task(self._run(pair))

    async def _queue(self, frame: bytes) -> None:
        """Queues a target's DATA frame, then waits while the client is behind: a slow client
        slows the target's reads instead of growing the queue."""
        self._emit(frame)
        while self._out.qsize() > MAX_QUEUED:
            self._drained.clear()
            await self._drained.wait()

    def _data(self, frame: spdy.Data) -> None:
        pair = self.by_stream.get(frame.stream_id)
        if pair is None or pair.forward is None or pair.streams.get(DATA) != frame.stream_id:
            return  # the error stream's half-close, or a stream already gone
        pair.forward.feed(frame.data)
        if frame.fin:
            pair.forward.close_write()

    async def _run(self, pair: _Pair) -> None:
        assert pair.forward is not None
        try:
            failure = await pair.forward.run()
            if failure:
                message = forward_error(pair.forward.port, self.sandbox, failure)
                self._emit(spdy.data(pair.streams[ERROR], message.encode()))
            self._emit(spdy.data(pair.streams[DATA], b"", fin=True))
            self._emit(spdy.data(pair.streams[ERROR], b"", fin=True))
        finally:
            self.pairs.pop(pair.request_id, None)
            for sid in pair.streams.values():
                self.by_stream.pop(sid, None)

    def go_away(self, status: int) -> None:
        """Tells the client this session takes no more streams (sent before close() ends it)."""
        self._emit(spdy.goaway(self.last_stream, status))

    async def close(self) -> None:
        for pair in list(self.pairs.values()):
            if pair.task is not None:
                pair.task.cancel()
        await asyncio.gather(*(p.task for p in self.pairs.values() if p.task), return_exceptions=True)
        self._out.put_nowait(None)


async def serve_tunnel(ws: web.WebSocketResponse, dial: Dial, sandbox: str) -> None:
    """The SPDY/3.1 tunnel: until the client closes the WebSocket or says GOAWAY."""
    session = SpdySession(dial, sandbox, lambda data: _send_ws(ws, data))
    writer = asyncio.create_task(session.writer())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY and not session.receive(msg.data):
                break
    except spdy.ProtocolError as exc:
        log.info("port-forward: %s", exc)
        session.go_away(spdy.GOAWAY_PROTOCOL_ERROR)
    finally:
        await session.close()
        await asyncio.gather(writer, return_exceptions=True)


async def serve(ws: web.WebSocketResponse, protocol: str, ports: tuple[int, ...], dial: Dial,
                sandbox: str) -> None:
    """Runs one port-forward session on an open WebSocket in the negotiated framing."""
    if protocol == TUNNEL:
        await serve_tunnel(ws, dial, sandbox)
    else:
        await serve_channels(ws, ports, dial, sandbox)
