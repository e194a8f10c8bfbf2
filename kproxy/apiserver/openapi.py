"""OpenAPI v3 (per group-version) and v2 documents, generated once from kproxy.apiserver.schema.

kubectl reads them to decide that the server does field validation (a `fieldValidation`
query parameter on each kind's PATCH operation, found through x-kubernetes-group-version-kind)
and to compute strategic-merge patches for `kubectl apply` (x-kubernetes-patch-merge-key /
x-kubernetes-patch-strategy on lists).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

from kproxy.api.resources import ALL, Resource
from kproxy.apiserver import schema as S
from kproxy.apiserver.discovery import GIT_VERSION

PATCH_CONTENT_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                       "application/strategic-merge-patch+json", "application/apply-patch+yaml")


def _gvk(r: Resource) -> dict[str, str]:
    return {"group": r.group, "version": r.version, "kind": r.kind}


def _schema(t: S.Type, ref: Callable[[str], str]) -> dict[str, Any]:
    if isinstance(t, S.Ref):
        return {"$ref": ref(t.name)}
    if isinstance(t, S.Scalar):
        if t.kind in ("int-or-string", "quantity"):
            return {"type": "string", "format": "int-or-string"}  # as Kubernetes publishes both
        out: dict[str, Any] = {"type": t.kind}
        if t.fmt:
            out["format"] = t.fmt
        return out
    if isinstance(t, S.MapOf):
        return {"type": "object", "additionalProperties": _schema(t.value, ref)}
    if isinstance(t, S.ListOf):
        out = {"type": "array", "items": _schema(t.item, ref), "x-kubernetes-list-type": t.list_type}
        if t.map_keys and t.list_type == "map":
            out["x-kubernetes-list-map-keys"] = list(t.map_keys)
        if t.merge_key:
            out["x-kubernetes-patch-merge-key"] = t.merge_key
        if t.strategy:
            out["x-kubernetes-patch-strategy"] = t.strategy
        return out
    if isinstance(t, S.Open):
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert isinstance(t, S.Struct)
    out = {"type": "object", "properties": {k: _schema(v, ref) for k, v in t.fields.items()}}
    if t.required:
        out["required"] = list(t.required)
    return out


def _definitions(ref: Callable[[str], str]) -> dict[str, Any]:
    defs = {name: _schema(struct, ref) for name, struct in S.DEFINITIONS.items()}
    for r in ALL:
        doc = _schema(S.kind_schema(r), ref)
        doc["x-kubernetes-group-version-kind"] = [_gvk(r)]
        defs[S.definition_name(r)] = doc
        defs[S.definition_name(r) + "List"] = {
            "type": "object", "required": ["items"],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                           "items": {"type": "array", "items": {"$ref": ref(S.definition_name(r))}}},
            "x-kubernetes-group-version-kind": [{**_gvk(r), "kind": r.list_kind}],
        }
    return defs


def _param(name: str, where: str = "query", kind: str = "string") -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "in": where, "schema": {"type": kind}}
    if where == "path":
        p["required"] = True
    return p


def _operation(r: Resource, action: str, op_id: str, ref: str, params: list[dict[str, Any]],
               body_types: tuple[str, ...] = ()) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": op_id, "tags": [r.group_version],
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}}},
        "x-kubernetes-action": action, "x-kubernetes-group-version-kind": _gvk(r),
    }
    if body_types:
        op["requestBody"] = {"content": {t: {"schema": {"$ref": ref}} for t in body_types}, "required": True}
    return op


def _paths(r: Resource, ref: Callable[[str], str]) -> dict[str, Any]:
    obj_ref, list_ref = ref(S.definition_name(r)), ref(S.definition_name(r) + "List")
    write = [_param("dryRun"), _param("fieldManager"), _param("fieldValidation")]
    select = [_param("labelSelector"), _param("fieldSelector"), _param("resourceVersion"),
              _param("watch", kind="boolean"), _param("limit", kind="integer"),
              _param("timeoutSeconds", kind="integer"), _param("allowWatchBookmarks", kind="boolean")]
    ns_param = [_param("namespace", "path")] if r.namespaced else []
    name_param = [_param("name", "path")]
    base = f"/apis/{r.group}/{r.version}" if r.group else f"/api/{r.version}"
    coll = f"{base}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{base}/{r.plural}"
    item = coll + "/{name}"
    suffix = r.kind + ("Namespaced" if r.namespaced else "")
    paths: dict[str, Any] = {
        coll: {
            "get": _operation(r, "list", f"list{suffix}", list_ref, ns_param + select),
            "post": _operation(r, "post", f"create{suffix}", obj_ref, ns_param + write, ("application/json",)),
            "delete": _operation(r, "deletecollection", f"deleteCollection{suffix}", list_ref, ns_param + select),
        },
        item: {
            "get": _operation(r, "get", f"read{suffix}", obj_ref, ns_param + name_param),
            "put": _operation(r, "put", f"replace{suffix}", obj_ref, ns_param + name_param + write, ("application/json",)),
            "patch": _operation(r, "patch", f"patch{suffix}", obj_ref, ns_param + name_param + write + [_param("force", kind="boolean")],
                                PATCH_CONTENT_TYPES),
            "delete": _operation(r, "delete", f"delete{suffix}", obj_ref,
                                 ns_param + name_param + [_param("gracePeriodSeconds", kind="integer"), _param("dryRun")]),
        },
    }
    if r.namespaced:
        paths[f"{base}/{r.plural}"] = {"get": _operation(r, "list", f"list{r.kind}ForAllNamespaces", list_ref, select)}
    if r.status_subresource:
        paths[item + "/status"] = {
            "get": _operation(r, "get", f"read{suffix}Status", obj_ref, ns_param + name_param),
            "put": _operation(r, "put", f"replace{suffix}Status", obj_ref, ns_param + name_param + write, ("application/json",)),
            "patch": _operation(r, "patch", f"patch{suffix}Status", obj_ref, ns_param + name_param + write,
                                PATCH_CONTENT_TYPES),
        }
    return paths


def _v3_key(r: Resource) -> str:
    return f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"


class OpenAPI:
    """The documents, built once; v3 documents are served by their index key."""

    def __init__(self) -> None:
        ref3: Callable[[str], str] = lambda name: f"#/components/schemas/{name}"
        defs3 = _definitions(ref3)
        self._v3: dict[str, dict[str, Any]] = {}
        for r in ALL:
            doc = self._v3.setdefault(_v3_key(r), {
                "openapi": "3.0.0", "info": {"title": "Kubernetes (kproxy)", "version": GIT_VERSION},
                "paths": {}, "components": {"schemas": defs3},
            })
            doc["paths"].update(_paths(r, ref3))
        self._hashes = {k: hashlib.sha512(json.dumps(v, sort_keys=True).encode()).hexdigest().upper()
                        for k, v in self._v3.items()}
        ref2: Callable[[str], str] = lambda name: f"#/definitions/{name}"
        paths2: dict[str, Any] = {}
        for r in ALL:
            paths2.update(_paths(r, ref2))
        self._v2 = {"swagger": "2.0", "info": {"title": "Kubernetes (kproxy)", "version": GIT_VERSION},
                    "paths": _v2_paths(paths2), "definitions": _definitions(ref2)}

    def v2(self) -> dict[str, Any]:
        return self._v2

    def v3_index(self) -> dict[str, Any]:
        return {"paths": {k: {"serverRelativeURL": f"/openapi/v3/{k}?hash={self._hashes[k]}"} for k in self._v3}}

    def v3(self, key: str) -> dict[str, Any] | None:
        return self._v3.get(key.strip("/"))


def _v2_paths(paths3: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI v3 operations rewritten to Swagger 2.0 shape (body parameters, flat types)."""
    out: dict[str, Any] = {}
    for path, ops in paths3.items():
        out[path] = {}
        for method, op in ops.items():
            op2 = {k: v for k, v in op.items() if k not in ("requestBody", "responses", "parameters")}
            params = [{"name": p["name"], "in": p["in"], "type": p["schema"]["type"],
                       **({"required": True} if p.get("required") else {})} for p in op["parameters"]]
            if "requestBody" in op:
                first = next(iter(op["requestBody"]["content"].values()))
                params.append({"name": "body", "in": "body", "required": True, "schema": first["schema"]})
                op2["consumes"] = list(op["requestBody"]["content"])
            op2["parameters"] = params
            op2["produces"] = ["application/json"]
            schema = op["responses"]["200"]["content"]["application/json"]["schema"]
            op2["responses"] = {"200": {"description": "OK", "schema": schema}}
            out[path][method] = op2
    return out
