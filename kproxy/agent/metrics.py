"""The agent's Prometheus metrics, named as kube-proxy's (prefix kubeproxy_).

Each ProxyMetrics owns its own CollectorRegistry, so several agents (or tests) in one process
never share or collide on metrics. The proxier only calls the record_* methods.
"""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# kube-proxy: exponential buckets from 1 ms, factor 2, 15 buckets
SYNC_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))
# network programming latency: kube-proxy's buckets are 0.25 s .. 5 min in coarse steps; the
# finer ones below 0.25 s (a superset, so upstream's dashboards still work) make sub-100 ms
# programming visible
PROGRAMMING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1,
                       0.25, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 20, 30, 45, 60, 120, 180,
                       240, 300)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        p = "kubeproxy_"
        self.sync_duration = Histogram(p + "sync_proxy_rules_duration_seconds",
                                       "SyncProxyRules latency in seconds", buckets=SYNC_BUCKETS, registry=r)
        self.sync_full_duration = Histogram(p + "sync_full_proxy_rules_duration_seconds",
                                            "SyncProxyRules latency in seconds for full resyncs",
                                            buckets=SYNC_BUCKETS, registry=r)
        self.sync_partial_duration = Histogram(p + "sync_partial_proxy_rules_duration_seconds",
                                               "SyncProxyRules latency in seconds for partial resyncs",
                                               buckets=SYNC_BUCKETS, registry=r)
        self.network_programming = Histogram(p + "network_programming_duration_seconds",
                                             "In Cluster Network Programming Latency in seconds",
                                             buckets=PROGRAMMING_BUCKETS, registry=r)
        self.last_sync = Gauge(p + "sync_proxy_rules_last_timestamp_seconds",
                               "The last time proxy rules were successfully synced", registry=r)
        self.last_queued = Gauge(p + "sync_proxy_rules_last_queued_timestamp_seconds",
                                 "The last time a sync of proxy rules was queued", registry=r)
        self.endpoint_changes_pending = Gauge(p + "sync_proxy_rules_endpoint_changes_pending",
                                              "Pending proxy rules Endpoint changes", registry=r)
        self.endpoint_changes_total = Counter(p + "sync_proxy_rules_endpoint_changes",
                                              "Cumulative proxy rules Endpoint changes", registry=r)
        self.service_changes_pending = Gauge(p + "sync_proxy_rules_service_changes_pending",
                                             "Pending proxy rules Service changes", registry=r)
        self.service_changes_total = Counter(p + "sync_proxy_rules_service_changes",
                                             "Cumulative proxy rules Service changes", registry=r)
        self.restore_failures = Counter(p + "sync_proxy_rules_iptables_restore_failures",
                                        "Cumulative proxy rules restore failures", registry=r)
        self.no_local_endpoints = Gauge(p + "sync_proxy_rules_no_local_endpoints_total",
                                        "Number of services with a Local traffic policy and no endpoints",
                                        ["traffic_policy"], registry=r)
        self.skipped_service_ports = Gauge(p + "sync_proxy_rules_skipped_service_ports",
                                           "ServicePorts not programmed because their render failed or the "
                                           "kernel refused their rules", ["stage"], registry=r)
        self.skipped_objects = Counter(p + "sync_proxy_rules_skipped_objects",
                                       "Services and EndpointSlices (or values of them) left out of the rules, "
                                       "once per new problem", ["reason"], registry=r)
        self._endpoint_total_seen = 0
        self._service_total_seen = 0

    def record_queued(self, now: float | None = None) -> None:
        self.last_queued.set(time.time() if now is None else now)

    def record_pending(self, services: int, endpoints: int, services_total: int, endpoints_total: int) -> None:
        """Pending counts now, and the trackers' running totals (added to the counters as deltas)."""
        self.service_changes_pending.set(services)
        self.endpoint_changes_pending.set(endpoints)
        if services_total > self._service_total_seen:
            self.service_changes_total.inc(services_total - self._service_total_seen)
            self._service_total_seen = services_total
        if endpoints_total > self._endpoint_total_seen:
            self.endpoint_changes_total.inc(endpoints_total - self._endpoint_total_seen)
            self._endpoint_total_seen = endpoints_total

    def record_sync(self, duration: float, full: bool, now: float | None = None) -> None:
        self.sync_duration.observe(duration)
        (self.sync_full_duration if full else self.sync_partial_duration).observe(duration)
        self.last_sync.set(time.time() if now is None else now)

    def record_programmed(self, trigger_times: tuple[float, ...] | list[float], now: float | None = None) -> None:
        now = time.time() if now is None else now
        for t in trigger_times:
            if now >= t:
                self.network_programming.observe(now - t)

    def record_no_local_endpoints(self, internal: int, external: int) -> None:
        self.no_local_endpoints.labels("internal").set(internal)
        self.no_local_endpoints.labels("external").set(external)

    def record_skipped(self, per_stage: dict[str, int]) -> None:
        """The number of ServicePorts skipped now, per stage (render, kernel)."""
        for stage, count in per_stage.items():
            self.skipped_service_ports.labels(stage).set(count)

    def record_skipped_object(self, reason: str) -> None:
        """One newly reported problem with an object (reason as in its Event)."""
        self.skipped_objects.labels(reason).inc()

    def record_apply_failure(self) -> None:
        self.restore_failures.inc()

    def exposition(self) -> bytes:
        """The text exposition format of every metric in this registry."""
        return generate_latest(self.registry)
