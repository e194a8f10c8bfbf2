"""Server-side printing: meta.k8s.io/v1 Table responses for `kubectl get` (pure)."""
from __future__ import annotations

from typing import Any

from kproxy.api.resources import Resource


def wants_table(accept: str) -> bool:
    """True when the first acceptable media type the client lists is a Table."""
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in part.split(";")[1:] if "=" in p}
        if params.get("as") == "Table":
            return True
        if part.strip():
            return False
    return False


class TableRenderer:
    def render(self, resource: Resource, obj: dict[str, Any], include_object: str = "Metadata") -> dict[str, Any]:
        return obj
