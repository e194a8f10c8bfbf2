"""EndpointSlice controller: the slices of every Service with a selector follow its pods.

Pure core (no I/O): `desired_endpoints(service, pods, zones, address_type)` groups one endpoint
per eligible pod by its resolved port set, one slice set per address type of the Service
(`plan_service_slices`: IPv4 and IPv6 slices for a dual-stack Service);
`plan_slices(template, desired, existing)` turns that into the creates/updates/deletes that
make the managed slices match, keeping endpoints in the slice they already live in (so one pod
change rewrites one slice), at most 100 endpoints per slice, and producing no write when
nothing changed. With no endpoints at all, one empty placeholder slice per address type
remains, as Kubernetes does.

Ready endpoints carry the topology hints of the Service's trafficDistribution
(kproxy.controllers.trafficdist). Services without a selector are left alone (their slices
are user managed); ExternalName Services get none. Slices are labelled
kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by and owned by the Service.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from kproxy.api.resources import ENDPOINT_SLICES, NODES, PODS, SERVICES
from kproxy.api.status import ApiError
from kproxy.controllers.base import Controller, Handlers, RequeueAfter, SharedInformers
from kproxy.controllers.podutil import (
    ServicePodsQueueing,
    ZONE_LABEL, endpoint_hostname, is_pod_ready, is_terminal, is_terminating, meta, pod_ip_of_family,
    pod_target_ref, resolve_target_port, service_address_types, service_labels, service_selector, selector_matches,
)
from kproxy.controllers.trafficdist import endpoint_hints
from kproxy.controllers.triggertime import TriggerTimes, annotate

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100

PortKey = tuple[tuple[str, str, int, str], ...]  # ((name, protocol, port, appProtocol), ...)


# -- pure core ----------------------------------------------------------------------------

def pod_endpoint(service: dict, pod: dict, zones: dict[str, str], address_type: str = "IPv4") -> dict | None:
    """The endpoint for `pod` in a slice of `address_type`, or None when it cannot be one (no
    address of that family, terminal phase)."""
    ip = pod_ip_of_family(pod, address_type)
    if ip is None or is_terminal(pod):
        return None
    serving = is_pod_ready(pod)
    terminating = is_terminating(pod)
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    ep: dict[str, Any] = {
        "addresses": [ip],
        "conditions": {"ready": publish or (serving and not terminating), "serving": serving,
                       "terminating": terminating},
        "targetRef": pod_target_ref(pod),
    }
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        ep["nodeName"] = node
        if zones.get(node):
            ep["zone"] = zones[node]
    hostname = endpoint_hostname(service, pod)
    if hostname:
        ep["hostname"] = hostname
    hints = endpoint_hints(service, ep)
    if hints:
        ep["hints"] = hints
    return ep


def pod_port_key(service: dict, pod: dict) -> PortKey:
    """The service's ports as resolved on this pod; ports the pod lacks are left out."""
    key = []
    for sp in (service.get("spec") or {}).get("ports") or []:
        port = resolve_target_port(pod, sp)
        if port is None:
            continue
        key.append((sp.get("name") or "", sp.get("protocol") or "TCP", port, sp.get("appProtocol") or ""))
    return tuple(key)


def port_dicts(key: PortKey) -> list[dict]:
    out = []
    for name, protocol, port, app in key:
        d: dict[str, Any] = {"name": name, "protocol": protocol, "port": port}
        if app:
            d["appProtocol"] = app
        out.append(d)
    return out


def slice_port_key(slice_: dict) -> PortKey:
    return tuple((p.get("name") or "", p.get("protocol") or "TCP", int(p.get("port") or 0), p.get("appProtocol") or "")
                 for p in slice_.get("ports") or [])


def endpoint_key(ep: dict) -> str:
    return (ep.get("addresses") or [""])[0]


def desired_endpoints(service: dict, pods: Iterable[dict], zones: dict[str, str],
                      address_type: str = "IPv4") -> dict[PortKey, dict[str, dict]]:
    """Endpoints of `address_type` per resolved port set: {port key: {address: endpoint}} for
    the pods the Service selects (pods of other namespaces or not matching are ignored)."""
    selector = service_selector(service) or {}
    ns = meta(service).get("namespace")
    out: dict[PortKey, dict[str, dict]] = {}
    for pod in pods:
        if meta(pod).get("namespace") != ns or not selector_matches(selector, meta(pod).get("labels")):
            continue
        ep = pod_endpoint(service, pod, zones, address_type)
        if ep is None:
            continue
        out.setdefault(pod_port_key(service, pod), {})[endpoint_key(ep)] = ep
    return out


