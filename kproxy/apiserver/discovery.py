"""Discovery documents (pure): /api, /apis, /api/v1, /apis/<group>/<version>, the aggregated
discovery v2 form kubectl asks for first, and /version."""
from __future__ import annotations

import platform
import sys
from typing import Any, Iterable

from kproxy.api.resources import (
    ALL, AUTHN_GROUP, CREATE_ONLY, EVICTION_SUBRESOURCE, SERVICE_ACCOUNTS, TOKEN_SUBRESOURCE, Resource,
)

GIT_VERSION = "v1.32.0-kproxy"
AGGREGATED_MEDIA_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUBRESOURCE_VERBS = ["get", "patch", "update"]
CATEGORIES = {"pods": ["all"], "services": ["all"], "deployments": ["all"], "replicasets": ["all"],
              "replicationcontrollers": ["all"],
              "jobs": ["all"], "cronjobs": ["all"], "daemonsets": ["all"], "statefulsets": ["all"]}
SCALE_KIND = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
SERVED = ALL + CREATE_ONLY
TOKEN_REQUEST_KIND = {"group": AUTHN_GROUP, "version": "v1", "kind": "TokenRequest"}
BINDING_KIND = {"group": "", "version": "v1", "kind": "Binding"}
EVICTION_KIND = {"group": "policy", "version": "v1", "kind": "Eviction"}
POD_EXEC_KIND = {"group": "", "version": "v1", "kind": "PodExecOptions"}
POD_PORT_FORWARD_KIND = {"group": "", "version": "v1", "kind": "PodPortForwardOptions"}


def _verbs(resource: Resource) -> list[str]:
    return ["create"] if resource in CREATE_ONLY else VERBS


def subresources(resource: Resource) -> list[tuple[str, list[str], dict[str, str] | None]]:
    """(name, verbs, kind when it is not the resource's own) of each subresource the server
    serves for `resource`: the one list both discovery and path parsing read."""
    subs: list[tuple[str, list[str], dict[str, str] | None]] = []
    if resource.status_subresource:
        subs.append(("status", SUBRESOURCE_VERBS, None))
    if resource.scale_subresource:
        subs.append(("scale", SUBRESOURCE_VERBS, SCALE_KIND))
    if resource.plural == "namespaces" and not resource.group:
        subs.append(("finalize", ["update"], None))
    if resource is SERVICE_ACCOUNTS:
        subs.append((TOKEN_SUBRESOURCE, ["create"], TOKEN_REQUEST_KIND))
    if resource.plural == "pods" and not resource.group:
        subs.append(("binding", ["create"], BINDING_KIND))
        subs.append((EVICTION_SUBRESOURCE, ["create"], EVICTION_KIND))
        subs.append(("exec", ["create", "get"], POD_EXEC_KIND))  # kproxy.apiserver.podproxy
        subs.append(("log", ["get"], None))
        subs.append(("portforward", ["create", "get"], POD_PORT_FORWARD_KIND))  # kproxy.apiserver.podproxy
    return subs


def groups() -> list[str]:
    """Non-core API groups in a stable order."""
    seen: list[str] = []
    for r in SERVED:
        if r.group and r.group not in seen:
            seen.append(r.group)
    return seen


def versions_of(group: str) -> list[str]:
    out: list[str] = []
    for r in SERVED:
        if r.group == group and r.version not in out:
            out.append(r.version)
    return out


def resources_of(group: str, version: str) -> list[Resource]:
    return [r for r in SERVED if r.group == group and r.version == version]


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": versions_of(""),
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group_doc(group: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions_of(group)]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_doc(g) for g in groups()]}


def api_group(group: str) -> dict[str, Any] | None:
    if group not in groups():
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group)}


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    rs = resources_of(group, version)
    if not rs:
        return None
    entries: list[dict[str, Any]] = []
    for r in rs:
        entry: dict[str, Any] = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                                 "kind": r.kind, "verbs": _verbs(r)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.plural in CATEGORIES:
            entry["categories"] = CATEGORIES[r.plural]
        entries.append(entry)
        for sub, verbs, kind in subresources(r):
            entry = {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                     "kind": r.kind, "verbs": verbs}
            if kind is not None:  # group and version only when they are not the resource's own
                entry.update(kind if kind["group"] != r.group else {"kind": kind["kind"]})
            entries.append(entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}


def _aggregated_group(group: str) -> dict[str, Any]:
    versions = []
    for version in versions_of(group):
        resources = []
        for r in resources_of(group, version):
            kind_ref = {"group": r.group, "version": r.version, "kind": r.kind}
            entry: dict[str, Any] = {
                "resource": r.plural, "responseKind": kind_ref,
                "scope": "Namespaced" if r.namespaced else "Cluster",
                "singularResource": r.singular, "verbs": _verbs(r),
            }
            if r.short_names:
                entry["shortNames"] = list(r.short_names)
            if r.plural in CATEGORIES:
                entry["categories"] = CATEGORIES[r.plural]
            subs = [{"subresource": sub, "responseKind": kind or kind_ref, "verbs": verbs}
                    for sub, verbs, kind in subresources(r)]
            if subs:
                entry["subresources"] = subs
            resources.append(entry)
        versions.append({"version": version, "resources": resources, "freshness": "Current"})
    return {"metadata": {"name": group, "creationTimestamp": None}, "versions": versions}


def aggregated(core: bool) -> dict[str, Any]:
    """APIGroupDiscoveryList for /api (core=True) or /apis."""
    names: Iterable[str] = [""] if core else groups()
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": [_aggregated_group(g) for g in names]}


def wants_aggregated(accept: str) -> bool:
    """True when the Accept header asks for aggregated discovery v2 (kubectl >= 1.26)."""
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip()
                  for p in part.split(";")[1:] if "=" in p}
        if params.get("g") == "apidiscovery.k8s.io" and params.get("v") == "v2" \
                and params.get("as") == "APIGroupDiscoveryList":
            return True
    return False


def version_info() -> dict[str, Any]:
    major, minor = GIT_VERSION[1:].split(".")[:2]
    return {"major": major, "minor": minor, "gitVersion": GIT_VERSION, "gitCommit": "",
            "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z",
            "goVersion": f"python{sys.version_info.major}.{sys.version_info.minor}",
            "compiler": platform.python_implementation().lower(),
            "platform": f"linux/{platform.machine()}"}
