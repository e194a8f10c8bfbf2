"""Lists as kube-apiserver's etcd3 storage serves them: `limit`/`continue` pages in key order,
continue tokens, `remainingItemCount`, and `resourceVersion`/`resourceVersionMatch`.

- A continue token is what upstream writes: unpadded URL-safe base64 of
  {"v": "meta.k8s.io/v1", "rv": <revision of the first page>, "start": <next key, relative
  to the list's key prefix>}. A token that does not decode is a 400.
- Every page of a paged list is served at the first page's revision (the store rewinds its
  retained history, Store.list_at), so the pages add up to one consistent list. When the
  store can no longer show that revision the answer is 410 Expired carrying a token with
  rv -1, which continues at the latest revision, as upstream does after a compaction.
- `resourceVersionMatch=Exact` (and the legacy form: a non-zero resourceVersion with a limit)
  serves exactly that revision (410 when the store cannot); `NotOlderThan`, the legacy form
  without a limit and "0" serve the latest state, which is never older. A revision the store
  has not reached yet is 504 "Too large resource version", as upstream.
"""
from __future__ import annotations

import base64
import binascii
import bisect
import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Mapping

from kproxy.api import status as st
from kproxy.api.resources import Resource
from kproxy.apiserver.objects import with_resource_version
from kproxy.apiserver.query import query_int, resource_version
from kproxy.store import base as sb

TOKEN_VERSION = "meta.k8s.io/v1"
LATEST = -1  # a token's rv for "continue at the latest revision" (after the snapshot expired)
EXACT, NOT_OLDER_THAN = "Exact", "NotOlderThan"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")

EXPIRED = "The resourceVersion for the provided list is too old."
CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start "
    "a new list without the continue parameter, or use the continue token in this response to "
    "retrieve the remainder of the results. Continuing with the provided token might result in an "
    "inconsistent list. Objects that were created, modified, or deleted between the time the first "
    "chunk was returned and now may show up in the list.")


@dataclass(frozen=True)
class ListOptions:
    limit: int | None = None  # page size; None: everything
    start: str = ""  # key (relative to the list's prefix) the page starts at
    token_rv: int | None = None  # the continue token's revision (LATEST: the current one)
    resource_version: int | None = None
    match: str = ""

    def exact_revision(self) -> int | None:
        """The revision this list must be served at, or None for the latest."""
        if self.token_rv is not None:
            return None if self.token_rv == LATEST else self.token_rv
        if self.resource_version is None:
            return None
        if self.match == EXACT or (self.match == "" and self.limit and self.resource_version > 0):
            return self.resource_version
        return None


