"""Service IP families on a single- or dual-stack cluster.

`--service-cluster-ip-range` holds one CIDR per family (the first is the cluster's default
family); `ServiceIPAllocators` keeps one ClusterIP allocator per configured family.
`init_ip_family_fields` is kube-apiserver's defaulting and checking of `ipFamilyPolicy`,
`ipFamilies` and `clusterIPs` before allocation (pkg/registry/core/service/storage,
initIPFamilyFields): it fills the policy and the families from the request, the old object and
the cluster's families, and refuses what the cluster cannot serve with upstream's 422 causes.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Iterable, Sequence

from kproxy.api import status as st
from kproxy.api.validation.errors import FieldErrors
from kproxy.api.validation.service import validate_cluster_ips_related_fields
from kproxy.apiserver.allocators import AllocationError, ClusterIPAllocator

IPV4, IPV6 = "IPv4", "IPv6"
SINGLE, PREFER_DUAL, REQUIRE_DUAL = "SingleStack", "PreferDualStack", "RequireDualStack"


def family_of(ip: str) -> str | None:
    try:
        return IPV4 if ipaddress.ip_address(ip).version == 4 else IPV6
    except ValueError:
        return None


def other_family(family: str) -> str:
    return IPV6 if family == IPV4 else IPV4


def parse_service_cidrs(text: str) -> list[str]:
    """"10.96.0.0/12,fd00:10:96::/112" -> the CIDRs, primary first. Raises ValueError with
    kube-apiserver's rules: one or two CIDRs, two only of different families, none too small."""
    parts = [p.strip() for p in text.split(",")]
    if not parts or any(not p for p in parts):
        raise ValueError(f"{text!r}: want one CIDR, or two (one per IP family) separated by a comma")
    if len(parts) > 2:
        raise ValueError(f"{text!r}: may only have up to 2 CIDRs (one per IP family)")
    nets = [ipaddress.ip_network(p, strict=True) for p in parts]
    if len(nets) == 2 and nets[0].version == nets[1].version:
        raise ValueError(f"{text!r}: the two CIDRs must be of different IP families")
    for net in nets:
        if net.num_addresses < 4:
            raise ValueError(f"{net} is too small")
    return [str(n) for n in nets]


class ServiceIPAllocators:
    """One ClusterIPAllocator per configured family; an address goes to its family's."""

    def __init__(self, allocators: Sequence[ClusterIPAllocator]):
        if not 1 <= len(allocators) <= 2:
            raise ValueError("want one ClusterIP allocator per family, one or two")
        self.by_family = {(IPV4 if a.network.version == 4 else IPV6): a for a in allocators}
        if len(self.by_family) != len(allocators):
            raise ValueError("two ClusterIP allocators of one family")
        self.primary = allocators[0]

    @classmethod
    def from_cidrs(cls, text: str) -> ServiceIPAllocators:
        return cls([ClusterIPAllocator(c) for c in parse_service_cidrs(text)])

    @property
    def families(self) -> tuple[str, ...]:
        """The configured families, the default (primary) first."""
        return tuple(self.by_family)

    @property
    def default_family(self) -> str:
        return self.families[0]

    @property
    def reserved(self) -> str:
        """The `kubernetes` Service's address (first of the primary range)."""
        return self.primary.reserved

    @property
    def cidr(self) -> str:
        return ",".join(a.cidr for a in self.by_family.values())

    def get(self, family: str) -> ClusterIPAllocator | None:
        return self.by_family.get(family)

    def _for_ip(self, ip: str) -> ClusterIPAllocator | None:
        fam = family_of(ip)
        return self.by_family.get(fam) if fam else None

    def allocate(self, ip: str) -> str:
        alloc = self._for_ip(ip)
        if alloc is None:
            if family_of(ip) is None:
                raise AllocationError("range", f"failed to allocate IP {ip}: not a valid IP address")
            raise AllocationError("range", f"failed to allocate IP {ip}: {family_of(ip)} is not configured on "
                                           f"this cluster")
        return alloc.allocate(ip)

    def allocate_next(self, family: str | None = None) -> str:
        alloc = self.by_family.get(family or self.default_family)
        if alloc is None:
            raise AllocationError("range", f"{family} is not configured on this cluster")
        return alloc.allocate_next()

    def release(self, ip: str) -> None:
        alloc = self._for_ip(ip)
        if alloc is not None:  # a family no longer configured holds nothing to release
            alloc.release(ip)

    def in_use(self, ip: str) -> bool:
        alloc = self._for_ip(ip)
        return alloc is not None and alloc.in_use(ip)

    def rebuild(self, ips: Iterable[str]) -> list[str]:
        """Resets every family to exactly `ips` in use; returns those no range holds."""
        per_family: dict[str, list[str]] = {f: [] for f in self.by_family}
        outside = []
        for ip in ips:
            fam = family_of(ip)
            if fam in per_family:
                per_family[fam].append(ip)
            else:
                outside.append(ip)
        for fam, alloc in self.by_family.items():
            outside += alloc.rebuild(per_family[fam])
        return outside


# --- ipFamilyPolicy / ipFamilies / clusterIPs before allocation -----------------------------

