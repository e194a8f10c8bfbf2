"""Parsing of Kubernetes REST paths (pure)."""
from __future__ import annotations

import functools
from dataclasses import dataclass

from kproxy.api.resources import Resource, by_group_version_plural, create_only
from kproxy.apiserver.discovery import subresources


@dataclass(frozen=True)
class ApiPath:
    group: str
    version: str
    resource: Resource | None = None  # None: the group-version discovery document
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    legacy_watch: bool = False  # the deprecated /watch/ path form


class PathNotFound(Exception):
    pass


# A request's path is parsed by the metrics, the authorizer and the router, and collection
# paths repeat across requests: the result (immutable) is cached. Failures are not cached.
@functools.lru_cache(maxsize=4096)
def parse(path: str) -> ApiPath:
    """Parses /api/v1/... or /apis/GROUP/VERSION/...; raises PathNotFound."""
    segs = [s for s in path.split("/") if s != ""]
    if len(segs) >= 2 and segs[0] == "api":
        group, version, rest = "", segs[1], segs[2:]
    elif len(segs) >= 3 and segs[0] == "apis":
        group, version, rest = segs[1], segs[2], segs[3:]
    else:
        raise PathNotFound(path)
    if not rest:
        return ApiPath(group, version)
    legacy_watch = False
    if rest[0] == "watch":
        legacy_watch, rest = True, rest[1:]
        if not rest:
            raise PathNotFound(path)
    namespace = None
    namespaces_resource = by_group_version_plural(group, version, "namespaces")
    if rest[0] == "namespaces" and len(rest) >= 3 and not (
            namespaces_resource is not None and len(rest) == 3 and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise PathNotFound(path)
    resource = by_group_version_plural(group, version, rest[0]) or create_only(group, version, rest[0])
    if resource is None:
        raise PathNotFound(path)
    if namespace is not None and not resource.namespaced:
        raise PathNotFound(path)
    name = rest[1] if len(rest) >= 2 else None
    sub = rest[2] if len(rest) == 3 else None
    if sub is not None:
        allowed = [s for s, _, _ in subresources(resource)]
        if sub not in allowed or legacy_watch:
            raise PathNotFound(path)
    return ApiPath(group, version, resource, namespace, name, sub, legacy_watch)
