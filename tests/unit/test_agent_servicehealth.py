"""Health-check node port servers over real sockets (own namespace, loopback only)."""
from __future__ import annotations

import asyncio
import socket

import aiohttp

from kproxy.agent.health import ProxierHealth
from kproxy.agent.servicehealth import ServiceHealthServer, desired_ports
from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from kproxy.netns import NetNS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sp(port_name, hc, eps):
    return ServicePort("default", "lb", port_name, "TCP", 80 if port_name == "a" else 81, cluster_ips=("10.96.0.9",),
                       node_port=30080, external_policy_local=True, health_check_node_port=hc, endpoints=tuple(eps))


LOCAL = Endpoint("10.244.1.2", 8080, node_name="n1", is_local=True)
LOCAL_TERMINATING = Endpoint("10.244.1.2", 8080, ready=False, serving=True, terminating=True, node_name="n1",
                             is_local=True)
REMOTE = Endpoint("10.244.2.2", 8080, node_name="n2")


def test_desired_ports_sums_over_service_ports():
    assert desired_ports([sp("a", 31000, [LOCAL, REMOTE]), sp("b", 31000, [LOCAL])]) == {31000: ("default", "lb", 2)}
    assert desired_ports([sp("a", 0, [LOCAL])]) == {}
    assert desired_ports([sp("a", 31000, [LOCAL_TERMINATING, REMOTE])]) == {31000: ("default", "lb", 0)}


async def _scenario():
    port = free_port()
    health = ProxierHealth(timeout=60)
    health.updated()
    server = ServiceHealthServer(NetNS(None), health, host="127.0.0.1")
    url = f"http://127.0.0.1:{port}/"
    try:
        s1 = ProxyState(node_name="n1", services={p.key: p for p in [sp("a", port, [LOCAL, REMOTE])]}, revision=1)
        await server.update(s1, None)
        assert server.ports == [port]
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as r:
                assert r.status == 200
                assert r.headers["X-Load-Balancing-Endpoint-Weight"] == "1"
                assert await r.json() == {"service": {"namespace": "default", "name": "lb"}, "localEndpoints": 1,
                                          "serviceProxyHealthy": True}
            # the only local endpoint is terminating: 503 while the Service itself still serves
            s2 = ProxyState(node_name="n1", services={p.key: p for p in [sp("a", port, [LOCAL_TERMINATING, REMOTE])]},
                            revision=2)
            await server.update(s2, {"default/lb:a"})
            async with http.get(url + "healthz") as r:
                assert r.status == 503 and (await r.json())["localEndpoints"] == 0
            # the Service goes away: its listener is closed
            await server.update(ProxyState(node_name="n1", revision=3), {"default/lb:a"})
            assert server.ports == []
            try:
                async with http.get(url) as r:
                    raise AssertionError(f"listener still open: {r.status}")
            except aiohttp.ClientConnectionError:
                pass
    finally:
        await server.stop()


def test_health_check_node_port_server():
    asyncio.run(_scenario())
