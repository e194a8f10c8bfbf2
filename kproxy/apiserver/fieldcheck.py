"""Server-side field validation of request bodies against kproxy.apiserver.schema.

As in Kubernetes:
- a value of the wrong JSON type is a decoding error: 400 BadRequest whatever the mode;
- unknown and duplicate fields depend on ?fieldValidation=: "Strict" -> 400 BadRequest
  ("strict decoding error: unknown field \"spec.foo\""), "Warn" (the default) -> the request
  succeeds with one Warning header per problem, "Ignore" -> nothing.
Subtrees the schema marks OPEN are not checked.
"""
from __future__ import annotations

import json
from typing import Any

from kproxy.api import status as st
from kproxy.api.resources import Resource
from kproxy.apiserver import schema as S

MODES = ("Ignore", "Warn", "Strict")
_GO_TYPES = {"string": "string", "integer": "int32", "boolean": "bool", "number": "float64",
             "int-or-string": "intstr.IntOrString", "quantity": "resource.Quantity"}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


class _Walk:
    def __init__(self) -> None:
        self.unknown: list[str] = []
        self.type_errors: list[str] = []

    def check(self, t: S.Type, value: Any, path: str) -> None:
        if value is None:
            return  # null decodes to the zero value
        if isinstance(t, S.Ref):
            t = S.DEFINITIONS[t.name]
        if isinstance(t, S.Open):
            return
        if isinstance(t, S.Scalar):
            if not _scalar_ok(t, value):
                go = _GO_TYPES.get(t.kind, t.kind)
                if t.fmt == "int64":
                    go = "int64"
                self.type_errors.append(f"cannot unmarshal {_json_type(value)} into field {path} of type {go}")
            return
        if isinstance(t, S.MapOf):
            if not isinstance(value, dict):
                self.type_errors.append(f"cannot unmarshal {_json_type(value)} into field {path} of type map")
                return
            for k, v in value.items():
                self.check(t.value, v, f"{path}.{k}" if path else k)
            return
        if isinstance(t, S.ListOf):
            if not isinstance(value, list):
                self.type_errors.append(f"cannot unmarshal {_json_type(value)} into field {path} of type array")
                return
            for i, item in enumerate(value):
                self.check(t.item, item, f"{path}[{i}]")
            return
        if isinstance(t, S.Struct):
            if not isinstance(value, dict):
                self.type_errors.append(f"cannot unmarshal {_json_type(value)} into field {path} of type object")
                return
            for k, v in value.items():
                sub = t.fields.get(k)
                child = f"{path}.{k}" if path else k
                if sub is None:
                    self.unknown.append(child)
                else:
                    self.check(sub, v, child)


def _scalar_ok(t: S.Scalar, value: Any) -> bool:
    if t.kind == "string":
        return isinstance(value, str)
    if t.kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (
            isinstance(value, float) and value.is_integer())
    if t.kind == "boolean":
        return isinstance(value, bool)
    if t.kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t.kind == "int-or-string":
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    if t.kind == "quantity":
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    return True


def duplicate_fields(raw: bytes) -> list[str]:
    """Keys that appear twice in one JSON object of `raw` (JSON only; YAML loaders reject them)."""
    dups: list[str] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                dups.append(k)
            seen.add(k)
        return dict(pairs)

    try:
        json.loads(raw, object_pairs_hook=hook)
    except ValueError:
        return []
    return dups


class FieldChecker:
    def check(self, resource: Resource, body: Any, raw: bytes | None, mode: str | None) -> list[str]:
        """Raises ApiError 400 for type errors (always) and, in Strict mode, unknown or
        duplicate fields; returns the warnings to send in Warn mode."""
        mode = mode or "Warn"
        if mode not in MODES:
            raise st.bad_request(f'fieldValidation must be one of "Ignore", "Warn" or "Strict", got {mode!r}')
        if not isinstance(body, dict):
            return []  # the registry answers a non-object body
        walk = _Walk()
        walk.check(S.kind_schema(resource), body, "")
        if walk.type_errors:
            raise st.bad_request(f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                                 f'{resource.kind}: json: {walk.type_errors[0]}')
        if mode == "Ignore":
            return []
        problems = [f'unknown field "{p}"' for p in walk.unknown]
        if raw is not None:
            problems += [f'duplicate field "{k}"' for k in duplicate_fields(raw)]
        if problems and mode == "Strict":
            raise st.bad_request("strict decoding error: " + ", ".join(problems))
        return problems
