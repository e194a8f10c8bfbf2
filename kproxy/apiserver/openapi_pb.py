"""The OpenAPI v2 document in protobuf (Accept application/com.github.proto-openapi.spec.v2@v1.0+protobuf),
as gnostic's openapi_v2.Document, which kubectl fetches to validate `kind: List` manifests.

The messages used, with their field numbers from google/gnostic's openapiv2/OpenAPIv2.proto as
facts (oneof members are plain optional fields on the wire). Vendor extensions, defaults and
enums are gnostic `Any` values carrying their YAML text (JSON is YAML).
"""
from __future__ import annotations

import json
from typing import Any

from kproxy.apiserver import protobuf

PROTOBUF_PREFIX = "application/com.github.proto-openapi.spec.v2"  # Accept: ...v2@v1.0+protobuf
# the answer's Content-Type, as kube-openapi writes it: "@" is not valid in a Go media type
MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"

GNOSTIC: dict[str, str] = {
    "gnostic.Document": (
        "swagger=1:string info=2:gnostic.Info host=3:string base_path=4:string schemes=5:[]string "
        "consumes=6:[]string produces=7:[]string paths=8:gnostic.Paths definitions=9:gnostic.Definitions "
        "vendor_extension=16:[]gnostic.NamedAny"),
    "gnostic.Info": "title=1:string version=2:string description=3:string vendor_extension=7:[]gnostic.NamedAny",
    "gnostic.Any": "yaml=2:string",
    "gnostic.NamedAny": "name=1:string value=2:gnostic.Any",
    "gnostic.Paths": "vendor_extension=1:[]gnostic.NamedAny path=2:[]gnostic.NamedPathItem",
    "gnostic.NamedPathItem": "name=1:string value=2:gnostic.PathItem",
    "gnostic.PathItem": (
        "_ref=1:string get=2:gnostic.Operation put=3:gnostic.Operation post=4:gnostic.Operation "
        "delete=5:gnostic.Operation options=6:gnostic.Operation head=7:gnostic.Operation "
        "patch=8:gnostic.Operation parameters=9:[]gnostic.ParametersItem vendor_extension=10:[]gnostic.NamedAny"),
    "gnostic.Operation": (
        "tags=1:[]string summary=2:string description=3:string operation_id=5:string produces=6:[]string "
        "consumes=7:[]string parameters=8:[]gnostic.ParametersItem responses=9:gnostic.Responses "
        "schemes=10:[]string deprecated=11:bool vendor_extension=13:[]gnostic.NamedAny"),
    "gnostic.ParametersItem": "parameter=1:gnostic.Parameter json_reference=2:gnostic.JsonReference",
    "gnostic.JsonReference": "_ref=1:string description=2:string",
    "gnostic.Parameter": "body_parameter=1:gnostic.BodyParameter non_body_parameter=2:gnostic.NonBodyParameter",
    "gnostic.BodyParameter": (
        "description=1:string name=2:string in=3:string required=4:bool schema=5:gnostic.Schema "
        "vendor_extension=6:[]gnostic.NamedAny"),
    "gnostic.NonBodyParameter": (
        "header_parameter_sub_schema=1:gnostic.HeaderParameterSubSchema "
        "query_parameter_sub_schema=3:gnostic.QueryParameterSubSchema "
        "path_parameter_sub_schema=4:gnostic.PathParameterSubSchema"),
    "gnostic.HeaderParameterSubSchema": (
        "required=1:bool in=2:string description=3:string name=4:string type=5:string format=6:string "
        "unique_items=19:bool vendor_extension=22:[]gnostic.NamedAny"),
    "gnostic.QueryParameterSubSchema": (
        "required=1:bool in=2:string description=3:string name=4:string allow_empty_value=5:bool "
        "type=6:string format=7:string unique_items=20:bool vendor_extension=23:[]gnostic.NamedAny"),
    "gnostic.PathParameterSubSchema": (
        "required=1:bool in=2:string description=3:string name=4:string type=5:string format=6:string "
        "unique_items=19:bool vendor_extension=22:[]gnostic.NamedAny"),
    "gnostic.Responses": "response_code=1:[]gnostic.NamedResponseValue vendor_extension=2:[]gnostic.NamedAny",
    "gnostic.NamedResponseValue": "name=1:string value=2:gnostic.ResponseValue",
    "gnostic.ResponseValue": "response=1:gnostic.Response json_reference=2:gnostic.JsonReference",
    "gnostic.Response": "description=1:string schema=2:gnostic.SchemaItem vendor_extension=5:[]gnostic.NamedAny",
    "gnostic.SchemaItem": "schema=1:gnostic.Schema",
    "gnostic.Schema": (
        "_ref=1:string format=2:string title=3:string description=4:string default=5:gnostic.Any "
        "multiple_of=6:double maximum=7:double exclusive_maximum=8:bool minimum=9:double "
        "exclusive_minimum=10:bool max_length=11:int64 min_length=12:int64 pattern=13:string "
        "max_items=14:int64 min_items=15:int64 unique_items=16:bool max_properties=17:int64 "
        "min_properties=18:int64 required=19:[]string enum=20:[]gnostic.Any "
        "additional_properties=21:gnostic.AdditionalPropertiesItem type=22:gnostic.TypeItem "
        "items=23:gnostic.ItemsItem all_of=24:[]gnostic.Schema properties=25:gnostic.Properties "
        "discriminator=26:string read_only=27:bool example=30:gnostic.Any vendor_extension=31:[]gnostic.NamedAny"),
    "gnostic.AdditionalPropertiesItem": "schema=1:gnostic.Schema boolean=2:bool",
    "gnostic.TypeItem": "value=1:[]string",
    "gnostic.ItemsItem": "schema=1:[]gnostic.Schema",
    "gnostic.Properties": "additional_properties=1:[]gnostic.NamedSchema",
    "gnostic.NamedSchema": "name=1:string value=2:gnostic.Schema",
    "gnostic.Definitions": "additional_properties=1:[]gnostic.NamedSchema",
}
CLASSES = protobuf.build_classes({name: protobuf.parse_fields(spec) for name, spec in GNOSTIC.items()}, ("gnostic",))

