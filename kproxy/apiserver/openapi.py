"""OpenAPI v3 (per group-version) and v2 documents, generated once from kproxy.apiserver.schema.

kubectl reads them to decide that the server does field validation (a `fieldValidation`
query parameter on each kind's PATCH operation, found through x-kubernetes-group-version-kind)
and to compute strategic-merge patches for `kubectl apply` (x-kubernetes-patch-merge-key /
x-kubernetes-patch-strategy on lists).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable

from kproxy.api.resources import ALL, AUTHN_GROUP, CREATE_ONLY, SERVICE_ACCOUNTS, Resource
from kproxy.apiserver import schema as S
from kproxy.apiserver.discovery import GIT_VERSION

SCALE_DEFINITION = "io.k8s.api.autoscaling.v1.Scale"
PATCH_CONTENT_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                       "application/strategic-merge-patch+json", "application/apply-patch+yaml")


# Our own short descriptions of the served kinds' fields (for `kubectl explain`): per definition,
# "" for the type and dotted field paths within it; "common" for field names any type shares.
DESCRIPTIONS_FILE = os.path.join(os.path.dirname(__file__), "openapi", "descriptions.json")
# more definitions' descriptions, one file per family of kinds, merged into DESCRIPTIONS_FILE's
MORE_DESCRIPTIONS = ("descriptions_workloads.json", "descriptions_batch.json", "descriptions_policy.json",
                     "descriptions_set_workloads.json")


def load_descriptions(path: str = DESCRIPTIONS_FILE) -> dict[str, Any]:
    with open(path) as f:
        out = json.load(f)
    for name in MORE_DESCRIPTIONS:
        with open(os.path.join(os.path.dirname(path), name)) as f:
            more = json.load(f)
        out.setdefault("common", {}).update(more.get("common", {}))
        out.setdefault("definitions", {}).update(more.get("definitions", {}))
    return out


class _Describer:
    """Descriptions of one definition's fields, looked up by their path in it."""

    def __init__(self, descriptions: dict[str, Any], definition: str):
        self.common: dict[str, str] = descriptions.get("common", {})
        self.own: dict[str, str] = descriptions.get("definitions", {}).get(definition, {})

    def __call__(self, path: tuple[str, ...]) -> str | None:
        return self.own.get(".".join(path)) or (self.common.get(path[-1]) if path else None)


def _gvk(r: Resource) -> dict[str, str]:
    return {"group": r.group, "version": r.version, "kind": r.kind}


def _described(schema: dict[str, Any], description: str | None, v3: bool) -> dict[str, Any]:
    if not description:
        return schema
    if "$ref" in schema and v3:  # OpenAPI 3 ignores siblings of $ref: wrap it, as Kubernetes does
        return {"allOf": [schema], "description": description}
    return {**schema, "description": description}


def _schema(t: S.Type, ref: Callable[[str], str], describe: Callable[[tuple[str, ...]], str | None] = lambda p: None,
            path: tuple[str, ...] = (), v3: bool = True) -> dict[str, Any]:
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
        return {"type": "object", "additionalProperties": _schema(t.value, ref, describe, path, v3)}
    if isinstance(t, S.ListOf):
        out = {"type": "array", "items": _schema(t.item, ref, describe, path, v3), "x-kubernetes-list-type": t.list_type}
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
    out = {"type": "object", "properties": {
        k: _described(_schema(v, ref, describe, path + (k,), v3), describe(path + (k,)), v3)
        for k, v in t.fields.items()}}
    if t.required:
        out["required"] = list(t.required)
    return out


