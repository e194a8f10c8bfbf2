"""HTTP side of the create-only authentication and authorization kinds (reviews.py) and of
serviceaccounts/token (tokenrequest.py): decodes the body, calls them off the event loop and
answers 201 with the answered object. The auth middleware has already authorized the request
(create on the kind, or on serviceaccounts/token) and left its user on the request."""
from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Executor
from typing import Any, Callable

from aiohttp import web

from kproxy.api import resources as R
from kproxy.api import status as st
from kproxy.apiserver import paths
from kproxy.apiserver.auth import bound_tokens, reviews
from kproxy.apiserver.auth.authn import TokenAuthenticator, Unauthenticated
from kproxy.apiserver.auth.identity import INSECURE, UserInfo
from kproxy.apiserver.auth.rbac import RBACAuthorizer
from kproxy.apiserver.auth.tokenrequest import TokenIssuer
from kproxy.apiserver.bodies import BodyDecoder
from kproxy.apiserver.rest import REQUEST_USER, json_response
from kproxy.apiserver.rest import _content_type as content_type

MAX_BODY = 64 * 1024  # a review or token request is small


def handles(api_path: paths.ApiPath) -> bool:
    """Whether a parsed path is one of these endpoints (the server's dispatch hook)."""
    return api_path.resource in R.CREATE_ONLY or (
        api_path.resource is R.SERVICE_ACCOUNTS and api_path.subresource == R.TOKEN_SUBRESOURCE)


class AuthEndpoints:
    def __init__(self, authorizer: RBACAuthorizer, tokens: TokenAuthenticator, issuer: TokenIssuer,
                 bodies: BodyDecoder, executor: Executor):
        self.authorizer = authorizer
        self.tokens = tokens
        self.issuer = issuer
        self.bodies = bodies
        self.executor = executor

    def _authenticate(self, token: str, audiences: tuple[str, ...]) -> UserInfo | None:
        try:
            return self.tokens.authenticate(token, audiences)
        except Unauthenticated:
            return None

    def _answer_for(self, api_path: paths.ApiPath, user: UserInfo) -> Callable[[Any], dict[str, Any]]:
        r, ns = api_path.resource, api_path.namespace or ""
        if r is R.SERVICE_ACCOUNTS:
            return functools.partial(self.issuer.issue, ns, api_path.name or "")
        answers: dict[R.Resource, Callable[[Any], dict[str, Any]]] = {
            R.SELF_SUBJECT_ACCESS_REVIEWS: functools.partial(reviews.self_subject_access_review, self.authorizer, user),
            R.SELF_SUBJECT_RULES_REVIEWS: functools.partial(reviews.self_subject_rules_review, self.authorizer, user),
            R.SUBJECT_ACCESS_REVIEWS: functools.partial(reviews.subject_access_review, self.authorizer),
            R.LOCAL_SUBJECT_ACCESS_REVIEWS: functools.partial(reviews.local_subject_access_review, self.authorizer, ns),
            R.SELF_SUBJECT_REVIEWS: functools.partial(reviews.self_subject_review, user),
            R.TOKEN_REVIEWS: functools.partial(reviews.token_review, self._authenticate, bound_tokens.API_AUDIENCES),
        }
        assert r is not None
        return answers[r]

    async def handle(self, request: web.Request, api_path: paths.ApiPath) -> web.Response:
        r = api_path.resource
        assert r is not None
        is_token = r is R.SERVICE_ACCOUNTS
        if request.method != "POST" or (api_path.name is not None) != is_token or api_path.legacy_watch \
                or (r.namespaced and not api_path.namespace):
            raise st.method_not_allowed(f"the server does not allow this method on the requested resource "
                                        f"({request.method}); {'TokenRequest' if is_token else r.kind} is create-only")
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise st.too_large(f"the request body is over {MAX_BODY} bytes")
        raw = await request.read()
        if len(raw) > MAX_BODY:
            raise st.too_large(f"the request body is over {MAX_BODY} bytes")
        if not raw.strip():
            raise st.bad_request("the request body is empty")
        body = await self.bodies.decode(raw, content_type(request))
        user = request.get(REQUEST_USER, INSECURE)
        answer = await asyncio.get_running_loop().run_in_executor(self.executor, self._answer_for(api_path, user), body)
        return json_response(answer, 201)
