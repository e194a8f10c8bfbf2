"""Health-check node ports: for each Service with externalTrafficPolicy Local and a
healthCheckNodePort, an HTTP server on that port tells load balancers whether this node has
local endpoints (kube-proxy's healthcheck.ServiceHealthServer).

GET on any path answers {"service": {"namespace", "name"}, "localEndpoints": N,
"serviceProxyHealthy": bool} with header X-Load-Balancing-Endpoint-Weight: N, status 200 only
when N > 0 and the proxier is healthy, else 503. N counts this node's ready endpoints of the
Service (a terminating endpoint does not count, so a draining node fails the check).

Listeners are opened on the NetNS thread (they live in --netns); `update()` opens and closes
them to match the state and is O(changed ServicePorts) on partial syncs.
"""
from __future__ import annotations

import logging
from typing import Iterable

from aiohttp import web

from kproxy.agent.health import ProxierHealth
from kproxy.agent.policy import local_ready_count
from kproxy.agent.protocols import Namespace
from kproxy.agent.servers import AGENT_LIMITS, listen_socket
from kproxy.agent.state import ProxyState, ServicePort
from kproxy.listener import GatedSite

log = logging.getLogger(__name__)


def desired_ports(services: Iterable[ServicePort]) -> dict[int, tuple[str, str, int]]:
    """health port -> (namespace, name, local ready endpoints summed over the Service's ports)."""
    out: dict[int, tuple[str, str, int]] = {}
    for sp in services:
        if not sp.health_check_node_port:
            continue
        ns, name, count = out.get(sp.health_check_node_port, (sp.namespace, sp.name, 0))
        out[sp.health_check_node_port] = (ns, name, count + local_ready_count(sp))
    return out


class ServiceHealthServer:
    def __init__(self, netns: Namespace, health: ProxierHealth, host: str = "0.0.0.0") -> None:
        self.netns = netns
        self.health = health
        self.host = host
        self._info: dict[int, tuple[str, str, int]] = {}
        self._runners: dict[int, GatedSite] = {}
        self._by_key: dict[str, int] = {}  # ServicePort key -> health port

    def _app(self, port: int) -> web.Application:
        async def handle(_: web.Request) -> web.Response:
            ns, name, count = self._info.get(port, ("", "", 0))
            healthy = self.health.livez().healthy
            body = {"service": {"namespace": ns, "name": name}, "localEndpoints": count,
                    "serviceProxyHealthy": healthy}
            status = 200 if count > 0 and healthy else 503
            return web.json_response(body, status=status,
                                     headers={"X-Load-Balancing-Endpoint-Weight": str(count)})

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handle)
        return app

    async def update(self, state: ProxyState, keys: Iterable[str] | None) -> None:
        """Makes the listeners match `state`; `keys` are the changed ServicePort keys (None: all)."""
        if keys is None:
            self._by_key = {k: sp.health_check_node_port for k, sp in state.services.items()
                            if sp.health_check_node_port}
        else:
            for k in keys:
                sp = state.services.get(k)
                if sp is not None and sp.health_check_node_port:
                    self._by_key[k] = sp.health_check_node_port
                else:
                    self._by_key.pop(k, None)
        self._info = desired_ports(state.services[k] for k in self._by_key)
        for port in list(self._runners):
            if port not in self._info:
                await self._runners.pop(port).stop()
        for port in self._info:
            if port not in self._runners:
                try:
                    sock = await self.netns.arun(listen_socket, self.host, port)
                except OSError as exc:
                    log.error("health check node port %d: %s", port, exc.strerror or exc)
                    continue
                site = GatedSite(self._app(port), sock, AGENT_LIMITS)
                await site.start()
                self._runners[port] = site

    @property
    def ports(self) -> list[int]:
        return sorted(self._runners)

    async def stop(self) -> None:
        for site in self._runners.values():
            await site.stop()
        self._runners.clear()
