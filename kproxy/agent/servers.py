"""The agent's HTTP listeners: /healthz and /livez on the healthz address, /metrics and
/proxyMode on the metrics address.

The listening sockets are created on the NetNS thread, so with --netns they live inside that
namespace; aiohttp serves them from the agent's event loop through SockSite.
"""
from __future__ import annotations

import logging

from aiohttp import web

from kproxy.agent.config import parse_bind_address
from kproxy.agent.health import ProxierHealth
from kproxy.agent.metrics import CONTENT_TYPE, ProxyMetrics
from kproxy.agent.protocols import Namespace
from kproxy.listener import ConnectionLimits, GatedSite, listen_socket

# The agent's listeners answer small GETs from probes and scrapers: a few connections, short
# timeouts, and descriptors kept in reserve for iptables-restore, netlink and the apiserver.
AGENT_LIMITS = ConnectionLimits(handshake_timeout=5.0, header_timeout=10.0, max_idle_per_source=16,
                                max_per_source=64, max_idle=64, max_handshakes=16, max_connections=128,
                                fd_reserve=256)

__all__ = ["AGENT_LIMITS", "HttpListeners", "healthz_app", "listen_socket", "metrics_app"]

log = logging.getLogger(__name__)


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

    def __init__(self, netns: Namespace) -> None:
        self.netns = netns
        self._sites: list[GatedSite] = []
        self.addresses: dict[str, tuple[str, int]] = {}  # name -> bound (host, port)

    async def start(self, name: str, address: str, app: web.Application) -> None:
        """Serves `app` on `address` ("" = disabled). Raises OSError if the bind fails."""
        if not address:
            return
        host, port = parse_bind_address(address)
        sock = await self.netns.arun(listen_socket, host, port, 128)
        site = GatedSite(app, sock, AGENT_LIMITS)
        self.addresses[name] = await site.start()
        self._sites.append(site)
        log.info("serving %s on %s:%d%s", name, *self.addresses[name],
                 f" in netns {self.netns.name}" if self.netns.name else "")

    async def stop(self) -> None:
        for site in self._sites:
            await site.stop()
        self._sites.clear()