def _definitions(ref: Callable[[str], str], descriptions: dict[str, Any], v3: bool) -> dict[str, Any]:
    defs = {}
    for name, struct in S.DEFINITIONS.items():
        describe = _Describer(descriptions, name)
        defs[name] = _described(_schema(struct, ref, describe, (), v3), describe(("",)), v3)
    for r in ALL + CREATE_ONLY + (TOKEN_REQUEST,):
        describe = _Describer(descriptions, S.definition_name(r))
        doc = _described(_schema(S.kind_schema(r), ref, describe, (), v3), describe(("",)), v3)
        doc["x-kubernetes-group-version-kind"] = [_gvk(r)]
        defs[S.definition_name(r)] = doc
        if r not in ALL:
            continue  # create-only: no lists
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
    if r.scale_subresource:
        scale_ref = ref(SCALE_DEFINITION)
        paths[item + "/scale"] = {
            "get": _operation(r, "get", f"read{suffix}Scale", scale_ref, ns_param + name_param),
            "put": _operation(r, "put", f"replace{suffix}Scale", scale_ref, ns_param + name_param + write,
                              ("application/json",)),
            "patch": _operation(r, "patch", f"patch{suffix}Scale", scale_ref, ns_param + name_param + write,
                                PATCH_CONTENT_TYPES),
        }
    return paths


# the kind of serviceaccounts/token (not a served resource of its own)
TOKEN_REQUEST = Resource(AUTHN_GROUP, "v1", "TokenRequest", "tokenrequests", "tokenrequest", True)


def _create_only_paths(r: Resource, ref: Callable[[str], str]) -> dict[str, Any]:
    """A create-only kind's one operation: POST to its collection."""
    write = [_param("dryRun"), _param("fieldManager"), _param("fieldValidation")]
    ns_param = [_param("namespace", "path")] if r.namespaced else []
    base = f"/apis/{r.group}/{r.version}"
    coll = f"{base}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{base}/{r.plural}"
    suffix = r.kind + ("Namespaced" if r.namespaced else "")
    return {coll: {"post": _operation(r, "post", f"create{suffix}", ref(S.definition_name(r)), ns_param + write,
                                      ("application/json",))}}


def _token_request_paths(ref: Callable[[str], str]) -> dict[str, Any]:
    path = f"{SERVICE_ACCOUNTS.collection_path('{namespace}')}/{{name}}/token"
    params = [_param("namespace", "path"), _param("name", "path"), _param("dryRun"), _param("fieldManager"),
              _param("fieldValidation")]
    return {path: {"post": _operation(TOKEN_REQUEST, "post", "createNamespacedServiceAccountToken",
                                      ref(S.definition_name(TOKEN_REQUEST)), params, ("application/json",))}}


def _all_paths(r: Resource, ref: Callable[[str], str]) -> dict[str, Any]:
    if r in CREATE_ONLY:
        return _create_only_paths(r, ref)
    paths = _paths(r, ref)
    if r is SERVICE_ACCOUNTS:
        paths.update(_token_request_paths(ref))
    return paths


def _v3_key(r: Resource) -> str:
    return f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"


class OpenAPI:
    """The documents, built once; v3 documents are served by their index key."""

    def __init__(self, descriptions: dict[str, Any] | None = None) -> None:
        descriptions = load_descriptions() if descriptions is None else descriptions
        ref3: Callable[[str], str] = lambda name: f"#/components/schemas/{name}"
        defs3 = _definitions(ref3, descriptions, v3=True)
        self._v3: dict[str, dict[str, Any]] = {}
        for r in ALL + CREATE_ONLY:
            doc = self._v3.setdefault(_v3_key(r), {
                "openapi": "3.0.0", "info": {"title": "Kubernetes (kproxy)", "version": GIT_VERSION},
                "paths": {}, "components": {"schemas": defs3},
            })
            doc["paths"].update(_all_paths(r, ref3))
        self._hashes = {k: hashlib.sha512(json.dumps(v, sort_keys=True).encode()).hexdigest().upper()
                        for k, v in self._v3.items()}
        ref2: Callable[[str], str] = lambda name: f"#/definitions/{name}"
        paths2: dict[str, Any] = {}
        for r in ALL + CREATE_ONLY:
            paths2.update(_all_paths(r, ref2))
        self._v2 = {"swagger": "2.0", "info": {"title": "Kubernetes (kproxy)", "version": GIT_VERSION},
                    "paths": _v2_paths(paths2), "definitions": _definitions(ref2, descriptions, v3=False)}

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
