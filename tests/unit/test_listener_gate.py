"""The connection gate (kproxy/listener.py) over real loopback sockets, with a tiny echo
protocol: silent connections are evicted oldest first per source, a connection that speaks is
served, and at the connection budget the gate waits (without spinning) instead of accepting."""
from __future__ import annotations

import asyncio

from kproxy.listener import ConnectionLimits, GatedListener, listen_socket


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def connect(addr, send: bytes | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(*addr)
    if send is not None:
        writer.write(send)
        await writer.drain()
    return reader, writer


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 5) == b""
    except ConnectionError:
        return True


def test_oldest_silent_connections_of_a_source_are_evicted():
    async def main():
        gate = GatedListener(Echo, None, ConnectionLimits(max_idle_per_source=3, handshake_timeout=30))
        addr = gate.start(listen_socket("127.0.0.1", 0))
        try:
            silent = [await connect(addr) for _ in range(5)]
            await asyncio.sleep(0.2)
            assert [await closed_by_server(r) for r, _ in silent[:2]] == [True, True]
            assert gate.refused == 2
            reader, writer = await connect(addr, b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
            for _, w in [*silent, (reader, writer)]:
                w.close()
        finally:
            await gate.close()
    asyncio.run(main())


def test_silent_connection_times_out():
    async def main():
        gate = GatedListener(Echo, None, ConnectionLimits(handshake_timeout=0.2))
        addr = gate.start(listen_socket("127.0.0.1", 0))
        try:
            reader, writer = await connect(addr)
            assert await closed_by_server(reader)
            writer.close()
        finally:
            await gate.close()
    asyncio.run(main())


def test_at_the_budget_new_connections_wait_without_spinning():
    async def main():
        gate = GatedListener(Echo, None, ConnectionLimits(max_connections=2, fd_reserve=0))
        gate.budget = 2  # whatever the descriptor limit allows
        wakeups = 0
        accept = gate._accept

        def counting_accept():
            nonlocal wakeups
            wakeups += 1
            accept()
        gate._accept = counting_accept  # the reader registered from now on counts
        addr = gate.start(listen_socket("127.0.0.1", 0))
        try:
            served = [await connect(addr, b"a"), await connect(addr, b"b")]
            for reader, _ in served:
                assert len(await asyncio.wait_for(reader.readexactly(1), 5)) == 1
            third_reader, third_writer = await connect(addr, b"c")  # waits in the backlog
            before = wakeups
            await asyncio.sleep(0.5)
            assert wakeups - before <= 10, wakeups - before  # paused, not woken on every loop pass
            served[0][1].close()
            assert await asyncio.wait_for(third_reader.readexactly(1), 5) == b"c"
            for _, w in [*served[1:], (third_reader, third_writer)]:
                w.close()
        finally:
            await gate.close()
    asyncio.run(main())


def test_connections_per_source_are_capped_in_every_state():
    async def main():
        gate = GatedListener(Echo, None, ConnectionLimits(max_per_source=3))
        addr = gate.start(listen_socket("127.0.0.1", 0))
        try:
            served = []
            for i in range(3):
                reader, writer = await connect(addr, b"%d" % i)
                assert await asyncio.wait_for(reader.readexactly(1), 5) == b"%d" % i
                served.append((reader, writer))
            extra_reader, extra_writer = await connect(addr, b"x")
            assert await closed_by_server(extra_reader)  # a fourth from the same address
            extra_writer.close()
            served[0][1].close()
            await asyncio.sleep(0.2)
            reader, writer = await connect(addr, b"y")  # room again once one has gone
            assert await asyncio.wait_for(reader.readexactly(1), 5) == b"y"
            for _, w in [*served[1:], (reader, writer)]:
                w.close()
        finally:
            await gate.close()
    asyncio.run(main())
