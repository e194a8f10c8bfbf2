"""Query parameters of API requests, parsed one way for everyone (authorization and the
handlers must agree on what a request asks for). Pure; bad values raise a 400 ApiError."""
from __future__ import annotations

from typing import Any, Mapping

from kproxy.api import status as st

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
RESOURCE_VERSION_MAX = INT64_MAX  # the store keeps revisions as SQLite integers


def query_bool(value: str | None) -> bool:
    """A boolean parameter as kube-apiserver converts it: absent, "0" and "false" (any case)
    are false; any other value, "yes" and "" included, is true."""
    return value is not None and value != "0" and value.lower() != "false"


def watch_requested(query: Mapping[str, str]) -> bool:
    return query_bool(query.get("watch"))


def query_int(query: Mapping[str, Any], name: str) -> int | None:
    """An int64 parameter; absent or empty is None."""
    raw = query.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise st.bad_request(f"invalid {name} {raw!r}: must be an integer") from None
    if not INT64_MIN <= value <= INT64_MAX:
        raise st.bad_request(f"invalid {name} {raw!r}: out of the int64 range")
    return value


def resource_version(query: Mapping[str, Any]) -> int | None:
    """The resourceVersion parameter: None when absent or empty, else a non-negative integer
    no larger than a store revision can be."""
    raw = query.get("resourceVersion")
    if raw in (None, ""):
        return None
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit()) or int(raw) > RESOURCE_VERSION_MAX:
        raise st.bad_request(f"invalid resourceVersion {raw!r}: must be a non-negative integer")
    return int(raw)
