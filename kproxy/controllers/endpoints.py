"""Endpoints controller: the legacy v1 Endpoints object of every Service with a selector.

Pure core: `desired_subsets(service, pods)` gives Kubernetes' packed subsets: pods grouped by
their resolved port set, ready ones (or all, with publishNotReadyAddresses) in `addresses`,
the others in `notReadyAddresses`; terminating pods are left out unless
publishNotReadyAddresses is set; pods without an IPv4 or in a terminal phase are left out.
Subsets, addresses and ports are sorted, so equal inputs give equal objects and an unchanged
Service causes no write. A deleted Service's Endpoints is deleted.
"""
from __future__ import annotations

from typing import Any, Iterable

from kproxy.api.resources import ENDPOINTS, PODS, SERVICES
from kproxy.api.status import ApiError
from kproxy.controllers.base import Controller, Handlers, SharedInformers
from kproxy.controllers.podutil import (
    ServicePodsQueueing,
    endpoint_hostname, endpoints_family, is_pod_ready, is_terminal, is_terminating, meta, pod_ip_of_family,
    pod_target_ref,
    resolve_target_port, selector_matches, service_labels, service_selector,
)

MAX_ADDRESSES = 1000
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"


def desired_subsets(service: dict, pods: Iterable[dict]) -> tuple[list[dict], bool]:
    """(subsets, truncated): truncated when more than 1000 addresses had to be dropped
    (ready ones are kept first), as Kubernetes' endpoints controller does."""
    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    selector = service_selector(service) or {}
    ns = meta(service).get("namespace")
    groups: dict[tuple, tuple[list[dict], list[dict]]] = {}
    for pod in pods:
        if meta(pod).get("namespace") != ns or not selector_matches(selector, meta(pod).get("labels")):
            continue
        ip = pod_ip_of_family(pod, endpoints_family(service, pod))
        if ip is None or is_terminal(pod) or (is_terminating(pod) and not publish):
            continue
        address: dict[str, Any] = {"ip": ip, "targetRef": pod_target_ref(pod)}
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            address["nodeName"] = node
        hostname = endpoint_hostname(service, pod)
        if hostname:
            address["hostname"] = hostname
        ports = []
        for sp in spec.get("ports") or []:
            port = resolve_target_port(pod, sp)
            if port is None:
                continue
            p: dict[str, Any] = {"port": port, "protocol": sp.get("protocol") or "TCP"}
            if sp.get("name"):
                p["name"] = sp["name"]
            if sp.get("appProtocol"):
                p["appProtocol"] = sp["appProtocol"]
            ports.append(p)
        if spec.get("ports") and not ports:
            continue  # none of the Service's ports exists on this pod
        key = tuple(sorted((p.get("name", ""), p["protocol"], p["port"], p.get("appProtocol", "")) for p in ports))
        ready_list, not_ready_list = groups.setdefault(key, ([], []))
        (ready_list if publish or is_pod_ready(pod) else not_ready_list).append(address)

    budget = MAX_ADDRESSES
    total = sum(len(r) + len(n) for r, n in groups.values())
    subsets = []
    for key in sorted(groups):
        ready_list, not_ready_list = groups[key]
        ready_list.sort(key=lambda a: a["ip"])
        not_ready_list.sort(key=lambda a: a["ip"])
        ready_list[:] = ready_list[:budget]
        budget -= len(ready_list)
        subsets.append([key, ready_list, not_ready_list])
    for entry in subsets:  # not-ready addresses get what room the ready ones left
        entry[2][:] = entry[2][:budget]
        budget -= len(entry[2])
    out = []
    for key, ready_list, not_ready_list in subsets:
        if not ready_list and not not_ready_list:
            continue
        subset: dict[str, Any] = {}
        if ready_list:
            subset["addresses"] = ready_list
        if not_ready_list:
            subset["notReadyAddresses"] = not_ready_list
        if key:
            ports = []
            for name, protocol, port, app in key:
                p = {"port": port, "protocol": protocol}
                if name:
                    p["name"] = name
                if app:
                    p["appProtocol"] = app
                ports.append(p)
            subset["ports"] = ports
        out.append(subset)
    return out, total > MAX_ADDRESSES


