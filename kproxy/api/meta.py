"""Small helpers over object metadata, shared by apiserver, controllers and client."""
from __future__ import annotations

import copy
import datetime
import re
import uuid
from typing import Any, Mapping

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
# set on EndpointSlices by their controller; the agent measures network programming from it
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"


def object_key(resource: Any, obj: Mapping[str, Any]) -> str:
    """The cache key of an object: "namespace/name", or "name" for cluster-scoped resources."""
    md = obj.get("metadata") or {}
    name = md.get("name", "")
    if getattr(resource, "namespaced", True):
        return f"{md.get('namespace', '')}/{name}"
    return name


def split_key(key: str) -> tuple[str | None, str]:
    """The (namespace, name) of an object_key; namespace None for a cluster-scoped key."""
    if "/" in key:
        ns, name = key.split("/", 1)
        return ns, name
    return None, key


def now_rfc3339() -> str:
    """The current UTC time as Kubernetes writes metav1.Time: second precision, "Z" suffix."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339_micro() -> str:
    """The current UTC time as metav1.MicroTime (Lease renewTime, Event eventTime)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def parse_rfc3339(value: str) -> datetime.datetime:
    """Parse an RFC 3339 time (metav1.Time / MicroTime; Go's nanoseconds are cut to
    microseconds) into an aware datetime. Raises ValueError for anything else, including
    a date without a time or a time without an offset."""
    m = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    date, clock, fraction, offset = m.groups()
    fraction = (fraction or "")[:7]
    offset = "+00:00" if offset in ("Z", "z") else offset
    return datetime.datetime.fromisoformat(f"{date}T{clock}{fraction}{offset}")


def new_uid() -> str:
    return str(uuid.uuid4())


def deep_copy(obj: Any) -> Any:
    """A copy of a JSON-like value sharing no dict or list with it (other values are shared:
    JSON scalars are immutable). Much faster than copy.deepcopy on large objects."""
    if type(obj) is dict:
        return {k: deep_copy(v) for k, v in obj.items()}
    if type(obj) is list:
        return [deep_copy(v) for v in obj]
    if isinstance(obj, (dict, list)):
        return copy.deepcopy(obj)
    return obj


def get_path(obj: Any, *path: str | int, default: Any = None) -> Any:
    """obj[p0][p1]..., or `default` when any step is missing or of the wrong type."""
    cur = obj
    for p in path:
        if isinstance(p, int):
            if not isinstance(cur, list) or not -len(cur) <= p < len(cur):
                return default
        elif not isinstance(cur, Mapping) or p not in cur:
            return default
        cur = cur[p]
    return cur


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def is_being_deleted(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def with_type_meta(resource: Any, obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `obj` whose apiVersion/kind are the resource's (as the apiserver returns it)."""
    out = dict(obj)
    out["apiVersion"] = resource.group_version
    out["kind"] = resource.kind
    return out
