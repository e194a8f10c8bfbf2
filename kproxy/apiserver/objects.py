"""Small pure helpers on API objects (dicts) used across the apiserver."""
from __future__ import annotations

import datetime
import random
import uuid
from typing import Any

from kproxy.api.resources import Resource

# Kubernetes' generateName alphabet: no vowels and no confusable characters.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
GENERATED_SUFFIX_LEN = 5


def rfc3339(ts: float) -> str:
    """Seconds since the epoch as Kubernetes' metav1.Time (second precision, UTC, "Z")."""
    return datetime.datetime.fromtimestamp(int(ts), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float | None:
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


def new_uid() -> str:
    return str(uuid.uuid4())


def generate_name(prefix: str, rng: random.Random | None = None) -> str:
    rng = rng or random
    # Kubernetes truncates the prefix so the result stays within 63 characters.
    prefix = prefix[: 63 - GENERATED_SUFFIX_LEN]
    return prefix + "".join(rng.choice(_NAME_ALPHABET) for _ in range(GENERATED_SUFFIX_LEN))


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    """obj["metadata"], created when missing (the object must be a dict)."""
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m


# ObjectMeta's `omitempty` fields: kube-apiserver never returns them empty
OMIT_EMPTY_META = ("labels", "annotations", "ownerReferences", "finalizers")


def drop_empty_meta(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` without empty labels, annotations, ownerReferences or finalizers ({} or [] left
    by a patch that removed the last entry), as Go's omitempty drops them upstream. Changes
    the metadata in place."""
    m = obj.get("metadata")
    if isinstance(m, dict):
        for key in OMIT_EMPTY_META:
            if key in m and (m[key] is None or m[key] == {} or m[key] == []):
                del m[key]
    return obj


def with_resource_version(value: dict[str, Any], revision: int) -> dict[str, Any]:
    """`value` with metadata.resourceVersion set to `revision`. Only the top level and the
    metadata are copied: `value` is not changed, and the result shares the rest with it, so
    callers treat both as read-only (the registry only serialises what it returns)."""
    out = dict(value)
    m = out.get("metadata")
    out["metadata"] = dict(m) if isinstance(m, dict) else {}
    out["metadata"]["resourceVersion"] = str(revision)
    return out


def strip_resource_version(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` without metadata.resourceVersion (the same sharing rules as above)."""
    out = dict(obj)
    m = out.get("metadata")
    out["metadata"] = {k: v for k, v in m.items() if k != "resourceVersion"} if isinstance(m, dict) else {}
    return out


def object_ref(resource: Resource, obj: dict[str, Any]) -> str:
    m = obj.get("metadata") or {}
    if resource.namespaced:
        return f"{m.get('namespace', '')}/{m.get('name', '')}"
    return str(m.get("name", ""))


def path_segment_problem(name: str) -> str | None:
    """Why `name` cannot be a URL path segment (Kubernetes' ValidatePathSegmentName), or None."""
    if name in (".", ".."):
        return f'may not be {name!r}'
    for bad in ("/", "%"):
        if bad in name:
            return f'may not contain {bad!r}'
    return None
