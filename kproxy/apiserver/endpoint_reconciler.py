"""The `default/kubernetes` Service's endpoints: the apiserver's own address.

As kube-apiserver's endpoint reconciler, the apiserver keeps its advertised address and secure
port in the Endpoints and the EndpointSlice named `kubernetes` in `default`, so pods and agents
reach it through the Service's ClusterIP (10.96.0.1:443), which the agents load-balance. The
Endpoints carry endpointslice.kubernetes.io/skip-mirror (the apiserver writes the slice itself,
so the mirroring controller must not); the endpointslice controller leaves them alone because
the Service has no selector. kproxy runs one apiserver, so the "lease" is this process: it
repairs drift every interval and removes its address on a graceful stop.

A loopback or unspecified bind address is never published (kube-apiserver's validation refuses
loopback endpoints, and an agent cannot DNAT to another host's loopback); give
--advertise-address then.
"""
from __future__ import annotations

import ipaddress
import logging
from typing import Any

from kproxy.api import resources as R
from kproxy.api import status as st

log = logging.getLogger(__name__)

NAMESPACE = "default"
NAME = "kubernetes"
PORT_NAME = "https"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def advertised_address(advertise: str | None, bind_host: str) -> str | None:
    """The address to publish: --advertise-address, else the bind address when it is a specific
    non-loopback one; None when there is nothing publishable."""
    if advertise:
        return str(ipaddress.ip_address(advertise))
    try:
        ip = ipaddress.ip_address(bind_host)
    except ValueError:
        return None
    return None if ip.is_loopback or ip.is_unspecified else str(ip)


def desired_endpoints(ip: str | None, port: int) -> dict[str, Any]:
    """The Endpoints object (no subsets when nothing is published)."""
    subsets = [] if ip is None else [{"addresses": [{"ip": ip}],
                                      "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]}]
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {SKIP_MIRROR_LABEL: "true"}},
            "subsets": subsets}


def desired_slice(ip: str | None, port: int) -> dict[str, Any]:
    family = "IPv6" if ip is not None and ipaddress.ip_address(ip).version == 6 else "IPv4"
    endpoints = [] if ip is None else [{"addresses": [ip], "conditions": {"ready": True}}]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {SERVICE_NAME_LABEL: NAME}},
            "addressType": family, "endpoints": endpoints,
            "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]}


def _differs(current: dict[str, Any], desired: dict[str, Any], fields: tuple[str, ...]) -> bool:
    labels = (current.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in desired["metadata"]["labels"].items()):
        return True
    return any((current.get(f) or []) != (desired.get(f) or []) for f in fields)


class EndpointReconciler:
    """Writes the desired Endpoints and EndpointSlice through the registry (blocking)."""

    def __init__(self, registry: Any, ip: str | None, port: int):
        self.registry = registry
        self.ip = ip
        self.port = port

    def reconcile(self) -> None:
        self._ensure(R.ENDPOINTS, desired_endpoints(self.ip, self.port), ("subsets",))
        self._ensure(R.ENDPOINT_SLICES, desired_slice(self.ip, self.port), ("endpoints", "ports", "addressType"))

    def remove_own_address(self) -> None:
        """On a graceful stop: clients must not be sent to a server that is going away."""
        self._ensure(R.ENDPOINTS, desired_endpoints(None, self.port), ("subsets",))
        self._ensure(R.ENDPOINT_SLICES, desired_slice(None, self.port), ("endpoints",))

    def _ensure(self, resource: R.Resource, desired: dict[str, Any], fields: tuple[str, ...]) -> None:
        try:
            current = self.registry.get(resource, NAMESPACE, NAME)
        except st.ApiError as exc:
            if exc.code != 404:
                raise
            self.registry.create(resource, NAMESPACE, desired)
            return
        if not _differs(current, desired, fields):
            return
        body = {**current, **{f: desired[f] for f in fields}}
        labels = {**((current.get("metadata") or {}).get("labels") or {}), **desired["metadata"]["labels"]}
        body["metadata"] = {**current["metadata"], "labels": labels}
        self.registry.update(resource, NAMESPACE, NAME, body)
