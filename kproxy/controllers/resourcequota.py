"""ResourceQuota controller: keeps status.hard (= spec.hard) and status.used current.

Counts, per namespace, the resources kproxy's quota knows: count/services and services,
services.nodeports, services.loadbalancers, pods (non-terminal ones, as Kubernetes' pod
evaluator) and count/pods (every pod object). status.used lists exactly the known resources
named in spec.hard. Enforcement is the apiserver's; this only reports.
"""
from __future__ import annotations

from typing import Any, Iterable

from kproxy.api.resources import PODS, RESOURCE_QUOTAS, SERVICES
from kproxy.controllers.base import Controller, Handlers, SharedInformers
from kproxy.controllers.podutil import is_terminal, meta


def service_node_ports(svc: dict) -> int:
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or []
    if spec.get("type") == "NodePort":
        return len(ports)
    if spec.get("type") == "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is False:
            return sum(1 for p in ports if p.get("nodePort"))
        return len(ports)
    return 0


def quota_usage(hard: dict[str, Any], services: Iterable[dict], pods: Iterable[dict]) -> dict[str, str]:
    """status.used for a quota with `hard`, from the namespace's services and pods."""
    services, pods = list(services), list(pods)
    counts = {
        "services": len(services),
        "count/services": len(services),
        "services.nodeports": sum(service_node_ports(s) for s in services),
        "services.loadbalancers": sum(1 for s in services if (s.get("spec") or {}).get("type") == "LoadBalancer"),
        "pods": sum(1 for p in pods if not is_terminal(p)),
        "count/pods": len(pods),
    }
    return {name: str(counts[name]) for name in hard if name in counts}


def desired_status(quota: dict, services: Iterable[dict], pods: Iterable[dict]) -> dict:
    hard = dict((quota.get("spec") or {}).get("hard") or {})
    return {"hard": hard, "used": quota_usage(hard, services, pods)}


class ResourceQuotaController(Controller):
    name = "resourcequota"

    def __init__(self, client: Any, informers: SharedInformers):
        super().__init__(client, informers)
        self.quotas = informers.get(RESOURCE_QUOTAS)
        self.services = informers.get(SERVICES)
        self.pods = informers.get(PODS)
        self.quotas.add_handler(Handlers(on_add=self._enqueue, on_update=self._quota_updated))
        for inf in (self.services, self.pods):
            inf.add_handler(Handlers(on_add=self._namespace_changed, on_delete=self._namespace_changed,
                                     on_update=self._counted_update))

    def watched(self):
        return [RESOURCE_QUOTAS, SERVICES, PODS]

    async def resync(self) -> None:
        for key in self.quotas.cache:
            self.queue.add(key)

    def _enqueue(self, quota: dict) -> None:
        self.queue.add(f"{meta(quota)['namespace']}/{meta(quota)['name']}")

    def _quota_updated(self, old: dict, new: dict) -> None:
        if old.get("spec") != new.get("spec") or old.get("status") != new.get("status"):
            self._enqueue(new)

    def _namespace_changed(self, obj: dict) -> None:
        for quota in self.quotas.list(meta(obj).get("namespace")):
            self._enqueue(quota)

    def _counted_update(self, old: dict, new: dict) -> None:
        # Only what the counts depend on: pod phase, service type and ports.
        o, n = old.get("status") or {}, new.get("status") or {}
        if o.get("phase") != n.get("phase") or old.get("spec") != new.get("spec"):
            self._namespace_changed(new)

    async def reconcile(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        quota = self.quotas.get(name, namespace)
        if quota is None:
            return
        want = desired_status(quota, self.services.list(namespace), self.pods.list(namespace))
        current = quota.get("status") or {}
        if current.get("hard") == want["hard"] and current.get("used") == want["used"]:
            return
        await self.client.update_status(RESOURCE_QUOTAS, {**quota, "status": want})
