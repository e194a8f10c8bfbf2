"""Service address bookkeeping on top of the allocators: which ClusterIP, NodePorts and
healthCheckNodePort a Service holds, and what a create/update/delete must allocate or release.

A `Reservation` is taken before the store write: `commit()` after the write succeeded releases
what the old object held and the new one does not; `rollback()` after a failed write returns
what was newly taken. Both are idempotent.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from kproxy.api import status as st
from kproxy.apiserver.allocators import AllocationError, ClusterIPAllocator, NodePortAllocator
from kproxy.apiserver.service_families import ServiceIPAllocators, init_ip_family_fields

NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


def _needs_cluster_ip(svc: dict) -> bool:
    return (svc.get("spec") or {}).get("type", "ClusterIP") != "ExternalName"


def _needs_node_ports(svc: dict) -> bool:
    return (svc.get("spec") or {}).get("type") in NODE_PORT_TYPES


def _needs_health_check_port(svc: dict) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def held_cluster_ips(svc: dict) -> list[str]:
    spec = svc.get("spec") or {}
    ips = list(spec.get("clusterIPs") or [])
    if not ips and spec.get("clusterIP"):
        ips = [spec["clusterIP"]]
    return [ip for ip in ips if isinstance(ip, str) and ip and ip != "None"]


def held_node_ports(svc: dict) -> set[int]:
    spec = svc.get("spec") or {}
    ports = {p.get("nodePort") for p in spec.get("ports") or [] if isinstance(p, dict)}
    hc = spec.get("healthCheckNodePort")
    if hc:
        ports.add(hc)
    return {p for p in ports if isinstance(p, int) and p > 0}


@dataclass
class Reservation:
    ips: ServiceIPAllocators
    ports: NodePortAllocator
    new_ips: list[str] = field(default_factory=list)
    new_ports: list[int] = field(default_factory=list)
    release_ips: list[str] = field(default_factory=list)
    release_ports: list[int] = field(default_factory=list)

    def commit(self) -> None:
        for ip in self.release_ips:
            self.ips.release(ip)
        for port in self.release_ports:
            self.ports.release(port)
        self.release_ips, self.release_ports, self.new_ips, self.new_ports = [], [], [], []

    def rollback(self) -> None:
        for ip in self.new_ips:
            self.ips.release(ip)
        for port in self.new_ports:
            self.ports.release(port)
        self.release_ips, self.release_ports, self.new_ips, self.new_ports = [], [], [], []


class ServiceAllocations:
    def __init__(self, ips: ClusterIPAllocator | ServiceIPAllocators, ports: NodePortAllocator):
        self.ips = ips if isinstance(ips, ServiceIPAllocators) else ServiceIPAllocators([ips])
        self.ports = ports

    def init_families(self, svc: dict, old: dict | None) -> None:
        """Fills ipFamilyPolicy and ipFamilies for this cluster's families, or raises 422
        (kproxy.apiserver.service_families); before validation, as upstream."""
        init_ip_family_fields(svc, old, self.ips.families)

    def rebuild(self, services: list[dict]) -> list:
        """Resets the allocators to what `services` hold; returns the held values outside
        the configured ranges (a range changed between runs)."""
        outside: list = self.ips.rebuild(ip for svc in services for ip in held_cluster_ips(svc))
        outside += self.ports.rebuild(p for svc in services for p in held_node_ports(svc))
        return outside

    def for_create(self, svc: dict) -> tuple[dict, Reservation]:
        """Returns the Service with its addresses filled in, and the reservation taken."""
        return self._assign(copy.deepcopy(svc), None)

    def for_update(self, old: dict, new: dict) -> tuple[dict, Reservation]:
        new = copy.deepcopy(new)
        self._carry_over(old, new)
        self.init_families(new, old)
        return self._assign(new, old)

    def for_delete(self, svc: dict) -> Reservation:
        res = Reservation(self.ips, self.ports)
        res.release_ips = held_cluster_ips(svc)
        res.release_ports = sorted(held_node_ports(svc))
        return res

    # Kubernetes' patchAllocatedValues / dropTypeDependentFields: an update that leaves an
    # allocated field empty keeps the old value; a type change drops what no longer applies.
    @staticmethod
    def _carry_over(old: dict, new: dict) -> None:
        spec = new.setdefault("spec", {})
        old_spec = old.get("spec") or {}
        if _needs_cluster_ip(new) and _needs_cluster_ip(old):
            if not spec.get("clusterIP") and not spec.get("clusterIPs"):
                if old_spec.get("clusterIP"):
                    spec["clusterIP"] = old_spec["clusterIP"]
                if old_spec.get("clusterIPs"):
                    spec["clusterIPs"] = list(old_spec["clusterIPs"])
        elif not _needs_cluster_ip(new):
            if spec.get("clusterIP") == old_spec.get("clusterIP"):
                spec.pop("clusterIP", None)
            if spec.get("clusterIPs") == old_spec.get("clusterIPs"):
                spec.pop("clusterIPs", None)
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in old_spec.get("ports") or [] if isinstance(p, dict)}
        for port in spec.get("ports") or []:
            if not isinstance(port, dict):
                continue
            was = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
            if _needs_node_ports(new) and _needs_node_ports(old) and not port.get("nodePort") and was:
                port["nodePort"] = was
            elif not _needs_node_ports(new) and port.get("nodePort") and port.get("nodePort") == was:
                port.pop("nodePort", None)
        if not _needs_node_ports(new) and _needs_node_ports(old):
            if spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy"):
                spec.pop("externalTrafficPolicy", None)
        if spec.get("type") != "LoadBalancer" and old_spec.get("type") == "LoadBalancer":
            for key in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
                if spec.get(key) == old_spec.get(key):
                    spec.pop(key, None)
        if _needs_health_check_port(new) and _needs_health_check_port(old):
            if not spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort"):
                spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]
        elif not _needs_health_check_port(new) and spec.get("healthCheckNodePort") == old_spec.get("healthCheckNodePort"):
            spec.pop("healthCheckNodePort", None)

    def _assign(self, svc: dict, old: dict | None) -> tuple[dict, Reservation]:
        res = Reservation(self.ips, self.ports)
        name = (svc.get("metadata") or {}).get("name", "")
        old_ips = held_cluster_ips(old) if old else []
        old_ports = held_node_ports(old) if old else set()
        causes: list[dict[str, Any]] = []
        spec = svc.setdefault("spec", {})
        try:
            if _needs_cluster_ip(svc):
                causes += self._assign_cluster_ips(spec, old_ips, res)
            if _needs_node_ports(svc):
                seen: set[int] = set()
                for i, port in enumerate(spec.get("ports") or []):
                    if not isinstance(port, dict):
                        continue
                    wanted = port.get("nodePort")
                    if isinstance(wanted, int) and wanted > 0 and (wanted in old_ports or wanted in seen):
                        seen.add(wanted)
                        continue
                    try:
                        if isinstance(wanted, int) and wanted > 0:
                            self.ports.allocate(wanted)
                            got = wanted
                        else:
                            got = self.ports.allocate_next()
                    except AllocationError as exc:
                        detail = f"Invalid value: {wanted}: {exc}" if wanted else str(exc)
                        causes.append({"reason": "FieldValueInvalid", "field": f"spec.ports[{i}].nodePort",
                                       "message": detail})
                        continue
                    res.new_ports.append(got)
                    seen.add(got)
                    port["nodePort"] = got
            if _needs_health_check_port(svc):
                wanted = spec.get("healthCheckNodePort")
                if not (isinstance(wanted, int) and wanted > 0 and wanted in old_ports):
                    try:
                        if isinstance(wanted, int) and wanted > 0:
                            got = self.ports.allocate(wanted)
                        else:
                            got = self.ports.allocate_next()
                    except AllocationError as exc:
                        causes.append({"reason": "FieldValueInvalid", "field": "spec.healthCheckNodePort",
                                       "message": f"Invalid value: {wanted}: {exc}" if wanted else str(exc)})
                    else:
                        res.new_ports.append(got)
                        spec["healthCheckNodePort"] = got
        except Exception:
            res.rollback()
            raise
        if causes:
            res.rollback()
            raise st.invalid("Service", name, causes)
        new_ips = set(held_cluster_ips(svc))
        new_ports = held_node_ports(svc)
        res.release_ips = [ip for ip in old_ips if ip not in new_ips]
        res.release_ports = sorted(p for p in old_ports if p not in new_ports)
        return svc, res

    def _assign_cluster_ips(self, spec: dict, old_ips: list[str], res: Reservation) -> list[dict[str, Any]]:
        """One ClusterIP per entry of ipFamilies (the cluster's default family when none):
        kept when the old object held it, else allocated from that family's range. Returns
        the causes of what could not be allocated."""
        requested = [ip for ip in spec.get("clusterIPs") or [] if isinstance(ip, str)]
        if not requested and isinstance(spec.get("clusterIP"), str) and spec["clusterIP"]:
            requested = [spec["clusterIP"]]
        if requested[:1] == ["None"]:
            spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
            return []
        if old_ips and requested and requested[0] not in old_ips:
            return [{"reason": "FieldValueInvalid", "field": "spec.clusterIPs[0]",
                     "message": f"Invalid value: {requested[0]!r}: may not change once set"}]
        families = [f for f in spec.get("ipFamilies") or [] if isinstance(f, str)] or [self.ips.default_family]
        got: list[str] = []
        for i, family in enumerate(families[:2]):
            wanted = requested[i] if i < len(requested) else ""
            if wanted and wanted in old_ips:
                got.append(wanted)
                continue
            try:
                ip = self.ips.allocate(wanted) if wanted else self.ips.allocate_next(family)
            except AllocationError as exc:
                message = f"Invalid value: {requested!r}: {exc}" if wanted else str(exc)
                return [{"reason": "FieldValueInvalid", "field": "spec.clusterIPs", "message": message}]
            res.new_ips.append(ip)
            got.append(ip)
        spec["clusterIP"], spec["clusterIPs"] = got[0], got
        return []
