"""The apiserver's Prometheus metrics at /metrics, named and labelled as kube-apiserver's.

Each ApiserverMetrics owns its own CollectorRegistry (several servers in one test process never
share metrics). Request metrics are recorded by one aiohttp middleware; object counts are read
from the store when scraped, so they are never stale.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from kproxy.apiserver import paths

# kube-apiserver's apiserver_request_duration_seconds buckets
DURATION_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20,
                    30, 45, 60)
COMPONENT = "apiserver"
_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
CONTENT_TYPE = CONTENT_TYPE_LATEST
REQUEST_LABELS = ("verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component")


def request_labels(method: str, path: str, query: Any, content_type: str) -> dict[str, str] | None:
    """kube-apiserver's labels for a resource request (None for other paths): verb is the HTTP
    method, with LIST, WATCH and APPLY for those requests; scope is resource, namespace or cluster."""
    try:
        api_path = paths.parse(path)
    except paths.PathNotFound:
        return None
    if api_path.resource is None:
        return None
    watching = api_path.legacy_watch or query.get("watch") in ("1", "true", "True")
    verb = method
    if method == "GET":
        verb = "WATCH" if watching else ("GET" if api_path.name else "LIST")
    elif method == "PATCH" and content_type.startswith("application/apply-patch"):
        verb = "APPLY"
    if api_path.name:
        scope = "resource"
    elif api_path.namespace:
        scope = "namespace"
    else:
        scope = "cluster"
    return {"verb": verb, "dry_run": "All" if query.get("dryRun") else "", "group": api_path.group,
            "version": api_path.version, "resource": api_path.resource.plural,
            "subresource": api_path.subresource or "", "scope": scope, "component": COMPONENT}


class _StorageObjects:
    """apiserver_storage_objects, counted from the store at scrape time."""

    def __init__(self, count: Callable[[], Iterable[tuple[str, int]]]):
        self.count = count

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("apiserver_storage_objects",
                                   "Number of stored objects at the time of last check split by kind.",
                                   labels=["resource"])
        for resource, n in self.count():
            family.add_metric([resource], n)
        yield family


class ApiserverMetrics:
    def __init__(self, storage_counts: Callable[[], Iterable[tuple[str, int]]],
                 clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("apiserver_request", "Counter of apiserver requests broken out for each verb, "
                                "dry run value, group, version, resource, scope, component, and HTTP response code.",
                                [*REQUEST_LABELS, "code"], registry=r)
        self.duration = Histogram("apiserver_request_duration_seconds", "Response latency distribution in seconds "
                                  "for each verb, dry run value, group, version, resource, subresource, scope and "
                                  "component.", REQUEST_LABELS, buckets=DURATION_BUCKETS, registry=r)
        self.inflight = Gauge("apiserver_current_inflight_requests", "Maximal number of currently used inflight "
                              "request limit of this apiserver per request kind in last second.", ["request_kind"],
                              registry=r)
        self.longrunning = Gauge("apiserver_longrunning_requests", "Gauge of all active long-running apiserver "
                                 "requests broken out by verb, group, version, resource, scope and component.",
                                 ["verb", "group", "version", "resource", "subresource", "scope", "component"],
                                 registry=r)
        self.watch_requests = Counter("apiserver_watch_requests", "Number of watch requests started, by group, "
                                      "version and resource.", ["group", "version", "resource"], registry=r)
        for kind in ("readOnly", "mutating"):
            self.inflight.labels(kind)
        # labels() validates and locks on every call; the label sets repeat, so their children
        # are kept here (bounded: every value comes from a parsed path or a fixed set)
        self._children: dict[tuple[Any, ...], Any] = {}
        r.register(_StorageObjects(storage_counts))

    def exposition(self) -> bytes:
        """The text format (blocking: it counts the stored objects)."""
        return generate_latest(self.registry)

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        labels = request_labels(request.method, request.path, request.query, request.headers.get("Content-Type", ""))
        watching = labels is not None and labels["verb"] == "WATCH"
        inflight = self._child(self.inflight, "mutating" if request.method in _MUTATING else "readOnly")
        longrunning = None
        if watching:
            # a watch is long-running: counted while open, not in the in-flight or latency metrics
            longrunning = self.longrunning.labels(*(labels[k] for k in ("verb", "group", "version", "resource",
                                                                         "subresource", "scope", "component")))
            longrunning.inc()
            self.watch_requests.labels(labels["group"], labels["version"], labels["resource"]).inc()
        else:
            inflight.inc()
        start, code = self.clock(), 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        finally:
            if longrunning is not None:
                longrunning.dec()
            else:
                inflight.dec()
            if labels is not None:
                self._child(self.requests, *labels.values(), str(code)).inc()
                if not watching:
                    self._child(self.duration, *labels.values()).observe(self.clock() - start)