def slice_labels(service: dict) -> dict[str, str]:
    labels = service_labels(service)
    labels[SERVICE_NAME_LABEL] = meta(service)["name"]
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    return labels


def owner_reference(service: dict) -> dict:
    ref = {"apiVersion": "v1", "kind": "Service", "name": meta(service)["name"], "controller": True,
           "blockOwnerDeletion": True}
    if meta(service).get("uid"):
        ref["uid"] = meta(service)["uid"]
    return ref


_ENDPOINT_FIELDS = ("addresses", "conditions", "nodeName", "zone", "hostname", "targetRef", "hints")


def _canonical_endpoint(ep: dict) -> dict:
    out = {k: ep[k] for k in _ENDPOINT_FIELDS if ep.get(k) not in (None, "")}
    cond = ep.get("conditions") or {}
    out["conditions"] = {k: bool(cond.get(k)) for k in ("ready", "serving", "terminating")}
    if "targetRef" in out:
        out["targetRef"] = {k: v for k, v in out["targetRef"].items()
                            if k in ("kind", "namespace", "name", "uid") and v}
    return out


def _canonical_slice(s: dict) -> tuple:
    m = meta(s)
    eps = sorted((_canonical_endpoint(e) for e in s.get("endpoints") or []), key=endpoint_key)
    owners = [{k: v for k, v in o.items() if k in ("apiVersion", "kind", "name", "uid", "controller")}
              for o in m.get("ownerReferences") or []]
    return (s.get("addressType"), m.get("labels") or {}, owners, eps, port_dicts(slice_port_key(s)))


@dataclass
class SlicePlan:
    create: list[dict] = field(default_factory=list)
    update: list[dict] = field(default_factory=list)
    delete: list[dict] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


@dataclass(frozen=True)
class SliceTemplate:
    """What every slice of one owner carries besides its endpoints and ports."""

    namespace: str
    generate_name: str
    labels: dict[str, str]
    owner_references: list[dict]
    address_type: str = "IPv4"


def service_template(service: dict, address_type: str = "IPv4") -> SliceTemplate:
    return SliceTemplate(meta(service)["namespace"], meta(service)["name"] + "-", slice_labels(service),
                         [owner_reference(service)], address_type)


def _slice_object(template: SliceTemplate, key: PortKey, endpoints: list[dict], base: dict | None) -> dict:
    if base is not None:
        obj = {k: v for k, v in base.items() if k not in ("endpoints", "ports")}
        obj["metadata"] = dict(meta(base))
    else:
        obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"generateName": template.generate_name, "namespace": template.namespace}}
    obj["metadata"]["labels"] = dict(template.labels)
    obj["metadata"]["ownerReferences"] = list(template.owner_references)
    obj["addressType"] = template.address_type
    obj["endpoints"] = sorted(endpoints, key=endpoint_key)
    obj["ports"] = port_dicts(key)
    return obj


