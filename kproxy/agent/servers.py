"""The agent's HTTP listeners: /healthz and /livez on the healthz address, /metrics and
/proxyMode on the metrics address.

The listening sockets are created on the NetNS thread, so with --netns they live inside that
namespace; aiohttp serves them from the agent's event loop through SockSite.
"""
from __future__ import annotations

import logging
import socket
from typing import Any

from aiohttp import web

from kproxy.agent.config import parse_bind_address
from kproxy.agent.health import ProxierHealth
from kproxy.agent.metrics import CONTENT_TYPE, ProxyMetrics

log = logging.getLogger(__name__)


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound, listening, non-blocking TCP socket (call it on the NetNS thread)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def healthz_app(health: ProxierHealth) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        report = health.healthz()
        return web.json_response(report.body, status=report.status)

    async def livez(_: web.Request) -> web.Response:
        report = health.livez()
        return web.json_response(report.body, status=report.status)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", livez)
    return app


def metrics_app(metrics: ProxyMetrics, mode: str) -> web.Application:
    async def serve_metrics(_: web.Request) -> web.Response:
        resp = web.Response(body=metrics.exposition())
        resp.headers["Content-Type"] = CONTENT_TYPE
        return resp

    async def proxy_mode(_: web.Request) -> web.Response:
        return web.Response(text=mode)

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/proxyMode", proxy_mode)
    return app


class HttpListeners:
    """Starts the configured listeners inside `netns`; `stop()` closes them."""

    def __init__(self, netns: Any) -> None:
        self.netns = netns
        self._runners: list[web.AppRunner] = []
        self.addresses: dict[str, tuple[str, int]] = {}  # name -> bound (host, port)

    async def start(self, name: str, address: str, app: web.Application) -> None:
        """Serves `app` on `address` ("" = disabled). Raises OSError if the bind fails."""
        if not address:
            return
        host, port = parse_bind_address(address)
        sock = await self.netns.arun(listen_socket, host, port)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.SockSite(runner, sock)
        await site.start()
        self._runners.append(runner)
        self.addresses[name] = sock.getsockname()[:2]
        log.info("serving %s on %s:%d%s", name, *self.addresses[name],
                 f" in netns {self.netns.name}" if self.netns.name else "")

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
