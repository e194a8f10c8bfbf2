"""Kubernetes `Status` objects and the one exception type that carries them.

The apiserver raises ApiError anywhere in request handling and turns it into a Status response;
the client raises ApiError when a server answers with a Status failure. Reasons and codes
follow k8s.io/apimachinery/pkg/apis/meta/v1 (StatusReason).
"""
from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failed API call: `status` is the Status object, `code` its HTTP code."""

    def __init__(self, status: dict[str, Any]):
        super().__init__(status.get("message", ""))
        self.status = status

    @property
    def code(self) -> int:
        return int(self.status.get("code", 500))

    @property
    def reason(self) -> str:
        return str(self.status.get("reason", ""))

    @property
    def causes(self) -> list[dict[str, Any]]:
        return list((self.status.get("details") or {}).get("causes") or [])

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.status.get('message', '')}"


def status(code: int, reason: str, message: str, *, kind: str | None = None, name: str | None = None,
           group: str | None = None, causes: list[dict[str, Any]] | None = None,
           retry_after: int | None = None) -> dict[str, Any]:
    """A failure Status object."""
    # the field order of upstream's serialisation (clients compare bodies byte for byte)
    obj: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    details: dict[str, Any] = {}
    if name is not None:
        details["name"] = name
    if group:
        details["group"] = group
    if kind is not None:
        details["kind"] = kind
    if causes:
        details["causes"] = causes
    if retry_after is not None:
        details["retryAfterSeconds"] = retry_after
    if details:
        obj["details"] = details
    obj["code"] = code
    return obj


def success(kind: str | None = None, name: str | None = None, group: str | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name is not None:
        details["name"] = name
    if group:
        details["group"] = group
    if kind is not None:
        details["kind"] = kind
    obj: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        obj["details"] = details
    return obj


def not_found(plural: str, name: str, group: str = "") -> ApiError:
    res = f"{plural}.{group}" if group else plural
    return ApiError(status(404, "NotFound", f'{res} "{name}" not found', kind=plural, name=name, group=group))


def already_exists(plural: str, name: str, group: str = "") -> ApiError:
    res = f"{plural}.{group}" if group else plural
    return ApiError(status(409, "AlreadyExists", f'{res} "{name}" already exists', kind=plural, name=name, group=group))


def conflict(plural: str, name: str, detail: str, group: str = "") -> ApiError:
    res = f"{plural}.{group}" if group else plural
    msg = f'Operation cannot be fulfilled on {res} "{name}": {detail}'
    return ApiError(status(409, "Conflict", msg, kind=plural, name=name, group=group))


def invalid(kind: str, name: str, causes: list[dict[str, Any]], group: str = "") -> ApiError:
    """422 Invalid; each cause is {"reason": "FieldValueInvalid", "field": ..., "message": ...}."""
    summary = ", ".join(f"{c.get('field', '')}: {c.get('message', '')}" for c in causes)
    msg = f'{kind} "{name}" is invalid: {summary}' if summary else f'{kind} "{name}" is invalid'
    return ApiError(status(422, "Invalid", msg, kind=kind, name=name, group=group, causes=causes))


def bad_request(message: str) -> ApiError:
    return ApiError(status(400, "BadRequest", message))


def forbidden(message: str, kind: str | None = None, name: str | None = None) -> ApiError:
    return ApiError(status(403, "Forbidden", message, kind=kind, name=name))


def gone(message: str) -> ApiError:
    """410 Gone with reason Expired: the requested resourceVersion is too old; relist."""
    return ApiError(status(410, "Expired", message))


def method_not_allowed(message: str) -> ApiError:
    return ApiError(status(405, "MethodNotAllowed", message))


def unsupported_media_type(message: str) -> ApiError:
    return ApiError(status(415, "UnsupportedMediaType", message))


def internal(message: str) -> ApiError:
    return ApiError(status(500, "InternalError", message))


def too_large(message: str) -> ApiError:
    """413 RequestEntityTooLarge: a body, patch or resulting object over a limit."""
    return ApiError(status(413, "RequestEntityTooLarge", message))


def too_many_requests(message: str, retry_after: int = 1) -> ApiError:
    """429 TooManyRequests: the server is at a bound; the client retries after `retry_after` s."""
    return ApiError(status(429, "TooManyRequests", message, retry_after=retry_after))