def plan_slices(template: SliceTemplate, desired: dict[PortKey, dict[str, dict]], existing: list[dict],
                max_per_slice: int = MAX_ENDPOINTS_PER_SLICE, *, placeholder: bool = True) -> SlicePlan:
    """The writes that make `existing` (one owner's managed slices) match `desired`. With
    `placeholder`, no endpoints at all still leaves one empty slice."""
    plan = SlicePlan()
    existing = sorted(existing, key=lambda s: meta(s).get("name") or "")
    if not desired and placeholder:
        # Placeholder: exactly one slice with no endpoints and no ports.
        desired = {(): {}}
    by_key: dict[PortKey, list[dict]] = {}
    for s in existing:
        by_key.setdefault(slice_port_key(s), []).append(s)
    for key in list(by_key):
        if key not in desired:
            plan.delete.extend(by_key.pop(key))

    for key, eps in desired.items():
        slices = by_key.get(key, [])
        remaining = dict(eps)
        contents: list[list[dict]] = []
        for s in slices:  # endpoints stay in the slice that already holds them
            kept = []
            for old in s.get("endpoints") or []:
                ek = endpoint_key(old)
                if ek in remaining and len(kept) < max_per_slice:
                    kept.append(remaining.pop(ek))
            contents.append(kept)
        leftovers = [remaining[k] for k in sorted(remaining)]
        for kept in contents:  # fill free room before making new slices
            room = max_per_slice - len(kept)
            if room > 0 and leftovers:
                kept.extend(leftovers[:room])
                leftovers = leftovers[room:]
        placeholder_needed = not eps
        for s, kept in zip(slices, contents):
            if not kept and not placeholder_needed:
                plan.delete.append(s)
                continue
            placeholder_needed = False
            want = _slice_object(template, key, kept, s)
            if _canonical_slice(want) != _canonical_slice(s):
                plan.update.append(want)
        for i in range(0, len(leftovers), max_per_slice):
            plan.create.append(_slice_object(template, key, leftovers[i:i + max_per_slice], None))
        if placeholder_needed:
            plan.create.append(_slice_object(template, key, [], None))
    # Reuse slices about to be deleted for slices about to be created (as Kubernetes does):
    # fewer writes, stable names, and never a moment without a slice.
    while plan.delete and plan.create:
        victim, fresh = plan.delete.pop(), plan.create.pop()
        reused = {k: v for k, v in victim.items() if k not in ("endpoints", "ports")}
        reused["metadata"] = {**meta(victim), "labels": meta(fresh)["labels"],
                              "ownerReferences": meta(fresh)["ownerReferences"]}
        reused.update(addressType=fresh["addressType"], endpoints=fresh["endpoints"], ports=fresh["ports"])
        plan.update.append(reused)
    return plan


def plan_service_slices(service: dict, pods: list[dict], zones: dict[str, str], existing: list[dict]) -> SlicePlan:
    """One slice set per address type the Service has (service_address_types: IPv4 and IPv6
    for a dual-stack Service), each from the pods' addresses of that family and each with its
    own placeholder; slices of a type the Service no longer has are deleted."""
    plan = SlicePlan()
    types = service_address_types(service)
    for address_type in types:
        desired = desired_endpoints(service, pods, zones, address_type)
        own = [s for s in existing if (s.get("addressType") or "IPv4") == address_type]
        part = plan_slices(service_template(service, address_type), desired, own)
        plan.create += part.create
        plan.update += part.update
        plan.delete += part.delete
    plan.delete += [s for s in existing if (s.get("addressType") or "IPv4") not in types]
    return plan


def managed_slices(slices: Iterable[dict], namespace: str, service_name: str,
                   managed_by: str = CONTROLLER_NAME) -> list[dict]:
    return [s for s in slices
            if meta(s).get("namespace") == namespace
            and (meta(s).get("labels") or {}).get(SERVICE_NAME_LABEL) == service_name
            and (meta(s).get("labels") or {}).get(MANAGED_BY_LABEL) == managed_by]


# -- the controller -----------------------------------------------------------------------

class SliceWriter:
    """Applies SlicePlans and remembers its own writes until the slice cache shows them, so a
    reconcile never acts on a cache that has not seen them yet (which would create duplicate
    slices): stale() is True while any recent write of that key is not visible."""

    TTL = 30.0

    def __init__(self, client: Any) -> None:
        self.client = client
        # service key -> list of (deadline, slice name, expectation, old resourceVersion)
        self._pending: dict[str, list[tuple[float, str, str, str | None]]] = {}

    def expect(self, svc_key: str, name: str, expectation: str, old_rv: str | None = None) -> None:
        self._pending.setdefault(svc_key, []).append((time.monotonic() + self.TTL, name, expectation, old_rv))

    def stale(self, svc_key: str, cache: dict[str, dict], namespace: str) -> bool:
        now = time.monotonic()
        still = []
        for entry in self._pending.get(svc_key, []):
            deadline, name, expectation, old_rv = entry
            cached = cache.get(f"{namespace}/{name}")
            if now > deadline:
                continue
            if expectation == "present" and cached is None:
                still.append(entry)
            elif expectation == "gone" and cached is not None:
                still.append(entry)
            elif expectation == "changed" and cached is not None and meta(cached).get("resourceVersion") == old_rv:
                still.append(entry)
        if still:
            self._pending[svc_key] = still
        else:
            self._pending.pop(svc_key, None)
        return bool(still)

    async def apply(self, key: str, namespace: str, plan: SlicePlan) -> None:
        # Creates and updates before deletes: endpoints that move are never absent.
        for s in plan.create:
            created = await self.client.create(ENDPOINT_SLICES, s, namespace)
            self.expect(key, meta(created)["name"], "present")
        for s in plan.update:
            await self.client.update(ENDPOINT_SLICES, s)
            self.expect(key, meta(s)["name"], "changed", meta(s).get("resourceVersion"))
        for s in plan.delete:
            try:
                await self.client.delete(ENDPOINT_SLICES, meta(s)["name"], namespace)
            except ApiError as exc:
                if exc.code != 404:
                    raise
            self.expect(key, meta(s)["name"], "gone")
        if not plan.empty:
            log.debug("endpointslices of %s: %d created, %d updated, %d deleted", key, len(plan.create),
                      len(plan.update), len(plan.delete))