def encode_continue(relative_key: str, revision: int) -> str:
    token = json.dumps({"v": TOKEN_VERSION, "rv": revision, "start": relative_key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[str, int]:
    """(relative start key, revision) of a continue token; anything else is a 400."""
    def invalid(why: str) -> st.ApiError:
        return st.bad_request(f"invalid continue token: continue key is not valid: {why}")

    if not _BASE64URL.fullmatch(token):
        raise invalid("illegal base64 data")
    try:
        fields = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise invalid(str(exc) or "illegal base64 data") from None
    if not isinstance(fields, dict):
        raise invalid("not a continue token")
    if fields.get("v") != TOKEN_VERSION:
        raise invalid(f"server does not recognize this encoded version {fields.get('v')!r}")
    rv, start = fields.get("rv"), fields.get("start")
    if not isinstance(rv, int) or isinstance(rv, bool) or rv == 0 or rv < LATEST:
        raise invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    if not isinstance(start, str) or not start:
        raise invalid("encoded start key empty")
    # the start key stays inside the list's prefix: no "..", no doubled or trailing "/"
    key = start if start.startswith("/") else "/" + start
    if posixpath.normpath(key) != key or key.startswith("//"):
        raise invalid(start)
    return key[1:], rv


def _forbidden(field: str, message: str) -> dict[str, str]:
    return {"reason": "FieldValueForbidden", "field": field, "message": f"Forbidden: {message}"}


def parse_list_options(query: Mapping[str, str]) -> ListOptions:
    """The paging and resourceVersion parameters of a list; bad ones raise a 400 (malformed
    values, tokens) or a 422 naming ListOptions (a combination upstream forbids)."""
    limit = query_int(query, "limit")
    rv = resource_version(query)
    match = query.get("resourceVersionMatch", "")
    token = query.get("continue", "")
    causes = []
    if match:
        if rv is None:
            causes.append(_forbidden("resourceVersionMatch",
                                     "resourceVersionMatch is forbidden unless resourceVersion is provided"))
        if token:
            causes.append(_forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"))
        if match not in (EXACT, NOT_OLDER_THAN):
            causes.append({"reason": "FieldValueNotSupported", "field": "resourceVersionMatch",
                           "message": f'Unsupported value: "{match}": supported values: "Exact", "NotOlderThan", ""'})
        if match == EXACT and rv == 0:
            causes.append(_forbidden("resourceVersionMatch", 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))
    if "sendInitialEvents" in query:
        causes.append(_forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"))
    if causes:
        summary = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
        raise st.ApiError(st.status(422, "Invalid", f'ListOptions.meta.k8s.io "" is invalid: {summary}',
                                    kind="ListOptions", name="", group="meta.k8s.io", causes=causes))
    start, token_rv = "", None
    if token:
        start, token_rv = decode_continue(token)
        if rv:
            raise st.bad_request("specifying resource version is not allowed when using continue")
    return ListOptions(limit if limit and limit > 0 else None, start, token_rv, rv, match)


def too_large_resource_version(wanted: int, current: int) -> st.ApiError:
    """504 for a revision the store has not reached (upstream's ResourceVersionTooLarge)."""
    return st.ApiError(st.status(
        504, "Timeout", f"Too large resource version: {wanted}, current: {current}",
        causes=[{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], retry_after=1))


def snapshot(store: sb.Store, prefix: str, options: ListOptions) -> tuple[list[sb.KeyValue], int]:
    """The keys under `prefix` at the revision `options` ask for, and that revision (blocking)."""
    wanted = options.exact_revision()
    if wanted is None:
        kvs, current = store.list(prefix)
        if options.resource_version is not None and options.resource_version > current:
            raise too_large_resource_version(options.resource_version, current)
        return kvs, current
    if wanted > store.revision:
        raise too_large_resource_version(wanted, store.revision)
    try:
        if wanted == store.revision:  # the common case: nothing written since the first page
            kvs, current = store.list(prefix)
            if current == wanted:
                return kvs, current
        return store.list_at(prefix, wanted), wanted
    except sb.Gone:
        if options.token_rv is None:
            raise st.gone(EXPIRED) from None
        status = st.gone(CONTINUE_EXPIRED).status
        status["metadata"] = {"continue": encode_continue(options.start, LATEST)}
        raise st.ApiError(status) from None


def selected(value: dict[str, Any], label_selector: Any, field_selector: Any) -> bool:
    """Whether a stored object matches the list's selectors (None: no selector)."""
    if label_selector is not None and not label_selector.matches((value.get("metadata") or {}).get("labels")):
        return False
    return field_selector is None or field_selector.matches(value)


def list_page(store: sb.Store, resource: Resource, namespace: str | None, label_selector: Any,
              field_selector: Any, options: ListOptions) -> dict[str, Any]:
    """One page of a list (all of it without a limit) as the List object (blocking)."""
    prefix = resource.store_prefix(namespace)
    kvs, revision = snapshot(store, prefix, options)
    keys = [kv.key for kv in kvs]
    index = bisect.bisect_left(keys, prefix + options.start)
    items: list[dict[str, Any]] = []
    last = len(kvs) - 1
    while index < len(kvs):
        kv = kvs[index]
        if selected(kv.value, label_selector, field_selector):
            items.append(with_resource_version(kv.value, kv.mod_revision))
            if options.limit is not None and len(items) >= options.limit:
                break
        index += 1
    metadata: dict[str, Any] = {"resourceVersion": str(revision)}
    if index < last:
        metadata["continue"] = encode_continue(kvs[index].key[len(prefix):] + "\x00", revision)
        if label_selector is None and field_selector is None:
            metadata["remainingItemCount"] = last - index
    return {"kind": resource.list_kind, "apiVersion": resource.group_version, "metadata": metadata, "items": items}
