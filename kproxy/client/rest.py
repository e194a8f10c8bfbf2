"""An asyncio client for the Kubernetes REST API (kproxy's apiserver or a real one).

Guarantees:
- One aiohttp ClientSession per ApiClient, created lazily on the event loop that first uses it.
- Every failure answered by the server raises ApiError carrying the server's Status (a non-Status
  error body is wrapped into a Status with the HTTP code); every transport failure raises
  ApiConnectionError.
- `watch` yields (event_type, object) in server order, reading the newline-delimited JSON
  stream incrementally (lines may span chunks); it raises ApiError on an ERROR event or a
  failed response (code 410 means: relist), and simply ends when the server closes the stream.
"""
from __future__ import annotations

import asyncio
import base64
import json
from typing import Any, AsyncIterator

import aiohttp

from kproxy.api.resources import NAMESPACES, Resource
from kproxy.api.status import ApiError, status
from kproxy.client.errors import ApiConnectionError
from kproxy.client.kubeconfig import ClusterConfig, load_kubeconfig

PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}

_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    406: "NotAcceptable", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid",
    429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}


def _error_from_response(code: int, body: bytes) -> ApiError:
    """The ApiError for a failed HTTP response: the server's Status when it sent one."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict) and doc.get("kind") == "Status":
        doc.setdefault("code", code)
        return ApiError(doc)
    text = body.decode("utf-8", "replace").strip()[:500] or f"HTTP {code}"
    return ApiError(status(code, _REASONS.get(code, "Unknown"), text))


def _namespace_of(resource: Resource, obj: dict, namespace: str | None, default: str) -> str | None:
    if not resource.namespaced:
        return None
    return namespace or (obj.get("metadata") or {}).get("namespace") or default


def _name_of(obj: dict) -> str:
    name = (obj.get("metadata") or {}).get("name")
    if not name:
        raise ValueError("object has no metadata.name")
    return name


class ApiClient:
    """Asyncio Kubernetes REST client. Use `async with ApiClient(...)` or call close()."""

    def __init__(self, config: ClusterConfig, *, request_timeout: float = 30.0,
                 user_agent: str = "kproxy/0.1"):
        self.config = config
        self._request_timeout = request_timeout
        self._session: aiohttp.ClientSession | None = None
        self._ssl = config.ssl_context()
        self._headers = {"Accept": "application/json", "User-Agent": user_agent}
        if config.token:
            self._headers["Authorization"] = f"Bearer {config.token}"
        elif config.username is not None and config.password is not None:
            basic = base64.b64encode(f"{config.username}:{config.password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {basic}"

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None, **kwargs: Any) -> "ApiClient":
        return cls(load_kubeconfig(path, context), **kwargs)

    async def __aenter__(self) -> "ApiClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else False, limit=64)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, json_serialize=json.dumps,
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    # -- core request -------------------------------------------------------------------

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Any:
        """One request; returns the decoded JSON answer. Raises ApiError / ApiConnectionError."""
        url = self.config.server + path
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else None
        timeout = aiohttp.ClientTimeout(total=self._request_timeout)
        try:
            async with self._get_session().request(method, url, params=params, data=data,
                                                   headers=headers, timeout=timeout,
                                                   server_hostname=self.config.tls_server_name) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _error_from_response(resp.status, raw)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ApiConnectionError(f"{method} {url}: {exc.__class__.__name__}: {exc}") from exc
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(status(500, "InternalError", f"{method} {path}: response is not JSON")) from None

    # -- typed verbs ----------------------------------------------------------------------

    async def list(self, resource: Resource, namespace: str | None = None, label_selector: str | None = None,
                   field_selector: str | None = None, *, limit: int | None = None) -> dict:
        """The List object (metadata.resourceVersion set). With `limit`, pages are fetched
        with `continue` and joined; the result carries the first page's resourceVersion."""
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if limit:
            params["limit"] = str(limit)
        path = resource.collection_path(namespace if resource.namespaced else None)
        result = await self.request("GET", path, params=params)
        items = list(result.get("items") or [])
        cont = (result.get("metadata") or {}).get("continue")
        while limit and cont:
            page = await self.request("GET", path, params={**params, "continue": cont})
            items.extend(page.get("items") or [])
            cont = (page.get("metadata") or {}).get("continue")
        result["items"] = items
        if limit:
            (result.setdefault("metadata", {})).pop("continue", None)
        return result

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict:
        ns = self.config.namespace if resource.namespaced and not namespace else namespace
        return await self.request("GET", resource.object_path(name, ns if resource.namespaced else None))

    async def create(self, resource: Resource, obj: dict, namespace: str | None = None) -> dict:
        ns = _namespace_of(resource, obj, namespace, self.config.namespace)
        body = {"apiVersion": resource.group_version, "kind": resource.kind, **obj}
        return await self.request("POST", resource.collection_path(ns), body=body)

    async def update(self, resource: Resource, obj: dict, *, subresource: str | None = None) -> dict:
        """PUT the whole object (optimistic concurrency on its metadata.resourceVersion)."""
        ns = _namespace_of(resource, obj, None, self.config.namespace)
        path = resource.object_path(_name_of(obj), ns)
        if subresource:
            path += "/" + subresource
        body = {"apiVersion": resource.group_version, "kind": resource.kind, **obj}
        return await self.request("PUT", path, body=body)

    async def update_status(self, resource: Resource, obj: dict) -> dict:
        return await self.update(resource, obj, subresource="status")

    async def patch(self, resource: Resource, name: str, patch: Any, namespace: str | None = None,
                    patch_type: str = "merge", *, subresource: str | None = None) -> dict:
        try:
            content_type = PATCH_CONTENT_TYPES[patch_type]
        except KeyError:
            raise ValueError(f"unknown patch type {patch_type!r} (merge, strategic, json)") from None
        ns = (namespace or self.config.namespace) if resource.namespaced else None
        path = resource.object_path(name, ns)
        if subresource:
            path += "/" + subresource
        return await self.request("PATCH", path, body=patch, content_type=content_type)

    async def delete(self, resource: Resource, name: str, namespace: str | None = None, *,
                     resource_version: str | None = None, uid: str | None = None,
                     propagation_policy: str | None = None, grace_period_seconds: int | None = None) -> dict:
        """DELETE; returns the server's answer (the deleted object, the object marked for
        graceful deletion, or a Status). `resource_version` / `uid` become DeleteOptions
        preconditions; grace_period_seconds=0 deletes a scheduled pod at once."""
        ns = (namespace or self.config.namespace) if resource.namespaced else None
        body: dict[str, Any] | None = None
        preconditions = {k: v for k, v in (("resourceVersion", resource_version), ("uid", uid)) if v}
        if preconditions or propagation_policy or grace_period_seconds is not None:
            body = {"kind": "DeleteOptions", "apiVersion": "v1"}
            if preconditions:
                body["preconditions"] = preconditions
            if propagation_policy:
                body["propagationPolicy"] = propagation_policy
            if grace_period_seconds is not None:
                body["gracePeriodSeconds"] = int(grace_period_seconds)
        return await self.request("DELETE", resource.object_path(name, ns), body=body)

    async def finalize_namespace(self, namespace: dict) -> dict:
        """PUT /api/v1/namespaces/NAME/finalize with the namespace as given (its spec.finalizers)."""
        return await self.update(NAMESPACES, namespace, subresource="finalize")

    # -- watch ----------------------------------------------------------------------------

    async def watch(self, resource: Resource, namespace: str | None = None, resource_version: str | None = None,
                    label_selector: str | None = None, field_selector: str | None = None,
                    timeout_seconds: int | None = None, *,
                    allow_bookmarks: bool = True) -> AsyncIterator[tuple[str, dict]]:
        """Streams (event_type, object) from `resource_version`. See the module doc."""
        params: dict[str, str] = {"watch": "1"}
        if resource_version:
            params["resourceVersion"] = str(resource_version)
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if timeout_seconds:
            params["timeoutSeconds"] = str(int(timeout_seconds))
        url = self.config.server + resource.collection_path(namespace if resource.namespaced else None)
        # No total timeout: a watch lives as long as the server keeps it; the server ends it.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._request_timeout)
        streaming = False
        try:
            async with self._get_session().get(url, params=params, timeout=timeout,
                                               server_hostname=self.config.tls_server_name) as resp:
                if resp.status >= 400:
                    raise _error_from_response(resp.status, await resp.read())
                streaming = True
                buffer = b""
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        event = _decode_event(line)
                        if event is not None:
                            yield event
                event = _decode_event(buffer)  # a last line without its newline
                if event is not None:
                    yield event
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            if streaming:
                return  # the server ended the stream: the watch is over, the caller rewatches
            raise ApiConnectionError(f"watch {url}: {exc.__class__.__name__}: {exc}") from exc
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ApiConnectionError(f"watch {url}: {exc.__class__.__name__}: {exc}") from exc


def _decode_event(line: bytes) -> tuple[str, dict] | None:
    """One watch line -> (type, object); None for a blank line. ERROR events raise ApiError."""
    line = line.strip()
    if not line:
        return None
    try:
        event = json.loads(line)
        etype, obj = event["type"], event["object"]
    except (ValueError, KeyError, TypeError):
        raise ApiError(status(500, "InternalError", f"malformed watch event: {line[:200]!r}")) from None
    if etype == "ERROR":
        if isinstance(obj, dict) and obj.get("kind") == "Status":
            raise ApiError(obj)
        raise ApiError(status(500, "InternalError", f"watch ERROR event: {obj!r}"[:300]))
    return etype, obj
