"""ResourceQuota admission: object counts per namespace, checked before a write.

Pure functions: the registry hands in the namespace's quotas and the objects already stored,
and gets back either nothing (admitted) or the Kubernetes-style denial message.
"""
from __future__ import annotations

from typing import Any, Iterable

from kproxy.api.resources import Resource


def usage(resource: Resource, obj: dict[str, Any]) -> dict[str, int]:
    """The quota resources one object of `resource` consumes."""
    count_key = f"count/{resource.plural}" + (f".{resource.group}" if resource.group else "")
    out = {count_key: 1}
    if resource.group == "" and resource.plural in ("pods", "services", "secrets", "resourcequotas"):
        out[resource.plural] = 1
    if resource.group == "" and resource.plural == "pods":
        phase = (obj.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):  # terminal pods do not count, as in Kubernetes
            return {}
    if resource.group == "" and resource.plural == "services":
        spec = obj.get("spec") or {}
        svc_type = spec.get("type", "ClusterIP")
        if svc_type in ("NodePort", "LoadBalancer"):
            out["services.nodeports"] = sum(1 for p in spec.get("ports") or [] if isinstance(p, dict))
        if svc_type == "LoadBalancer":
            out["services.loadbalancers"] = 1
    return out


def total(resource: Resource, objs: Iterable[dict[str, Any]]) -> dict[str, int]:
    acc: dict[str, int] = {}
    for obj in objs:
        for key, n in usage(resource, obj).items():
            acc[key] = acc.get(key, 0) + n
    return acc


def _hard_limit(value: Any) -> int | None:
    """Counts in spec.hard are quantities; only plain integers make sense for counts."""
    try:
        return int(str(value))
    except ValueError:
        return None


def check(quotas: list[dict[str, Any]], used: dict[str, int], requested: dict[str, int]) -> str | None:
    """None when every quota admits `requested` on top of `used`; else the denial text
    ("exceeded quota: NAME, requested: pods=1, used: pods=2, limited: pods=2")."""
    for quota in sorted(quotas, key=lambda q: (q.get("metadata") or {}).get("name", "")):
        hard = (quota.get("spec") or {}).get("hard") or {}
        over = []
        for key in sorted(requested):
            if requested[key] <= 0 or key not in hard:
                continue
            limit = _hard_limit(hard[key])
            if limit is not None and used.get(key, 0) + requested[key] > limit:
                over.append((key, limit))
        if over:
            name = (quota.get("metadata") or {}).get("name", "")
            req = ",".join(f"{k}={requested[k]}" for k, _ in over)
            use = ",".join(f"{k}={used.get(k, 0)}" for k, _ in over)
            lim = ",".join(f"{k}={limit}" for k, limit in over)
            return f"exceeded quota: {name}, requested: {req}, used: {use}, limited: {lim}"
    return None
