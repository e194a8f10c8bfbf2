"""HTTP handlers for the resource REST API: CRUD, patch, status/finalize subresources,
deletecollection and watch streams. Blocking registry work runs on executors (writes on the
writer pool, reads on the reader pool), never on the event loop."""
from __future__ import annotations

import asyncio
import collections
import functools
import json
import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web

from kproxy.api import status as st
from kproxy.api.resources import EVICTION_SUBRESOURCE, Resource
from kproxy.apiserver import binding, eviction, negotiate, paging, paths, propagation, protobuf, watch
from kproxy.apiserver.bodies import BodyDecoder, decode_json, refuse_unrepresentable
from kproxy.apiserver.bodies import decode as decode_body
from kproxy.apiserver.query import query_bool, query_int, resource_version, watch_requested
from kproxy.apiserver.deps import Deps
from kproxy.apiserver.registry import DeleteOptions, Registry
from kproxy.apiserver.scale import ScaleSubresource
from kproxy.apiserver.fieldcheck import FieldChecker
from kproxy.apiserver.auth.attributes import RequestAttributes
from kproxy.apiserver.auth.rbac import forbidden_message
from kproxy.apiserver.managers import write_manager
from kproxy.apiserver.tables import TableRenderer
from kproxy.apiserver.watchframe import WatchFramer, WatchRequest
from kproxy.store import base as sb

log = logging.getLogger(__name__)

PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
}
APPLY_PATCH = "application/apply-patch+yaml"
BODY_TYPES = ("application/json", "application/yaml", protobuf.MEDIA_TYPE)
# Kinds whose DELETE answers with the deleted object rather than a Status, as in Kubernetes.
RETURNS_DELETED_OBJECT = {("", "pods"), ("", "services"), ("", "serviceaccounts"), ("", "resourcequotas")}
# below asyncio's default write high-water mark (64 KiB) and aiohttp's drain threshold
WRITE_FAST_LIMIT = 32 * 1024
ENCODE_CACHE_SIZE = 4096  # object versions whose watch encoding is shared between watchers


@dataclass(frozen=True)
class RestSettings:
    watch_queue_limit: int = 10000
    bookmark_interval: float = 10.0
    idle_check_interval: float = 1.0
    write_timeout: float = 60.0  # a watch client that reads nothing for this long is dropped
    max_watches_per_user: int = 250  # open watches one identity may hold; more is 429