class EndpointSliceController(ServicePodsQueueing, Controller):
    name = "endpointslice"
    workers = 2

    def __init__(self, client: Any, informers: SharedInformers):
        super().__init__(client, informers)
        self.services = informers.get(SERVICES)
        self.pods = informers.get(PODS)
        self.slices = informers.get(ENDPOINT_SLICES)
        self.nodes = informers.get(NODES)
        self.writer = SliceWriter(client)
        self.triggers = TriggerTimes()
        self.services.add_handler(Handlers(on_add=self._enqueue_obj, on_update=lambda o, n: self._enqueue_obj(n),
                                           on_delete=self._enqueue_obj))
        self.pods.add_handler(Handlers(on_add=self._pod_changed, on_update=self._pod_updated,
                                       on_delete=self._pod_changed))
        self.slices.add_handler(Handlers(on_add=self._slice_changed, on_update=lambda o, n: self._slice_changed(n),
                                         on_delete=self._slice_changed))
        self.nodes.add_handler(Handlers(on_update=self._node_updated))

    def watched(self):
        return [SERVICES, PODS, ENDPOINT_SLICES, NODES]

    async def resync(self) -> None:
        for key in self.services.cache:
            self.queue.add(key)

    # handlers: enqueue only. A Service change, or a change of a pod it selects, also starts a
    # trigger time; our own slice writes do not.
    def _enqueue_obj(self, svc: dict) -> None:
        key = f"{meta(svc).get('namespace')}/{meta(svc).get('name')}"
        self.triggers.changed(key)
        self.queue.add(key)

    def _slice_changed(self, s: dict) -> None:
        labels = meta(s).get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) == CONTROLLER_NAME and labels.get(SERVICE_NAME_LABEL):
            self.queue.add(f"{meta(s).get('namespace')}/{labels[SERVICE_NAME_LABEL]}")

    def _node_updated(self, old: dict, new: dict) -> None:
        if (meta(old).get("labels") or {}).get(ZONE_LABEL) == (meta(new).get("labels") or {}).get(ZONE_LABEL):
            return
        node = meta(new).get("name")
        for pod in self.pods.cache.values():
            if (pod.get("spec") or {}).get("nodeName") == node:
                self._pod_changed(pod)

    def zones(self) -> dict[str, str]:
        out = {}
        for node in self.nodes.cache.values():
            zone = (meta(node).get("labels") or {}).get(ZONE_LABEL)
            if zone:
                out[meta(node)["name"]] = zone
        return out

    async def reconcile(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        if self.writer.stale(key, self.slices.cache, namespace):
            raise RequeueAfter(0.05, "slice cache has not seen our last writes")
        existing = managed_slices(self.slices.list(namespace), namespace, name)
        service = self.services.get(name, namespace)
        if service is None or (service.get("spec") or {}).get("type") == "ExternalName":
            self.triggers.forget(key)
            plan = SlicePlan(delete=existing)
        elif service_selector(service) is None:
            self.triggers.forget(key)
            return  # user-managed slices
        else:
            plan = plan_service_slices(service, self.pods.list(namespace), self.zones(), existing)
        trigger = self.triggers.take(key)
        annotate(plan.create + plan.update, trigger)
        try:
            await self.writer.apply(key, namespace, plan)
        except BaseException:
            self.triggers.give_back(key, trigger)
            raise

