"""The aiohttp middleware that authenticates, authorizes and audits every request.

Requests on a TLS listener need a client certificate or a service-account bearer token,
except the probes and /version (anonymous allowed). Requests on the plain-HTTP listener act as
INSECURE (full rights): that listener only exists on loopback when asked for.
401 and 403 answers are Kubernetes Status objects; the reason a credential was refused is
only logged, never sent."""
from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
from concurrent.futures import Executor
from typing import Any

from aiohttp import web

from kproxy.api import status as st
from kproxy.apiserver.auth import impersonation
from kproxy.apiserver.auth.attributes import RequestAttributes, request_attributes
from kproxy.apiserver.auth.audit import AuditLog
from kproxy.apiserver.auth.authn import TokenAuthenticator, Unauthenticated, bearer_token, user_from_peercert
from kproxy.apiserver.auth.identity import ANONYMOUS, INSECURE, UserInfo
from kproxy.apiserver.auth.rbac import RBACAuthorizer, forbidden_message
from kproxy.apiserver.rest import CREATED_NAME, REQUEST_USER, object_response

log = logging.getLogger(__name__)

ANONYMOUS_PATHS = ("/healthz", "/livez", "/readyz", "/version")


def anonymous_allowed(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in ANONYMOUS_PATHS)


@functools.lru_cache(maxsize=256)  # asked on every plain-HTTP request; clients send few Host values
def loopback_host(host: str | None) -> bool:
    """Whether a Host header names loopback: localhost or a loopback address, any port. The
    plain-HTTP listener (full rights) serves only these, so a web page that rebinds its own
    DNS name to 127.0.0.1 cannot drive it from a browser (its Host is the page's name)."""
    if not host:
        return False
    name = host.strip()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _plain_http(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.get_extra_info("sslcontext") is None


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
        if _plain_http(request):
            return INSECURE
        user = user_from_peercert(request.transport.get_extra_info("peercert"))
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

    def _record(self, user: UserInfo, attrs: RequestAttributes, code: int, request: web.Request,
                authenticated: UserInfo | None = None, name: str | None = None) -> None:
        """Audits a request made as `user`; `authenticated` is who sent it when that differs
        (impersonation), so the log keeps the real actor; `name` the object a create named."""
        if self.audit is not None:
            self.audit.record(user, attrs, code, request.remote, authenticated, name)

    async def _impersonate(self, user: UserInfo, request: web.Request) -> UserInfo:
        """The user a request acts as: the authenticated one, or the one it impersonates when
        it may (403 otherwise, 400 for malformed headers)."""
        wanted = impersonation.requested(request.headers)
        if wanted is None:
            return user
        for attrs in impersonation.checks(wanted):
            if not (user.is_master or await self._blocking(self.authorizer.authorize, user, attrs)):
                raise st.ApiError(st.status(403, "Forbidden", forbidden_message(user, attrs), kind=attrs.resource,
                                            name=attrs.name or None, group=attrs.api_group))
        acting = impersonation.impersonated_user(wanted)
        log.info("%s impersonates %s %s for %s %s", user.name, acting.name, list(acting.groups),
                 request.method, request.path)
        return acting

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        attrs = request_attributes(request.method, request.path, request.query)
        if _plain_http(request) and not loopback_host(request.headers.get("Host")):
            log.info("refused %s %s on the plain-HTTP listener: Host %r is not loopback",
                     request.method, request.path, request.headers.get("Host"))
            return object_response(request, st.status(403, "Forbidden", "the plain-HTTP listener only answers "
                                                      "requests whose Host is localhost or a loopback address"), 403)
        try:
            user = await self.authenticate(request)
        except Exception as exc:  # Unauthenticated, or the store failing: refuse either way
            if not isinstance(exc, Unauthenticated):
                log.exception("authentication failed for %s %s", request.method, request.path)
            log.info("refused credentials from %s for %s %s: %s", request.remote, request.method, request.path, exc)
            self._record(ANONYMOUS, attrs, 401, request)
            return object_response(request, st.status(401, "Unauthorized", "Unauthorized"), 401)
        if user is ANONYMOUS:
            if anonymous_allowed(request.path) and request.method in ("GET", "HEAD"):
                return await handler(request)
            self._record(user, attrs, 401, request)
            return object_response(request, st.status(401, "Unauthorized", "Unauthorized"), 401)
        authenticated = user
        try:
            user = await self._impersonate(user, request)
        except st.ApiError as exc:
            self._record(user, attrs, exc.code, request)
            return object_response(request, exc.status, exc.code)
        try:
            allowed = user.is_master or await self._blocking(self.authorizer.authorize, user, attrs)
        except Exception:  # fail closed, as a Status
            log.exception("authorization failed for %s %s", request.method, request.path)
            return object_response(request, st.internal("an internal error occurred while authorizing the request")
                                   .status, 500)
        if not allowed:
            self._record(user, attrs, 403, request, authenticated)
            message = forbidden_message(user, attrs) if attrs.resource_request else \
                f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
            return object_response(request, st.status(403, "Forbidden", message, kind=attrs.resource or None,
                                                      name=attrs.name or None, group=attrs.api_group), 403)
        request[REQUEST_USER] = user
        response = await handler(request)
        if attrs.mutating:
            self._record(user, attrs, response.status, request, authenticated,
                         attrs.name or request.get(CREATED_NAME) or None)
        return response