def desired_endpoints_object(service: dict, pods: Iterable[dict], base: dict | None) -> dict:
    subsets, truncated = desired_subsets(service, pods)
    m = meta(service)
    if base is not None:
        obj = {k: v for k, v in base.items() if k != "subsets"}
        obj["metadata"] = dict(meta(base))
    else:
        obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": m["name"], "namespace": m["namespace"]}}
    obj["metadata"]["labels"] = service_labels(service)
    annotations = dict(obj["metadata"].get("annotations") or {})
    if truncated:
        annotations[OVER_CAPACITY_ANNOTATION] = "truncated"
    else:
        annotations.pop(OVER_CAPACITY_ANNOTATION, None)
    if annotations:
        obj["metadata"]["annotations"] = annotations
    else:
        obj["metadata"].pop("annotations", None)
    obj["subsets"] = subsets
    return obj


def _canonical(obj: dict) -> tuple:
    def addr(a: dict) -> dict:
        out = {k: a[k] for k in ("ip", "nodeName", "hostname") if a.get(k)}
        ref = a.get("targetRef") or {}
        out["targetRef"] = {k: v for k, v in ref.items() if k in ("kind", "namespace", "name", "uid") and v}
        return out

    subsets = []
    for s in obj.get("subsets") or []:
        subsets.append((
            sorted((addr(a) for a in s.get("addresses") or []), key=lambda a: a["ip"]),
            sorted((addr(a) for a in s.get("notReadyAddresses") or []), key=lambda a: a["ip"]),
            sorted((p.get("name") or "", p.get("protocol") or "TCP", p.get("port"), p.get("appProtocol") or "")
                   for p in s.get("ports") or []),
        ))
    m = meta(obj)
    return (m.get("labels") or {}, m.get("annotations") or {}, subsets)


class EndpointsController(ServicePodsQueueing, Controller):
    name = "endpoints"
    workers = 2

    def __init__(self, client: Any, informers: SharedInformers):
        super().__init__(client, informers)
        self.services = informers.get(SERVICES)
        self.pods = informers.get(PODS)
        self.endpoints = informers.get(ENDPOINTS)
        enqueue = self._enqueue_obj
        self.services.add_handler(Handlers(on_add=enqueue, on_update=lambda o, n: enqueue(n), on_delete=enqueue))
        self.pods.add_handler(Handlers(on_add=self._pod_changed, on_update=self._pod_updated,
                                       on_delete=self._pod_changed))
        # Someone else changing or deleting an Endpoints we manage: put it back. Endpoints of
        # Services without a selector (or without a Service yet) are the user's: not watched.
        self.endpoints.add_handler(Handlers(on_update=lambda o, n: self._enqueue_if_managed(n), on_delete=enqueue))

    def watched(self):
        return [SERVICES, PODS, ENDPOINTS]

    async def resync(self) -> None:
        for key in self.services.cache:
            self.queue.add(key)

    def _enqueue_if_managed(self, endpoints: dict) -> None:
        service = self.services.get(meta(endpoints).get("name"), meta(endpoints).get("namespace"))
        if service is not None and service_selector(service) is not None:
            self._enqueue_obj(endpoints)

    async def reconcile(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        service = self.services.get(name, namespace)
        current = self.endpoints.get(name, namespace)
        if service is None:
            if current is not None:
                try:
                    await self.client.delete(ENDPOINTS, name, namespace)
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            return
        if service_selector(service) is None or (service.get("spec") or {}).get("type") == "ExternalName":
            return  # user-managed Endpoints
        want = desired_endpoints_object(service, self.pods.list(namespace), current)
        if current is None:
            await self.client.create(ENDPOINTS, want, namespace)
        elif _canonical(want) != _canonical(current):
            await self.client.update(ENDPOINTS, want)
