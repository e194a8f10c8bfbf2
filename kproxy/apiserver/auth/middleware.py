"""The aiohttp middleware that authenticates, authorizes and audits every request.

Requests on a TLS listener need a client certificate or a service-account bearer token,
except the probes and /version (anonymous allowed). Requests on the plain-HTTP listener act as
INSECURE (full rights): that listener only exists on loopback when asked for.
401 and 403 answers are Kubernetes Status objects; the reason a credential was refused is
only logged, never sent."""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from concurrent.futures import Executor
from typing import Any

from aiohttp import web

from kproxy.api import status as st
from kproxy.apiserver.auth.attributes import RequestAttributes, request_attributes
from kproxy.apiserver.auth.audit import AuditLog
from kproxy.apiserver.auth.authn import TokenAuthenticator, Unauthenticated, bearer_token, user_from_peercert
from kproxy.apiserver.auth.identity import ANONYMOUS, INSECURE, UserInfo
from kproxy.apiserver.auth.rbac import RBACAuthorizer, forbidden_message
from kproxy.apiserver.rest import CREATED_NAME, REQUEST_USER, json_response

log = logging.getLogger(__name__)

ANONYMOUS_PATHS = ("/healthz", "/livez", "/readyz", "/version")


def anonymous_allowed(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in ANONYMOUS_PATHS)


class AuthMiddleware:
    def __init__(self, authorizer: RBACAuthorizer, tokens: TokenAuthenticator | None,
                 audit: AuditLog | None, executor: Executor):
        self.authorizer = authorizer
        self.tokens = tokens
        self.audit = audit
        self.executor = executor

    async def _blocking(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(fn, *args))

    async def authenticate(self, request: web.Request) -> UserInfo:
        transport = request.transport
        if transport is None or transport.get_extra_info("sslcontext") is None:
            return INSECURE
        user = user_from_peercert(transport.get_extra_info("peercert"))
        if user is not None:
            return user
        token = bearer_token(request.headers.get("Authorization"))
        if token is not None:
            if self.tokens is None:
                raise Unauthenticated("bearer tokens are not enabled")
            return await self._blocking(self.tokens.authenticate, token)
        if request.headers.get("Authorization"):
            raise Unauthenticated("unsupported Authorization scheme")
        return ANONYMOUS

    def _record(self, user: UserInfo, attrs: RequestAttributes, code: int, request: web.Request) -> None:
        if self.audit is not None:
            self.audit.record(user, attrs, code, request.remote)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        attrs = request_attributes(request.method, request.path, request.query)
        try:
            user = await self.authenticate(request)
        except Exception as exc:  # Unauthenticated, or the store failing: refuse either way
            if not isinstance(exc, Unauthenticated):
                log.exception("authentication failed for %s %s", request.method, request.path)
            log.info("refused credentials from %s for %s %s: %s", request.remote, request.method, request.path, exc)
            self._record(ANONYMOUS, attrs, 401, request)
            return json_response(st.status(401, "Unauthorized", "Unauthorized"), 401)
        if user is ANONYMOUS:
            if anonymous_allowed(request.path) and request.method in ("GET", "HEAD"):
                return await handler(request)
            self._record(user, attrs, 401, request)
            return json_response(st.status(401, "Unauthorized", "Unauthorized"), 401)
        try:
            allowed = user.is_master or await self._blocking(self.authorizer.authorize, user, attrs)
        except Exception:  # fail closed, as a Status
            log.exception("authorization failed for %s %s", request.method, request.path)
            return json_response(st.internal("an internal error occurred while authorizing the request").status, 500)
        if not allowed:
            self._record(user, attrs, 403, request)
            message = forbidden_message(user, attrs) if attrs.resource_request else \
                f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
            return json_response(st.status(403, "Forbidden", message, kind=attrs.resource or None,
                                           name=attrs.name or None, group=attrs.api_group), 403)
        request[REQUEST_USER] = user
        response = await handler(request)
        if attrs.mutating:
            if not attrs.name and request.get(CREATED_NAME):
                attrs = dataclasses.replace(attrs, name=request[CREATED_NAME])
            self._record(user, attrs, response.status, request)
        return response
