"""The SPDY/3.1 upgrade of `kubectl port-forward` (its fallback when the WebSocket tunnel is
refused, and all that kubectl < 1.30 speaks), bridged to the kubelet's WebSocket tunnel
(kproxy.kubelet.portforward, `SPDY/3.1+portforward.k8s.io`): the client's raw SPDY bytes go to
the kubelet in binary messages and its messages come back as bytes. The SPDY itself is
terminated only by the kubelet.

aiohttp upgrades only to WebSocket, so after the 101 this takes the connection's bytes from
the server's protocol with a parser of its own (what aiohttp's WebSocketResponse does); what
goes back is the 101 response's body, which aiohttp writes as is (no chunking after a 1xx)
and drains when the client is slow.

Guarantees: the client gets the 101 only once the kubelet's tunnel is open (a kubelet that
cannot be reached is an ordinary error response); either side closing closes the other.
"""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from kproxy.api import status as st

UPGRADE = "SPDY/3.1"
PROTOCOL_HEADER = "X-Stream-Protocol-Version"
PORT_FORWARD = "portforward.k8s.io"
MAX_QUEUED = 16  # chunks from the client waiting for the kubelet before reading pauses


def is_spdy_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == UPGRADE.lower()


def check_protocol(request: web.Request) -> None:
    """Raises 400 unless the client offers the port-forward stream protocol (as kubelet's
    httpstream.Handshake)."""
    offered = [p.strip() for v in request.headers.getall(PROTOCOL_HEADER, []) for p in v.split(",")]
    if PORT_FORWARD not in offered:
        raise st.bad_request(f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                             f"server supports [{PORT_FORWARD}]")


class _RawBytes:
    """What the aiohttp protocol feeds after the upgrade: raw bytes, then EOF (b""). Reading
    from the client pauses while MAX_QUEUED chunks wait for the kubelet."""

    def __init__(self, transport: asyncio.BaseTransport | None) -> None:
        self.transport = transport
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self.paused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.chunks.put_nowait(bytes(data))
        if self.chunks.qsize() >= MAX_QUEUED and isinstance(self.transport, asyncio.ReadTransport):
            self.transport.pause_reading()
            self.paused = True
        return False, b""

    def feed_eof(self) -> None:
        self.chunks.put_nowait(b"")

    async def next(self) -> bytes:
        chunk = await self.chunks.get()
        if self.paused and self.chunks.qsize() < MAX_QUEUED // 2 and isinstance(self.transport, asyncio.ReadTransport):
            self.transport.resume_reading()
            self.paused = False
        return chunk


async def bridge(request: web.Request, kubelet: aiohttp.ClientWebSocketResponse) -> web.StreamResponse:
    """Answers the upgrade (101) and carries bytes between the client and the kubelet's tunnel
    until either ends."""
    raw = _RawBytes(request.transport)
    request.protocol.set_parser(raw)  # type: ignore[arg-type]  (any object with feed_data/feed_eof)
    response = web.StreamResponse(status=101, headers={"Connection": "Upgrade", "Upgrade": UPGRADE,
                                                       PROTOCOL_HEADER: PORT_FORWARD})
    await response.prepare(request)
    transport = request.transport
    response.force_close()

    async def upstream() -> None:
        while chunk := await raw.next():
            await kubelet.send_bytes(chunk)

    async def downstream() -> None:
        async for msg in kubelet:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await response.write(msg.data)  # raw after a 101 (no chunking), and drains

    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if transport is not None:
            transport.close()
    return response