def warning_header(text: str) -> str:
    """A Warning header value as Kubernetes sends it: code 299, agent "-", quoted text. A
    character a header cannot carry (control, non-ASCII: the text may quote a client's field
    name) is written as \\uXXXX, so a hostile field name cannot break the response."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    quoted = "".join(c if " " <= c <= "~" else f"\\u{ord(c):04x}" for c in quoted)
    return f'299 - "{quoted}"'


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=dumps(obj), status=status, content_type="application/json", headers=headers)


def object_response(request: web.Request, obj: Any, status: int = 200) -> web.Response:
    """An object (or Status, e.g. an error) as is, in the encoding the request's Accept header
    prefers among those that can carry it (JSON when none can: errors are always answered)."""
    accept = request.headers.get("Accept", "")
    negotiated = request.get(NEGOTIATED)
    if negotiated is None or negotiated.form:
        try:
            negotiated = negotiate.negotiate(accept, negotiate.OBJECT)
        except st.ApiError:
            negotiated = negotiate.Negotiated()
    try:
        body, media_type = negotiate.encode(negotiate.Negotiated(negotiated.media_type), obj, accept)
    except st.ApiError:
        body, media_type = dumps(obj).encode(), negotiate.JSON
    return web.Response(body=body, status=status, content_type=media_type)


def _content_type(request: web.Request, default: str = "application/json") -> str:
    """The request's media type; a body without Content-Type is JSON, as the official Python
    client sends it."""
    if "Content-Type" not in request.headers:
        return default
    return (request.content_type or default).lower()


# request key under which _create leaves the created object's name (generateName resolved)
CREATED_NAME = "kproxy.created_name"
# request key under which the auth middleware leaves the user the request acts as
REQUEST_USER = "kproxy.user"
# request key under which handle() leaves what the response is encoded as (Accept)
NEGOTIATED = "kproxy.negotiated"


class RestHandler:
    def __init__(self, registry: Registry, deps: Deps, reads: Executor, writes: Executor,
                 settings: RestSettings, fields: FieldChecker, tables: TableRenderer,
                 bodies: BodyDecoder | None = None):
        self.registry = registry
        self.bodies = bodies or BodyDecoder()
        self.deps = deps
        self.reads = reads
        self.writes = writes
        self.settings = settings
        self.fields = fields
        self.tables = tables
        self.scales = ScaleSubresource(registry)
        self.evictions = eviction.Evictions(registry)
        self._watch_queues: set[watch.WatchQueue] = set()
        self._waker: watch.Waker | None = None  # made on the loop by the first watch
        self._watches_by_user: collections.Counter[str] = collections.Counter()
        self._encode_cache: collections.OrderedDict[tuple[int, str, bool], str | bytes] = collections.OrderedDict()
        self._closing = False
        # checks of an object about to be written, given the acting user (escalation
        # prevention): guard(user, resource, namespace, obj) raises ApiError; blocking
        self.write_guards: list[Callable[[Any, Resource, str | None, Any], None]] = []
        # authorize(user, RequestAttributes) -> bool, set by the server: an apply that creates
        # its object needs "create" too, as in kube-apiserver; blocking
        self.authorize: Callable[[Any, RequestAttributes], bool] | None = None
        # pods/log, pods/exec and pods/portforward (kproxy.apiserver.podproxy.PodProxy), set by the server
        self.pod_proxy: Any = None

    async def _read(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.reads, functools.partial(fn, *args, **kwargs))

    async def _write(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self.writes, functools.partial(fn, *args, **kwargs))
        except sb.TooLarge as exc:
            raise st.too_large(f"the resulting object is too large: {exc}") from None

    def _encoded(self, key: tuple[int, str], obj: dict[str, Any]) -> str:
        """JSON of an object version, encoded once for all watchers that receive it (the
        object at one revision of one key is the same for every watcher)."""
        return self._cached(key, obj, False)

    def _encoded_protobuf(self, key: tuple[int, str], obj: dict[str, Any]) -> bytes:
        """The protobuf form of an object version, shared between watchers as `_encoded`."""
        return self._cached(key, obj, True)

    def _cached(self, key: tuple[int, str], obj: dict[str, Any], as_protobuf: bool) -> Any:
        cache_key = (*key, as_protobuf)
        text = self._encode_cache.get(cache_key)
        if text is None:
            text = protobuf.encode(obj) if as_protobuf else dumps(obj)
            self._encode_cache[cache_key] = text
            if len(self._encode_cache) > ENCODE_CACHE_SIZE:
                self._encode_cache.popitem(last=False)
        return text

    def close_watches(self) -> None:
        """Ends every open watch stream (server shutdown)."""
        self._closing = True
        for q in list(self._watch_queues):
            q.wake()

    def close(self) -> None:
        """Server shutdown: ends the watches and stops the body decoders."""
        self.close_watches()
        self.bodies.close()

    # ------------------------------------------------------------------ dispatch
    async def handle(self, request: web.Request, api_path: paths.ApiPath) -> web.StreamResponse:
        resource = api_path.resource
        assert resource is not None
        method = request.method
        ns, name, sub = api_path.namespace, api_path.name, api_path.subresource
        q = request.query
        if resource.namespaced and ns is None and (name is not None or method != "GET"):
            # only list and watch exist across all namespaces, as in Kubernetes
            raise st.ApiError(st.status(404, "NotFound", "the server could not find the requested resource"))
        if sub in ("log", "exec", "portforward") and self.pod_proxy is not None and name is not None and ns is not None:
            return await self.pod_proxy.handle(request, ns, name, sub)  # text or a WebSocket, not an object
        # the Accept header is settled before any work: a 406 must not have created anything
        is_watch = api_path.legacy_watch or (method == "GET" and watch_requested(q))
        lists = name is None and method in ("GET", "DELETE")  # list, deletecollection
        target = negotiate.WATCH if is_watch else negotiate.LIST if lists else negotiate.OBJECT
        request[NEGOTIATED] = negotiate.negotiate(request.headers.get("Accept", ""), target)
        if api_path.legacy_watch:
            if method != "GET":
                raise st.method_not_allowed(f"method {method} is not allowed on watch paths")
            return await self._watch(request, resource, ns, name)
        if name is None:
            if method == "GET":
                if watch_requested(q):
                    return await self._watch(request, resource, ns, None)
                return await self._list(request, resource, ns)
            if method == "POST":
                return await self._create(request, resource, ns)
            if method == "DELETE":
                return await self._delete_collection(request, resource, ns)
        elif sub is None:
            if method == "GET":
                if watch_requested(q):
                    return await self._watch(request, resource, ns, name)
                return await self._get(request, resource, ns, name)
            if method == "PUT":
                return await self._update(request, resource, ns, name, None)
            if method == "PATCH":
                return await self._patch(request, resource, ns, name, None)
            if method == "DELETE":
                return await self._delete(request, resource, ns, name)
        elif sub == "status":
            if method == "GET":
                return await self._get(request, resource, ns, name)
            if method == "PUT":
                return await self._update(request, resource, ns, name, "status")
            if method == "PATCH":
                return await self._patch(request, resource, ns, name, "status")
        elif sub == "finalize":
            if method == "PUT":
                return await self._update(request, resource, ns, name, "finalize")
        elif sub == "scale":
            return await self._scale(request, resource, ns, name)
        elif sub == "binding":
            if method == "POST":
                return await self._bind(request, resource, ns, name)
        elif sub == EVICTION_SUBRESOURCE:
            if method == "POST":
                return await self._evict(request, ns, name)
        raise st.method_not_allowed(f"the server does not allow this method on the requested resource ({method})")

    # ------------------------------------------------------------------ bodies
    async def _body(self, request: web.Request, is_object: bool = True) -> tuple[Any, bytes]:
        """The decoded body and its raw bytes; an object (not a patch) over the store's limit
        is refused here, before any other work."""
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise st.ApiError(st.status(413, "RequestEntityTooLarge", "the request body is too large")) from None
        if not raw.strip():
            raise st.bad_request("the request body is empty")
        body = await self.bodies.decode(raw, _content_type(request), sb.MAX_VALUE_BYTES if is_object else None)
        return body, raw if _content_type(request) != protobuf.MEDIA_TYPE else b""

    async def _field_warnings(self, request: web.Request, resource: Resource, body: Any, raw: bytes) -> list[str]:
        """fieldValidation for a decoded body (off the loop when the body is large)."""
        return await self.bodies.run(len(raw), self.fields.check, resource, body, raw,
                                     request.query.get("fieldValidation"))

    @staticmethod
    def _check_content_type(request: web.Request, allowed: tuple[str, ...]) -> str:
        ctype = _content_type(request)
        if ctype not in allowed:
            raise st.unsupported_media_type(
                f"the body of the request was in an unknown format - accepted media types include: {', '.join(allowed)}")
        return ctype

    def _respond(self, request: web.Request, resource: Resource, obj: dict[str, Any], status: int = 200,
                 warnings: list[str] | None = None) -> web.Response:
        """The response in the form and encoding the request's Accept negotiated."""
        negotiated = request.get(NEGOTIATED) or negotiate.Negotiated()
        include = request.query.get("includeObject", "Metadata")
        obj = negotiate.shape(negotiated, obj, lambda o: self.tables.render(resource, o, include_object=include))
        body, media_type = negotiate.encode(negotiated, obj, request.headers.get("Accept", ""))
        response = web.Response(body=body, status=status, content_type=media_type)
        for text in warnings or ():
            response.headers.add("Warning", warning_header(text))
        return response

    # ------------------------------------------------------------------ verbs
    async def _get(self, request: web.Request, resource: Resource, ns: str | None, name: str) -> web.Response:
        return self._respond(request, resource, await self._read(self.registry.get, resource, ns, name))

    def _selectors(self, request: web.Request, resource: Resource) -> tuple[Any, Any]:
        label, field = request.query.get("labelSelector"), request.query.get("fieldSelector")
        try:
            ls = self.deps.parse_label_selector(label) if label else None
            fs = self.deps.parse_field_selector(field, resource) if field else None
        except (self.deps.selector_error, ValueError) as exc:
            raise st.bad_request(f"unable to parse requirement: {exc}") from None
        return ls, fs

    async def _list(self, request: web.Request, resource: Resource, ns: str | None) -> web.Response:
        ls, fs = self._selectors(request, resource)
        options = paging.parse_list_options(request.query)
        result = await self._read(paging.list_page, self.registry.store, resource, ns, ls, fs, options)
        return self._respond(request, resource, result)

    def _guard(self, request: web.Request, resource: Resource, ns: str | None, obj: Any) -> None:
        """Runs the write guards on an object about to be written (blocking)."""
        user = request.get(REQUEST_USER)
        if user is not None:
            for guard in self.write_guards:
                guard(user, resource, ns, obj)

    async def _guard_off_loop(self, request: web.Request, resource: Resource, ns: str | None, obj: Any) -> None:
        """`_guard` on a reader thread, skipped (no thread hop) when no guard checks `resource`."""
        if request.get(REQUEST_USER) is not None and any(
                getattr(guard, "applies_to", lambda _: True)(resource) for guard in self.write_guards):
            await self._read(self._guard, request, resource, ns, obj)

    def _dry_run(self, request: web.Request) -> bool:
        values = request.query.getall("dryRun", [])
        for v in values:
            if v != "All":
                raise st.bad_request(f'unsupported dryRun value {v!r}: only "All" is supported')
        return bool(values)

    async def _create(self, request: web.Request, resource: Resource, ns: str | None) -> web.Response:
        self._check_content_type(request, BODY_TYPES)
        manager, _ = write_manager(request.query, request.headers.get("User-Agent", ""), "CreateOptions", None)
        body, raw = await self._body(request)
        dry = self._dry_run(request)
        warnings = await self._field_warnings(request, resource, body, raw)
        await self._guard_off_loop(request, resource, ns, body)
        obj = await self._write(self.registry.create, resource, ns, body, dry, manager)
        request[CREATED_NAME] = (obj.get("metadata") or {}).get("name", "")  # for the audit log
        return self._respond(request, resource, obj, 201, warnings)

    async def _update(self, request: web.Request, resource: Resource, ns: str | None, name: str,
                      sub: str | None) -> web.Response:
        self._check_content_type(request, BODY_TYPES)
        manager, _ = write_manager(request.query, request.headers.get("User-Agent", ""), "UpdateOptions", sub)
        body, raw = await self._body(request)
        dry = self._dry_run(request)
        warnings = await self._field_warnings(request, resource, body, raw)
        if sub is None:
            await self._guard_off_loop(request, resource, ns, body)
        obj, created = await self._write(self.registry.update, resource, ns, name, body, sub, dry, manager)
        return self._respond(request, resource, obj, 201 if created else 200, warnings)

    async def _bind(self, request: web.Request, resource: Resource, ns: str | None, name: str) -> web.Response:
        """pods/binding (kproxy.apiserver.binding): answers a Success Status, as kube-apiserver."""
        self._check_content_type(request, BODY_TYPES)
        body, _ = await self._body(request)
        node, annotations = binding.binding_target(body, name)
        await self._write(self.registry.update_with, resource, ns, name,
                          lambda pod: binding.assign(pod, node, annotations), self._dry_run(request))
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                              "code": 201}, 201)

    async def _evict(self, request: web.Request, ns: str | None, name: str) -> web.Response:
        """pods/eviction (kproxy.apiserver.eviction): a Status, 201 when the pod was evicted."""
        self._check_content_type(request, BODY_TYPES)
        body, _ = await self._body(request)
        options = eviction.delete_options(eviction.delete_options_of(body, name), self._dry_run(request))
        result, code = await self._write(self.evictions.evict, ns or "", name, options)
        return json_response(result, code)

    async def _patch(self, request: web.Request, resource: Resource, ns: str | None, name: str,
                     sub: str | None) -> web.Response:
        ctype = _content_type(request, default="")
        if ctype not in PATCH_TYPES and ctype != APPLY_PATCH:
            raise st.unsupported_media_type(
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{', '.join((*PATCH_TYPES, APPLY_PATCH))}")
        patch_type = "apply" if ctype == APPLY_PATCH else PATCH_TYPES[ctype]
        manager, force = write_manager(request.query, request.headers.get("User-Agent", ""), "PatchOptions", sub,
                                       apply=patch_type == "apply")
        patch, raw = await self._body(request, is_object=False)
        dry = self._dry_run(request)
        mode = request.query.get("fieldValidation")
        self.fields.check(resource, {}, None, mode)  # rejects a bad mode before any work
        warnings: list[str] = []

        def check(patched: dict[str, Any]) -> None:
            warnings.extend(self.fields.check(resource, patched, None, mode))
            if sub is None:
                self._guard(request, resource, ns, patched)

        if patch_type == "apply":
            def may_create() -> None:
                self._authorize_create(request, resource, ns, name)

            obj, created = await self._write(self.registry.apply, resource, ns, name, patch, manager, sub, dry,
                                             force, check, may_create)
            return self._respond(request, resource, obj, 201 if created else 200, warnings)
        obj = await self._write(self.registry.patch, resource, ns, name, patch_type, patch, sub, dry, check, manager)
        return self._respond(request, resource, obj, 200, warnings)

    async def _scale(self, request: web.Request, resource: Resource, ns: str | None, name: str) -> web.Response:
        """GET/PUT/PATCH of the scale subresource (autoscaling/v1 Scale)."""
        method = request.method
        if method == "GET":
            return json_response(await self._read(self.scales.get, resource, ns, name))
        if method == "PUT":
            self._check_content_type(request, BODY_TYPES)
            body, _ = await self._body(request)
            return json_response(await self._write(self.scales.update, resource, ns, name, body,
                                                   self._dry_run(request)))
        if method == "PATCH":
            ctype = _content_type(request, default="")
            if ctype not in PATCH_TYPES:
                raise st.unsupported_media_type(
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"{', '.join(PATCH_TYPES)}")
            patch, _ = await self._body(request, is_object=False)
            return json_response(await self._write(self.scales.patch, resource, ns, name, PATCH_TYPES[ctype],
                                                   patch, self._dry_run(request)))
        raise st.method_not_allowed(f"the server does not allow this method on the requested resource ({method})")

    def _authorize_create(self, request: web.Request, resource: Resource, ns: str | None, name: str) -> None:
        """403 unless the acting user may also create the object (blocking)."""
        user = request.get(REQUEST_USER)
        if user is None or self.authorize is None or user.is_master:
            return
        attrs = RequestAttributes("create", request.path, True, resource.group, resource.plural, "", ns or "", name)
        if not self.authorize(user, attrs):
            raise st.ApiError(st.status(403, "Forbidden", forbidden_message(user, attrs), kind=resource.plural,
                                        name=name, group=resource.group))

    async def _delete_options(self, request: web.Request) -> DeleteOptions:
        body: dict[str, Any] = {}
        raw = await request.read() if request.can_read_body else b""
        if raw.strip() and _content_type(request) == protobuf.MEDIA_TYPE:  # from a typed client
            body = decode_body(raw, protobuf.MEDIA_TYPE)
        elif raw.strip():
            try:
                body = decode_json(raw)
            except (ValueError, RecursionError):
                raise st.bad_request("the DeleteOptions body is not valid JSON") from None
            refuse_unrepresentable(body)
            if not isinstance(body, dict):
                raise st.bad_request("the DeleteOptions body must be a JSON object")
        grace = query_int(request.query, "gracePeriodSeconds")
        if grace is None and body.get("gracePeriodSeconds") is not None:
            if not isinstance(body["gracePeriodSeconds"], int):
                raise st.bad_request("gracePeriodSeconds must be an integer")
            grace = body["gracePeriodSeconds"]
        pre = body.get("preconditions") or {}
        if not isinstance(pre, dict):
            raise st.bad_request("preconditions must be an object")
        dry = self._dry_run(request) or body.get("dryRun") == ["All"]
        policy, orphan = propagation.parse(request.query, body)
        return DeleteOptions(grace, pre.get("uid"), pre.get("resourceVersion"), dry, policy, orphan)

    async def _delete(self, request: web.Request, resource: Resource, ns: str | None, name: str) -> web.Response:
        options = await self._delete_options(request)
        result = await self._write(self.registry.delete, resource, ns, name, options)
        if not result.deleted or (resource.group, resource.plural) in RETURNS_DELETED_OBJECT:
            # upstream answers 202 to a cascading delete asked for with orphanDependents=false
            accepted = not result.deleted and options.orphan_dependents is False
            return self._respond(request, resource, result.obj, 202 if accepted else 200)
        details = st.success(resource.plural, name, resource.group)
        details["details"]["uid"] = (result.obj.get("metadata") or {}).get("uid")
        return self._respond(request, resource, details)

    async def _delete_collection(self, request: web.Request, resource: Resource, ns: str | None) -> web.Response:
        options = await self._delete_options(request)
        ls, fs = self._selectors(request, resource)
        listed = await self._read(self.registry.list, resource, ns, ls, fs)
        items = []
        for item in listed["items"]:
            m = item.get("metadata") or {}
            try:
                result = await self._write(self.registry.delete, resource, m.get("namespace") if resource.namespaced else None,
                                           m["name"], options)
            except st.ApiError as exc:
                if exc.code in (404, 409):
                    continue  # gone or changed meanwhile; Kubernetes skips these too
                raise
            items.append(result.obj)
        return self._respond(request, resource, {
            "kind": resource.list_kind, "apiVersion": resource.group_version,
            "metadata": {"resourceVersion": listed["metadata"]["resourceVersion"]}, "items": items})

    # ------------------------------------------------------------------ watch
    async def _watch(self, request: web.Request, resource: Resource, ns: str | None, name: str | None) -> web.StreamResponse:
        """A watch stream, within the per-identity cap: one identity cannot hold the server's
        memory and file descriptors with endless watches (429, as an overloaded apiserver)."""
        user = request.get(REQUEST_USER)
        who = user.name if user is not None else ""
        if self._watches_by_user[who] >= self.settings.max_watches_per_user:
            raise st.ApiError(st.status(
                429, "TooManyRequests", f"too many open watches for user {who!r} "
                f"(at most {self.settings.max_watches_per_user}); close some and retry", retry_after=1))
        self._watches_by_user[who] += 1
        try:
            return await self._stream_watch(request, resource, ns, name)
        finally:
            self._watches_by_user[who] -= 1
            if self._watches_by_user[who] <= 0:
                del self._watches_by_user[who]

    def _watch_request(self, request: web.Request, resource: Resource, name: str | None) -> WatchRequest:
        ls, fs = self._selectors(request, resource)
        if name is not None:
            by_name = self.deps.parse_field_selector(f"metadata.name={name}", resource)
            fs = _AllOf(fs, by_name) if fs is not None else by_name
        # WatchList (sendInitialEvents=true): the current state first, whatever the RV, then
        # a bookmark that marks the end of the initial events.
        send_initial = query_bool(request.query.get("sendInitialEvents"))
        start = resource_version(request.query) or None  # "0": from the current state, as ""
        table = None  # each object in the negotiated form
        negotiated = request.get(NEGOTIATED) or negotiate.Negotiated()
        if negotiated.form == negotiate.TABLE:
            include = request.query.get("includeObject", "Metadata")
            table = functools.partial(self._table_row, resource, include, negotiated.version)
        elif negotiated.form == negotiate.PARTIAL:
            table = functools.partial(self._partial_metadata, negotiated.version)
        return WatchRequest(
            label_selector=ls, field_selector=fs, start=None if send_initial else start,
            timeout=query_int(request.query, "timeoutSeconds"),
            bookmarks=query_bool(request.query.get("allowWatchBookmarks")),
            send_initial=send_initial, table=table,
            protobuf=table is None and negotiated.media_type == negotiate.PROTOBUF and
            protobuf.message_name(resource.group_version, resource.kind) is not None)

    def _table_row(self, resource: Resource, include: str, version: str, obj: dict[str, Any],
                   with_columns: bool) -> dict[str, Any]:
        render = functools.partial(self.tables.render, resource, include_object=include, with_columns=with_columns)
        return negotiate.shape(negotiate.Negotiated(form=negotiate.TABLE, version=version), obj, render)

    @staticmethod
    def _partial_metadata(version: str, obj: dict[str, Any], with_columns: bool) -> dict[str, Any]:
        return negotiate.partial_metadata(obj, version)

    async def _stream_watch(self, request: web.Request, resource: Resource, ns: str | None,
                            name: str | None) -> web.StreamResponse:
        """The pump: subscribes, then moves store events through a WatchFramer to the socket."""
        spec = self._watch_request(request, resource, name)
        loop = asyncio.get_running_loop()
        if self._waker is None:
            self._waker = watch.Waker(loop)
        queue = watch.WatchQueue(self._waker, self.settings.watch_queue_limit)
        framer = WatchFramer(resource, spec, self._encoded_protobuf if spec.protobuf else self._encoded,
                             self.settings.bookmark_interval, self.settings.idle_check_interval)
        prefix = resource.store_prefix(ns)
        store = self.registry.store
        cancel: Callable[[], None] | None = None
        try:
            if spec.start is None:
                listed, revision = await self._read(store.list, prefix)
                cancel = await self._read(store.watch, prefix, revision, queue.push)
                opening = framer.open(listed, revision, loop.time())
            else:
                cancel = await self._read(store.watch, prefix, spec.start, queue.push)
                opening = framer.open((), spec.start, loop.time())
        except sb.Gone as exc:
            opening = framer.too_old(exc.requested, exc.oldest)

        content_type = protobuf.WATCH_MEDIA_TYPE if spec.protobuf else "application/json"
        response = web.StreamResponse(status=200, headers={"Content-Type": content_type,
                                                           "Cache-Control": "no-cache, private"})
        response.enable_chunked_encoding()
        async def send(data: bytes) -> None:
            # A client that stops reading fills the socket; give up on it rather than hold
            # the stream forever (its queue is bounded meanwhile). A write that fits under
            # the transport's high-water mark cannot block: it skips wait_for's task.
            transport = request.transport
            if transport is not None and transport.get_write_buffer_size() + len(data) < WRITE_FAST_LIMIT:
                await response.write(data)
                return
            try:
                await asyncio.wait_for(response.write(data), self.settings.write_timeout)
            except asyncio.TimeoutError:
                if request.transport is not None:
                    request.transport.abort()
                raise ConnectionResetError("watch client stopped reading") from None

        self._watch_queues.add(queue)
        try:
            await response.prepare(request)
            if opening:
                await send(opening)
            if framer.finished:
                return response
            while not self._closing:
                wait = framer.wait_time(loop.time())
                if framer.finished:
                    break
                if request.transport is None or request.transport.is_closing():
                    break
                await queue.wait(wait)
                events = queue.drain()
                data = framer.overflowed() if queue.overflowed else framer.events(events, loop.time())
                if data:
                    await send(data)
                if framer.finished:
                    break
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away
        finally:
            self._watch_queues.discard(queue)
            if cancel is not None:
                cancel()
        return response


class _AllOf:
    """Both field selectors must match (a name-scoped watch with its own fieldSelector)."""

    def __init__(self, a: Any, b: Any):
        self.a, self.b = a, b

    def matches(self, obj: dict[str, Any]) -> bool:
        return self.a.matches(obj) and self.b.matches(obj)
