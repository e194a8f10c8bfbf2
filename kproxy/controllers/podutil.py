"""Pure helpers about Pods and Services shared by the endpoint controllers (no I/O)."""
from __future__ import annotations

import ipaddress
from typing import Any

TERMINAL_PHASES = ("Succeeded", "Failed")
ZONE_LABEL = "topology.kubernetes.io/zone"
HEADLESS_LABEL = "service.kubernetes.io/headless"


def meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def is_pod_ready(pod: dict) -> bool:
    """The pod's Ready condition is "True"."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def is_terminating(obj: dict) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def is_terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def ip_family(ip: Any) -> str | None:
    """"IPv4" or "IPv6" for an address, None for anything else."""
    try:
        return "IPv4" if ipaddress.ip_address(ip).version == 4 else "IPv6"
    except (TypeError, ValueError):
        return None


def pod_ip_of_family(pod: dict, family: str) -> str | None:
    """The pod's first address of `family` ("IPv4" or "IPv6") from status.podIPs (or
    status.podIP), None if it has none."""
    status = pod.get("status") or {}
    candidates = [p.get("ip") for p in status.get("podIPs") or [] if isinstance(p, dict)]
    candidates.append(status.get("podIP"))
    for ip in candidates:
        if ip and ip_family(ip) == family:
            return str(ip)
    return None


def service_address_types(service: dict) -> list[str]:
    """The EndpointSlice address types a Service gets, as upstream's
    getAddressTypesForService: its ipFamilies; without them the family of its clusterIP;
    a headless Service without families gets both."""
    spec = service.get("spec") or {}
    families = [f for f in spec.get("ipFamilies") or [] if f in ("IPv4", "IPv6")]
    if families:
        return list(dict.fromkeys(families))
    cluster_ip = spec.get("clusterIP")
    if cluster_ip and cluster_ip != "None":
        return [ip_family(cluster_ip) or "IPv4"]
    return ["IPv4", "IPv6"]


def endpoints_family(service: dict, pod: dict) -> str:
    """The family of a pod's address in the Service's Endpoints (v1), as upstream's endpoints
    controller: the Service's primary family; without families the clusterIP's, or for a
    headless Service the pod's primary address's."""
    spec = service.get("spec") or {}
    families = spec.get("ipFamilies") or []
    if families and families[0] in ("IPv4", "IPv6"):
        return families[0]
    cluster_ip = spec.get("clusterIP")
    if cluster_ip and cluster_ip != "None":
        return ip_family(cluster_ip) or "IPv4"
    return ip_family((pod.get("status") or {}).get("podIP")) or "IPv4"


def service_selector(service: dict) -> dict[str, str] | None:
    """The Service's selector map, or None when it has none (user-managed endpoints)."""
    selector = (service.get("spec") or {}).get("selector")
    return dict(selector) if selector else None


def selector_matches(selector: dict[str, str], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def service_selects_pod(service: dict, pod: dict) -> bool:
    selector = service_selector(service)
    return (selector is not None and meta(pod).get("namespace") == meta(service).get("namespace")
            and selector_matches(selector, meta(pod).get("labels")))


def is_headless(service: dict) -> bool:
    return (service.get("spec") or {}).get("clusterIP") == "None"


def resolve_target_port(pod: dict, service_port: dict) -> int | None:
    """The container port `service_port` reaches on `pod`: an int targetPort as is (default:
    the service port), a named one through the pod's container port of that name and protocol;
    None when the pod has no such named port."""
    target: Any = service_port.get("targetPort")
    if target in (None, "", 0):
        target = service_port.get("port")
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for cport in container.get("ports") or []:
            if cport.get("name") == target and (cport.get("protocol") or "TCP") == protocol:
                port = cport.get("containerPort")
                return int(port) if isinstance(port, int) else None
    return None


def endpoint_hostname(service: dict, pod: dict) -> str | None:
    """pod.spec.hostname when the pod's subdomain names this Service (Kubernetes' rule)."""
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == meta(service).get("name") \
            and meta(service).get("namespace") == meta(pod).get("namespace"):
        return spec["hostname"]
    return None


def pod_target_ref(pod: dict) -> dict:
    m = meta(pod)
    ref = {"kind": "Pod", "namespace": m.get("namespace"), "name": m.get("name")}
    if m.get("uid"):
        ref["uid"] = m["uid"]
    return ref


def service_labels(service: dict) -> dict[str, str]:
    """Labels endpoint objects inherit from their Service (plus the headless marker)."""
    labels = dict(meta(service).get("labels") or {})
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    return labels


class ServicePodsQueueing:
    """Handler half shared by the controllers keyed by Service ("ns/name") that follow the pods
    a Service selects: needs `self.queue` and `self.services` (the Services informer)."""

    queue: Any
    services: Any

    def _enqueue_obj(self, obj: dict) -> None:
        self.queue.add(f"{meta(obj).get('namespace')}/{meta(obj).get('name')}")

    def _pod_changed(self, pod: dict) -> None:
        """Enqueues every Service in the pod's namespace whose selector matches its labels."""
        ns, labels = meta(pod).get("namespace"), meta(pod).get("labels")
        for svc in self.services.list(ns):
            selector = service_selector(svc)
            if selector is not None and selector_matches(selector, labels):
                self._enqueue_obj(svc)

    def _pod_updated(self, old: dict, new: dict) -> None:
        """A relabelled pod matters to the Services it left as well as those it joined."""
        self._pod_changed(new)
        if meta(old).get("labels") != meta(new).get("labels"):
            self._pod_changed(old)
