"""The echo pod server over real loopback sockets: TCP and UDP on one port, the answer names the
pod and the client's address, many concurrent connections, and a clean stop."""
from __future__ import annotations

import asyncio
import socket

from kproxy.lab import echo
from kproxy.lab.traffic import Reply, tcp_request, udp_request


def _free_port() -> int:
    # A port free for both TCP and UDP on loopback.
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


async def _with_server(port: int, body):
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(echo.serve("pod-a", "127.0.0.1", port, ready=ready, stop=stop))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        return await body()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def test_tcp_and_udp_answers_name_pod_and_client():
    port = _free_port()

    async def body():
        loop = asyncio.get_running_loop()
        tcp = await loop.run_in_executor(None, tcp_request, None, "127.0.0.1", port)
        udp = await loop.run_in_executor(None, lambda: udp_request(None, "127.0.0.1", port))
        return tcp, udp

    tcp, udp = asyncio.run(_with_server(port, body))
    for text in (tcp, udp):
        reply = Reply.parse(text)
        assert reply.pod == "pod-a"
        assert reply.client_ip == "127.0.0.1"
        assert reply.client_port > 0


def test_udp_answers_to_the_fixed_source_port():
    port, source = _free_port(), _free_port()

    async def body():
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: udp_request(None, "127.0.0.1", port, source_port=source))

    assert Reply.parse(asyncio.run(_with_server(port, body))).client_port == source


def test_many_concurrent_connections():
    port = _free_port()

    async def one(i: int) -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"req {i}\n".encode())
        await writer.drain()
        line = await reader.readline()
        writer.close()
        return line.decode()

    async def body():
        return await asyncio.gather(*(one(i) for i in range(200)))

    answers = asyncio.run(_with_server(port, body))
    assert len(answers) == 200
    assert all(Reply.parse(a).pod == "pod-a" for a in answers)


def test_reply_text_format():
    assert echo.reply_text("web-1", ("10.0.0.1", 1234)) == "web-1 10.0.0.1:1234\n"
