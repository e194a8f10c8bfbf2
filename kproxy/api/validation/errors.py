"""The field-error collector behind every validator: Kubernetes' cause shape
(reason, field, message) and typed access that reports wrong JSON types once."""
from __future__ import annotations

import json
from typing import Any, Mapping

from kproxy.api import names

Cause = dict[str, str]

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
DUPLICATE = "FieldValueDuplicate"
NOT_SUPPORTED = "FieldValueNotSupported"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
TYPE_INVALID = "FieldValueTypeInvalid"
NOT_FOUND = "FieldValueNotFound"


def _show(value: Any) -> str:
    """A value as it appears in an error body: strings quoted, numbers bare, objects as JSON."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return "<value omitted>"


class FieldErrors:
    """Collects field errors in Kubernetes' cause shape."""

    def __init__(self) -> None:
        self.causes: list[Cause] = []

    def _add(self, reason: str, field: str, message: str) -> None:
        self.causes.append({"reason": reason, "field": field, "message": message})

    def required(self, field: str, detail: str = "") -> None:
        self._add(REQUIRED, field, "Required value" + (f": {detail}" if detail else ""))

    def invalid(self, field: str, value: Any, detail: str) -> None:
        self._add(INVALID, field, f"Invalid value: {_show(value)}: {detail}")

    def invalid_all(self, field: str, value: Any, details: list[str]) -> None:
        for d in details:
            self.invalid(field, value, d)

    def not_supported(self, field: str, value: Any, supported: tuple[str, ...]) -> None:
        opts = ", ".join(json.dumps(s) for s in supported)
        self._add(NOT_SUPPORTED, field, f"Unsupported value: {_show(value)}: supported values: {opts}")

    def duplicate(self, field: str, value: Any) -> None:
        self._add(DUPLICATE, field, f"Duplicate value: {_show(value)}")

    def forbidden(self, field: str, detail: str) -> None:
        self._add(FORBIDDEN, field, f"Forbidden: {detail}")

    def too_long(self, field: str, max_len: int) -> None:
        self._add(TOO_LONG, field, f"Too long: may not be more than {max_len} bytes")

    def too_many(self, field: str, actual: int, max_items: int) -> None:
        self._add(TOO_MANY, field, f"Too many: {actual}: must have at most {max_items} items")

    def type_invalid(self, field: str, value: Any, detail: str) -> None:
        self._add(TYPE_INVALID, field, f"Invalid value: {_show(value)}: {detail}")

    def not_found(self, field: str, value: Any) -> None:
        self._add(NOT_FOUND, field, f"Not found: {_show(value)}")

    # --- typed access: a wrong JSON type is reported once and read as "absent" ---------------

    def map(self, value: Any, field: str) -> dict[str, Any]:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return dict(value)
        self.type_invalid(field, value, "must be of type object")
        return {}

    def list(self, value: Any, field: str) -> list[Any]:
        if value is None:
            return []
        if isinstance(value, list):
            return value
        self.type_invalid(field, value, "must be of type array")
        return []

    def string(self, value: Any, field: str) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        self.type_invalid(field, value, "must be of type string")
        return ""

    def integer(self, value: Any, field: str) -> int | None:
        if value is None:
            return None
        if names.is_int(value):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        self.type_invalid(field, value, "must be of type integer")
        return None

    def boolean(self, value: Any, field: str) -> bool | None:
        if value is None:
            return None
        if isinstance(value, bool):
            return value
        self.type_invalid(field, value, "must be of type boolean")
        return None

    def string_map(self, value: Any, field: str) -> dict[str, str]:
        out = {}
        for k, v in self.map(value, field).items():
            if not isinstance(v, str):
                self.type_invalid(f"{field}[{k}]", v, "must be of type string")
                continue
            out[k] = v
        return out