# JSON keys that map one to one onto a message's scalar or repeated-scalar field
_PLAIN = {
    "gnostic.Schema": {"$ref": "_ref", "format": "format", "title": "title", "description": "description",
                       "multipleOf": "multiple_of", "maximum": "maximum", "exclusiveMaximum": "exclusive_maximum",
                       "minimum": "minimum", "exclusiveMinimum": "exclusive_minimum", "maxLength": "max_length",
                       "minLength": "min_length", "pattern": "pattern", "maxItems": "max_items",
                       "minItems": "min_items", "uniqueItems": "unique_items", "maxProperties": "max_properties",
                       "minProperties": "min_properties", "required": "required", "discriminator": "discriminator",
                       "readOnly": "read_only"},
    "gnostic.Operation": {"tags": "tags", "summary": "summary", "description": "description",
                          "operationId": "operation_id", "produces": "produces", "consumes": "consumes",
                          "schemes": "schemes", "deprecated": "deprecated"},
    "gnostic.BodyParameter": {"description": "description", "name": "name", "in": "in", "required": "required"},
    "sub": {"required": "required", "in": "in", "description": "description", "name": "name", "type": "type",
            "format": "format", "uniqueItems": "unique_items"},
}
_OPERATIONS = ("get", "put", "post", "delete", "options", "head", "patch")


def _any(msg: Any, value: Any) -> None:
    msg.yaml = json.dumps(value, separators=(",", ":")) + "\n"


def _extensions(target: Any, obj: dict[str, Any]) -> None:
    for key, value in obj.items():
        if key.startswith("x-"):
            named = target.vendor_extension.add(name=key)
            _any(named.value, value)


def _plain(msg: Any, kind: str, obj: dict[str, Any]) -> None:
    for key, attr in _PLAIN[kind].items():
        value = obj.get(key)
        if value is None:
            continue
        if isinstance(value, list):
            getattr(msg, attr).extend(value)
        else:
            setattr(msg, attr, value)


def _schema(msg: Any, obj: dict[str, Any]) -> None:
    _plain(msg, "gnostic.Schema", obj)
    if "type" in obj:
        msg.type.value.extend(obj["type"] if isinstance(obj["type"], list) else [obj["type"]])
    for key in ("default", "example"):
        if key in obj:
            _any(getattr(msg, key), obj[key])
    for value in obj.get("enum", ()):
        _any(msg.enum.add(), value)
    extra = obj.get("additionalProperties")
    if isinstance(extra, bool):
        msg.additional_properties.boolean = extra
    elif isinstance(extra, dict):
        _schema(msg.additional_properties.schema, extra)
    items = obj.get("items")
    for item in (items if isinstance(items, list) else [items] if isinstance(items, dict) else []):
        _schema(msg.items.schema.add(), item)
    for part in obj.get("allOf", ()):
        _schema(msg.all_of.add(), part)
    for name, prop in (obj.get("properties") or {}).items():
        _schema(msg.properties.additional_properties.add(name=name).value, prop)
    _extensions(msg, obj)


def _parameter(msg: Any, obj: dict[str, Any]) -> None:
    if "$ref" in obj:
        msg.json_reference._ref = obj["$ref"]
        return
    where = obj.get("in")
    if where == "body":
        body = msg.parameter.body_parameter
        _plain(body, "gnostic.BodyParameter", obj)
        _schema(body.schema, obj.get("schema") or {})
        _extensions(body, obj)
        return
    sub = msg.parameter.non_body_parameter
    target = {"query": sub.query_parameter_sub_schema, "path": sub.path_parameter_sub_schema,
              "header": sub.header_parameter_sub_schema}.get(where)
    if target is not None:
        _plain(target, "sub", obj)
        _extensions(target, obj)


def _operation(msg: Any, obj: dict[str, Any]) -> None:
    _plain(msg, "gnostic.Operation", obj)
    for p in obj.get("parameters", ()):
        _parameter(msg.parameters.add(), p)
    for code, response in (obj.get("responses") or {}).items():
        value = msg.responses.response_code.add(name=str(code)).value
        if "$ref" in response:
            value.json_reference._ref = response["$ref"]
            continue
        value.response.description = response.get("description", "")
        if "schema" in response:
            _schema(value.response.schema.schema, response["schema"])
    _extensions(msg, obj)


def encode(doc: dict[str, Any]) -> bytes:
    """The gnostic openapi_v2.Document of a Swagger 2.0 document (JSON form)."""
    msg = CLASSES["gnostic.Document"](swagger=doc.get("swagger", "2.0"))
    info = doc.get("info") or {}
    msg.info.title, msg.info.version = info.get("title", ""), info.get("version", "")
    for key in ("consumes", "produces", "schemes"):
        getattr(msg, key).extend(doc.get(key, ()))
    for path, item in (doc.get("paths") or {}).items():
        value = msg.paths.path.add(name=path).value
        for op in _OPERATIONS:
            if op in item:
                _operation(getattr(value, op), item[op])
        for p in item.get("parameters", ()):
            _parameter(value.parameters.add(), p)
    for name, definition in (doc.get("definitions") or {}).items():
        _schema(msg.definitions.additional_properties.add(name=name).value, definition)
    _extensions(msg, doc)
    return msg.SerializeToString()
