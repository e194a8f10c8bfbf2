"""Server-side field validation (fieldValidation=Strict|Warn|Ignore)."""
from __future__ import annotations

from typing import Any

from kproxy.api import status as st
from kproxy.api.resources import Resource


class FieldChecker:
    def __init__(self, openapi: Any = None):
        self.openapi = openapi

    def check(self, resource: Resource, body: Any, raw: bytes | None, mode: str | None,
              patch: Any = None) -> list[str]:
        if mode not in (None, "", "Strict", "Warn", "Ignore"):
            raise st.bad_request(f'fieldValidation must be one of "Ignore", "Warn" or "Strict", got {mode!r}')
        return []
