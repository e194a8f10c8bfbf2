"""OpenAPI v2 and v3 documents for the kinds kproxy serves."""
from __future__ import annotations

from typing import Any

from kproxy.api import status as st


class OpenAPI:
    def v2(self) -> dict[str, Any]:
        raise st.ApiError(st.status(404, "NotFound", "the server could not find the requested resource"))

    def v3_index(self) -> dict[str, Any]:
        raise st.ApiError(st.status(404, "NotFound", "the server could not find the requested resource"))

    def v3(self, path: str) -> dict[str, Any] | None:
        return None