def _str_list(value: Any) -> list[str] | None:
    """value as a list of strings; None when it has another shape (validation reports it)."""
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def normalize_cluster_ips(spec: dict[str, Any], old_spec: dict[str, Any] | None) -> None:
    """clusterIP and clusterIPs in step, as upstream's normalizeClusterIPs: a client that
    manages only one of them gets the other to follow."""
    cip = spec.get("clusterIP") if isinstance(spec.get("clusterIP"), str) else None
    ips = spec.get("clusterIPs")
    if cip is None:
        return
    if old_spec is not None:
        old_ips = old_spec.get("clusterIPs")
        if ips == old_ips and cip != old_spec.get("clusterIP"):
            if not cip:
                spec.pop("clusterIPs", None)  # the client cleared clusterIP alone
                return
            spec["clusterIPs"] = [cip]  # ... or changed it alone
            return
    if cip and not ips:
        spec["clusterIPs"] = [cip]


def _same(a: dict[str, Any], b: dict[str, Any], key: str) -> bool:
    return list(a.get(key) or []) == list(b.get(key) or [])


def _matching_prefer_dual_stack(spec: dict[str, Any], old_spec: dict[str, Any] | None) -> bool:
    """An update of a PreferDualStack Service that leaves its addresses and families alone is
    never upgraded or downgraded, whatever the cluster became since."""
    if old_spec is None or spec.get("ipFamilyPolicy") is None:
        return False
    if (old_spec.get("type") or "ClusterIP") != (spec.get("type") or "ClusterIP"):
        return False
    if (spec.get("type") or "ClusterIP") == "ExternalName":
        return False
    if spec.get("ipFamilyPolicy") != PREFER_DUAL or old_spec.get("ipFamilyPolicy") not in (None, PREFER_DUAL):
        return False
    return _same(spec, old_spec, "clusterIPs") and _same(spec, old_spec, "ipFamilies")


def init_ip_family_fields(svc: dict[str, Any], old: dict[str, Any] | None, cluster_families: Sequence[str]) -> None:
    """Fills spec.ipFamilyPolicy and spec.ipFamilies of `svc` (a create when `old` is None)
    for a cluster serving `cluster_families` (default first), or raises 422 Invalid with
    kube-apiserver's causes. Leaves malformed fields alone for validation to report."""
    spec = svc.get("spec")
    if not isinstance(spec, dict) or (spec.get("type") or "ClusterIP") == "ExternalName":
        return
    old_spec: dict[str, Any] | None = None
    if old is not None:
        old_spec = old["spec"] if isinstance(old.get("spec"), dict) else {}
    normalize_cluster_ips(spec, old_spec)
    ips, families = _str_list(spec.get("clusterIPs")), _str_list(spec.get("ipFamilies"))
    if ips is None or families is None or not isinstance(spec.get("ipFamilyPolicy", ""), (str, type(None))):
        return
    if _matching_prefer_dual_stack(spec, old_spec):
        return
    headless = spec.get("clusterIP") == "None" or ips[:1] == ["None"]
    headless_selectorless = headless and not spec.get("selector")
    if not spec.get("ipFamilyPolicy"):
        if old_spec is not None and old_spec.get("ipFamilyPolicy"):
            spec["ipFamilyPolicy"] = old_spec["ipFamilyPolicy"]
        elif headless_selectorless:
            spec["ipFamilyPolicy"] = REQUIRE_DUAL
        else:
            spec["ipFamilyPolicy"] = SINGLE
    policy = spec["ipFamilyPolicy"]
    loose = FieldErrors()
    validate_cluster_ips_related_fields(loose, spec)
    if loose.causes:
        return  # validation reports these, with the rest of the object's errors
    name = (svc.get("metadata") or {}).get("name", "") if isinstance(svc.get("metadata"), dict) else ""
    e = FieldErrors()
    if old_spec is not None:
        old_ips, old_families = old_spec.get("clusterIPs") or [], old_spec.get("ipFamilies") or []
        if policy == SINGLE:
            # single-stack with the addresses and families left as they were: drop the secondary
            if ips == list(old_ips) and len(ips) > 1:
                spec["clusterIPs"] = ips = ips[:1]
            if families == list(old_families) and len(families) > 1:
                spec["ipFamilies"] = families = families[:1]
        else:
            if ips and len(ips) < len(old_ips):
                e.invalid("spec.ipFamilyPolicy", policy, "must be 'SingleStack' to release the secondary cluster IP")
            if families and len(families) < len(old_families):
                e.invalid("spec.ipFamilyPolicy", policy, "must be 'SingleStack' to release the secondary IP family")
    if policy == SINGLE:
        if len(ips) == 2:
            e.invalid("spec.ipFamilyPolicy", policy,
                      "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified")
        if len(families) == 2:
            e.invalid("spec.ipFamilyPolicy", policy,
                      "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified")
    for i, ip in enumerate(ips):
        if ip == "None":
            break
        fam = family_of(ip)
        if fam is not None and i >= len(families):
            if fam not in cluster_families:
                e.invalid(f"spec.clusterIPs[{i}]", ips, f"{fam} is not configured on this cluster")
            else:
                families.append(fam)
    if e.causes:
        raise st.invalid("Service", name, e.causes)
    if headless_selectorless:
        if not families:
            families = [cluster_families[0]]
        if len(families) < 2 and policy != SINGLE:
            families.append(other_family(families[0]))
        spec["ipFamilies"] = families
        return
    if policy == REQUIRE_DUAL and len(cluster_families) < 2:
        e.invalid("spec.ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services")
    for i, fam in enumerate(families):
        if fam not in cluster_families:
            e.invalid(f"spec.ipFamilies[{i}]", fam, "not configured on this cluster")
    if e.causes:
        raise st.invalid("Service", name, e.causes)
    if not families:
        families = [cluster_families[0]]
    if policy != SINGLE and len(families) == 1 and len(cluster_families) == 2:
        families.append(other_family(families[0]))
    spec["ipFamilies"] = families
