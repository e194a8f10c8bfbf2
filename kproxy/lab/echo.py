"""The lab's pod server: `python -m kproxy.lab.echo --name POD --port 8080`.

It listens on TCP and UDP on the same port (all addresses of its namespace, IPv4 and, where the
namespace has IPv6, IPv6) and answers with who it is and who it sees:
- TCP: reads one line (or up to EOF), answers "<pod-name> <client-ip>:<client-port>\\n", closes;
- UDP: answers every datagram with the same text, to the datagram's source;
- HTTP (a TCP request line "GET PATH HTTP/1.x"), as agnhost netexec: /hostname answers the pod
  name, /clientip "<client-ip>:<client-port>", /healthz "ok", anything else the TCP text.
Many connections are served concurrently. SIGTERM and SIGINT stop it with exit code 0.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys

READ_TIMEOUT = 10.0
MAX_LINE = 4096


def reply_text(pod: str, peer: tuple) -> str:
    """The answer to a client at `peer` (host, port, ...)."""
    return f"{pod} {peer[0]}:{peer[1]}\n"


def http_reply(pod: str, peer: tuple, request_line: str) -> bytes | None:
    """The HTTP response to `request_line`, or None when it is not an HTTP GET."""
    parts = request_line.split()
    if len(parts) != 3 or parts[0] != "GET" or not parts[2].startswith("HTTP/"):
        return None
    path = parts[1].split("?", 1)[0]
    body = {"/hostname": pod, "/clientip": f"{peer[0]}:{peer[1]}", "/healthz": "ok"}.get(path)
    text = reply_text(pod, peer) if body is None else body
    return (f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(text.encode())}\r\n"
            f"Connection: close\r\n\r\n{text}").encode()


class _UdpEcho(asyncio.DatagramProtocol):
    def __init__(self, pod: str) -> None:
        self.pod = pod
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        assert self.transport is not None
        self.transport.sendto(reply_text(self.pod, addr).encode(), addr)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error for one client must not stop the server


async def _skip_headers(reader: asyncio.StreamReader) -> None:
    """Reads the request's header lines, so closing does not reset an unread request."""
    try:
        for _ in range(100):
            if (await asyncio.wait_for(reader.readline(), READ_TIMEOUT)).strip() == b"":
                return
    except (asyncio.TimeoutError, asyncio.LimitOverrunError, ValueError):
        return


async def serve(pod: str, host: str, port: int, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Serves until `stop` is set (or forever)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            line = b""
            try:
                line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
            except (asyncio.TimeoutError, asyncio.LimitOverrunError, ValueError):
                pass
            response = http_reply(pod, peer, line.decode("latin-1"))
            if response is not None:
                await _skip_headers(reader)
            writer.write(response or reply_text(pod, peer).encode())
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    loop = asyncio.get_running_loop()
    hosts = _listen_hosts(host)
    tcp = await asyncio.start_server(handle, hosts, port, reuse_address=True, backlog=1024, limit=MAX_LINE)
    transports = []
    try:
        for h in hosts:
            udp_sock = socket.socket(socket.AF_INET6 if ":" in h else socket.AF_INET, socket.SOCK_DGRAM)
            udp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if ":" in h:  # IPv4 clients have their own socket: no IPv4-mapped peers
                udp_sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            udp_sock.bind((h, port))
            transport, _ = await loop.create_datagram_endpoint(lambda: _UdpEcho(pod), sock=udp_sock)
            transports.append(transport)
        if ready is not None:
            ready.set()
        if stop is None:
            await asyncio.Future()
        else:
            await stop.wait()
    finally:
        for transport in transports:
            transport.close()
        tcp.close()
        await tcp.wait_closed()


def _listen_hosts(host: str) -> list[str]:
    """`host`, or for "" every address of both families (IPv6 only where it exists)."""
    if host:
        return [host]
    try:
        with open("/proc/sys/net/ipv6/conf/lo/disable_ipv6") as f:  # of this network namespace
            ipv6 = socket.has_ipv6 and f.read().strip() == "0"
    except OSError:
        ipv6 = False
    return ["0.0.0.0", "::"] if ipv6 else ["0.0.0.0"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kproxy.lab.echo", description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=os.environ.get("HOSTNAME"),
                        help="pod name to answer with (default: $HOSTNAME, as a container sees it)")
    env_port = os.environ.get("PORT", "")
    parser.add_argument("--port", type=int, default=int(env_port) if env_port.isdigit() else 8080,
                        help="default: $PORT, else 8080")
    parser.add_argument("--host", default="", help="address to listen on (default: all, IPv4 and IPv6)")
    args = parser.parse_args(argv)
    if not args.name:
        parser.error("--name is required when $HOSTNAME is not set")
    if not 1 <= args.port <= 65535:
        print(f"echo: --port must be 1-65535, not {args.port}", file=sys.stderr)
        return 2

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        ready = asyncio.Event()
        await serve(args.name, args.host, args.port, ready=ready, stop=stop)

    try:
        asyncio.run(run())
    except OSError as exc:
        print(f"echo: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
