"""EndpointSlice mirroring controller: a Service without a selector whose endpoints a user
writes as a legacy Endpoints object gets EndpointSlices mirroring it (Kubernetes'
endpointslicemirroring-controller), so the agent, which reads only slices, proxies it.

Guarantees: only Endpoints whose Service exists and has no selector are mirrored, unless
labelled endpointslice.kubernetes.io/skip-mirror=true; each subset's addresses become ready
endpoints and its notReadyAddresses not-ready ones (at most 1000 per subset, as Kubernetes),
IPv4 addresses into slices of addressType IPv4 and IPv6 ones into IPv6 slices; slices are owned
by the Endpoints, labelled with the service name and
managed-by endpointslicemirroring-controller.k8s.io, and removed when the mirroring no
longer applies. No write happens when nothing changed.
"""
from __future__ import annotations

from typing import Any

from kproxy.api.resources import ENDPOINT_SLICES, ENDPOINTS, SERVICES
from kproxy.api.meta import TRIGGER_TIME_ANNOTATION
from kproxy.controllers.base import Controller, Handlers, RequeueAfter, SharedInformers
from kproxy.controllers.endpointslice import (
    MANAGED_BY_LABEL, SERVICE_NAME_LABEL, PortKey, SlicePlan, SliceTemplate, SliceWriter, managed_slices,
    plan_slices,
)
from kproxy.controllers.podutil import ip_family, meta, service_selector

MIRROR_CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
MAX_ADDRESSES_PER_SUBSET = 1000
# Labels the mirror never copies from the Endpoints (Kubernetes drops these too).
_NOT_COPIED = (TRIGGER_TIME_ANNOTATION, SKIP_MIRROR_LABEL)


ADDRESS_TYPES = ("IPv4", "IPv6")


def mirrored_endpoints(endpoints: dict, address_type: str = "IPv4") -> dict[PortKey, dict[str, dict]]:
    """{port key: {ip: endpoint}} from the Endpoints' subsets' addresses of `address_type`."""
    out: dict[PortKey, dict[str, dict]] = {}
    for subset in endpoints.get("subsets") or []:
        key = tuple((p.get("name") or "", p.get("protocol") or "TCP", int(p.get("port") or 0),
                     p.get("appProtocol") or "")
                    for p in subset.get("ports") or [])
        group = out.setdefault(key, {})
        budget = MAX_ADDRESSES_PER_SUBSET
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            for addr in subset.get(field) or []:
                ip = addr.get("ip")
                family = ip_family(ip)
                if family is None or ip in group:
                    continue
                budget -= 1  # the subset's limit counts both families, as upstream's
                if budget < 0 or family != address_type:
                    continue
                ep: dict[str, Any] = {"addresses": [ip],
                                      "conditions": {"ready": ready, "serving": ready, "terminating": False}}
                for src, dst in (("nodeName", "nodeName"), ("hostname", "hostname")):
                    if addr.get(src):
                        ep[dst] = addr[src]
                if addr.get("targetRef"):
                    ep["targetRef"] = {k: v for k, v in addr["targetRef"].items()
                                       if k in ("kind", "namespace", "name", "uid") and v}
                group[ip] = ep
        if not group:
            del out[key]
    return out


def mirror_template(endpoints: dict, address_type: str = "IPv4") -> SliceTemplate:
    m = meta(endpoints)
    labels = {k: v for k, v in (m.get("labels") or {}).items() if k not in _NOT_COPIED}
    labels[SERVICE_NAME_LABEL] = m["name"]
    labels[MANAGED_BY_LABEL] = MIRROR_CONTROLLER_NAME
    owner = {"apiVersion": "v1", "kind": "Endpoints", "name": m["name"], "controller": True,
             "blockOwnerDeletion": True}
    if m.get("uid"):
        owner["uid"] = m["uid"]
    return SliceTemplate(m["namespace"], m["name"] + "-", labels, [owner], address_type)


def should_mirror(service: dict | None, endpoints: dict | None) -> bool:
    if service is None or endpoints is None or service_selector(service) is not None:
        return False
    return (meta(endpoints).get("labels") or {}).get(SKIP_MIRROR_LABEL) != "true"


class EndpointSliceMirroringController(Controller):
    name = "endpointslicemirroring"

    def __init__(self, client: Any, informers: SharedInformers):
        super().__init__(client, informers)
        self.services = informers.get(SERVICES)
        self.endpoints = informers.get(ENDPOINTS)
        self.slices = informers.get(ENDPOINT_SLICES)
        self.writer = SliceWriter(client)
        enqueue = self._enqueue_obj
        for inf in (self.services, self.endpoints):
            inf.add_handler(Handlers(on_add=enqueue, on_update=lambda o, n: enqueue(n), on_delete=enqueue))
        self.slices.add_handler(Handlers(on_add=self._slice_changed, on_update=lambda o, n: self._slice_changed(n),
                                         on_delete=self._slice_changed))

    def watched(self):
        return [SERVICES, ENDPOINTS, ENDPOINT_SLICES]

    async def resync(self) -> None:
        for key in self.endpoints.cache:
            self.queue.add(key)

    def _enqueue_obj(self, obj: dict) -> None:
        self.queue.add(f"{meta(obj).get('namespace')}/{meta(obj).get('name')}")

    def _slice_changed(self, s: dict) -> None:
        labels = meta(s).get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) == MIRROR_CONTROLLER_NAME and labels.get(SERVICE_NAME_LABEL):
            self.queue.add(f"{meta(s).get('namespace')}/{labels[SERVICE_NAME_LABEL]}")

    async def reconcile(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        if self.writer.stale(key, self.slices.cache, namespace):
            raise RequeueAfter(0.05, "slice cache has not seen our last writes")
        existing = managed_slices(self.slices.list(namespace), namespace, name, MIRROR_CONTROLLER_NAME)
        endpoints = self.endpoints.get(name, namespace)
        if not should_mirror(self.services.get(name, namespace), endpoints):
            plan = SlicePlan(delete=existing)
        else:
            assert endpoints is not None
            plan = SlicePlan()
            for address_type in ADDRESS_TYPES:
                own = [s for s in existing if (s.get("addressType") or "IPv4") == address_type]
                desired = mirrored_endpoints(endpoints, address_type)
                part = plan_slices(mirror_template(endpoints, address_type), desired, own, placeholder=False)
                plan.create += part.create
                plan.update += part.update
                plan.delete += part.delete
            plan.delete += [s for s in existing if (s.get("addressType") or "IPv4") not in ADDRESS_TYPES]
        await self.writer.apply(key, namespace, plan)
