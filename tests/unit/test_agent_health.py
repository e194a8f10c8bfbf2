"""Proxier health semantics (fake clock), metrics names, and the HTTP apps over real sockets."""
from __future__ import annotations

import asyncio
import json

import aiohttp

from kproxy.agent.health import ProxierHealth
from kproxy.agent.metrics import SYNC_BUCKETS, ProxyMetrics
from kproxy.agent.servers import HttpListeners, healthz_app, metrics_app
from kproxy.netns import NetNS


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_unhealthy_before_first_sync():
    h = ProxierHealth(timeout=60, clock=Clock())
    assert h.healthz().status == 503 and h.livez().status == 503
    assert h.healthz().body["lastUpdated"] == ""


def test_queued_update_waiting_too_long_is_unhealthy():
    clock = Clock()
    h = ProxierHealth(timeout=60, clock=clock)
    h.updated()
    assert h.healthz().status == 200
    h.queued_update()
    clock.t += 30
    h.queued_update()  # the oldest pending update counts, not the newest
    clock.t += 30
    assert h.healthz().status == 200
    clock.t += 1
    assert h.healthz().status == 503 and h.livez().status == 503
    h.updated()
    assert h.healthz().status == 200
    clock.t += 3600  # no pending update: idle is healthy
    assert h.healthz().status == 200


def test_node_eligibility_only_affects_healthz():
    h = ProxierHealth(timeout=60, clock=Clock(1767225600.0))
    h.updated()
    h.node_eligible = False
    report = h.healthz()
    assert report.status == 503
    assert report.body == {"lastUpdated": "2026-01-01T00:00:00.000000Z",
                           "currentTime": "2026-01-01T00:00:00.000000Z", "nodeEligible": False}
    assert h.livez().status == 200


def test_metrics_names_and_buckets():
    m = ProxyMetrics()
    assert len(SYNC_BUCKETS) == 15 and SYNC_BUCKETS[0] == 0.001 and SYNC_BUCKETS[1] == 0.002
    m.record_sync(0.003, full=True, now=5.0)
    m.record_sync(0.001, full=False, now=6.0)
    m.record_apply_failure()
    m.record_pending(services=2, endpoints=3, services_total=7, endpoints_total=9)
    m.record_pending(services=0, endpoints=0, services_total=8, endpoints_total=9)
    m.record_programmed([10.0, 100.0], now=11.0)  # a future trigger time is ignored
    m.record_queued(now=4.0)
    m.record_no_local_endpoints(internal=1, external=2)
    text = m.exposition().decode()
    expected = {
        "kubeproxy_sync_proxy_rules_duration_seconds_count": 2,
        "kubeproxy_sync_full_proxy_rules_duration_seconds_count": 1,
        "kubeproxy_sync_partial_proxy_rules_duration_seconds_count": 1,
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds": 6,
        "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds": 4,
        "kubeproxy_sync_proxy_rules_iptables_restore_failures_total": 1,
        "kubeproxy_sync_proxy_rules_service_changes_pending": 0,
        "kubeproxy_sync_proxy_rules_service_changes_total": 8,
        "kubeproxy_sync_proxy_rules_endpoint_changes_total": 9,
        "kubeproxy_network_programming_duration_seconds_count": 1,
        'kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="external"}': 2,
    }
    values = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    for name, value in expected.items():
        assert values[name] == value, name
    # each agent has its own registry
    assert "kubeproxy_sync_proxy_rules_duration_seconds_count 0.0" in ProxyMetrics().exposition().decode()


async def _serve_and_query():
    clock = Clock()
    health = ProxierHealth(timeout=60, clock=clock)
    metrics = ProxyMetrics()
    listeners = HttpListeners(NetNS(None))
    await listeners.start("healthz", "127.0.0.1:0", healthz_app(health))
    await listeners.start("metrics", "127.0.0.1:0", metrics_app(metrics, "iptables"))
    await listeners.start("disabled", "", metrics_app(metrics, "iptables"))
    try:
        hz = "http://%s:%d" % listeners.addresses["healthz"]
        mt = "http://%s:%d" % listeners.addresses["metrics"]
        assert "disabled" not in listeners.addresses
        async with aiohttp.ClientSession() as s:
            async with s.get(hz + "/healthz") as r:
                assert r.status == 503
            health.updated()
            async with s.get(hz + "/healthz") as r:
                assert r.status == 200
                assert set(json.loads(await r.text())) == {"lastUpdated", "currentTime", "nodeEligible"}
            async with s.get(hz + "/livez") as r:
                assert r.status == 200
            async with s.get(mt + "/proxyMode") as r:
                assert await r.text() == "iptables"
            async with s.get(mt + "/metrics") as r:
                assert r.status == 200
                assert "kubeproxy_sync_proxy_rules_duration_seconds_bucket" in await r.text()
    finally:
        await listeners.stop()


def test_http_listeners_over_real_sockets():
    asyncio.run(_serve_and_query())
