"""Authentication: a verified client certificate (CN = user, O = groups) or a bearer token:
a legacy service-account token this apiserver signed, whose Secret and ServiceAccount still
exist, or a bound token (TokenRequest) that has not expired, is for one of the accepted
audiences, and whose ServiceAccount and bound object still exist with the same uid.

The TLS layer has already verified a presented certificate against the cluster CA (an invalid,
expired or foreign certificate fails the handshake), so here a certificate is only read."""
from __future__ import annotations

import base64
import binascii
import hmac
import time
from typing import Any, Callable

from kproxy.api import resources as R
from kproxy.apiserver.auth import bound_tokens
from kproxy.apiserver.auth.identity import UserInfo, authenticated_user, service_account_user
from kproxy.apiserver.auth.tokens import ServiceAccountClaims, TokenError, TokenSigner, legacy_claims
from kproxy.apiserver.objects import parse_rfc3339
from kproxy.store import base as sb

SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"


class Unauthenticated(Exception):
    """The credentials are invalid (answered with 401; the reason is only logged)."""


def user_from_peercert(peercert: Any) -> UserInfo | None:
    """The user of a verified peer certificate (ssl's getpeercert() dict), None if none."""
    if not peercert or not isinstance(peercert, dict):
        return None
    user, groups = None, []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                user = value
            elif key == "organizationName":
                groups.append(value)
    if not user:
        return None
    return authenticated_user(user, groups)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class TokenAuthenticator:
    """Service-account tokens. Blocking (reads the store): run it in an executor."""

    def __init__(self, store: sb.Store, signer: TokenSigner, clock: Callable[[], float] = time.time):
        self.store = store
        self.signer = signer
        self.clock = clock

    def authenticate(self, token: str, audiences: tuple[str, ...] = bound_tokens.API_AUDIENCES) -> UserInfo:
        """The user of a token valid for one of `audiences` (the apiserver's own by default; a
        legacy token has no audience and is valid only for those); Unauthenticated otherwise."""
        try:
            payload = self.signer.verified_payload(token)
            if payload.get("iss") == bound_tokens.ISSUER:
                return self._bound(bound_tokens.parse(payload, self.clock(), audiences))
            claims = legacy_claims(payload)
            if not set(audiences) & set(bound_tokens.API_AUDIENCES):
                raise TokenError("a legacy token is only valid for the apiserver's audiences")
        except TokenError as exc:
            raise Unauthenticated(f"invalid bearer token: {exc}") from None
        return self._legacy(token, claims)

    def _bound(self, claims: bound_tokens.BoundClaims) -> UserInfo:
        sa = self._get(R.SERVICE_ACCOUNTS, claims.namespace, claims.service_account)
        if sa is None or (sa.get("metadata") or {}).get("uid") != claims.service_account_uid:
            raise Unauthenticated(f"service account {claims.namespace}/{claims.service_account} no longer exists")
        bound = claims.bound
        if bound is not None:
            resource = R.PODS if bound.kind == "Pod" else R.SECRETS
            obj = self._get(resource, claims.namespace, bound.name)
            meta = (obj or {}).get("metadata") or {}
            if obj is None or meta.get("uid") != bound.uid:
                raise Unauthenticated(f"the {bound.kind} {claims.namespace}/{bound.name} the token is bound to "
                                      "no longer exists")
            if bound.kind == "Pod" and _deleted_before(meta.get("deletionTimestamp"),
                                                       self.clock() - bound_tokens.DELETED_POD_GRACE):
                raise Unauthenticated(f"the pod {claims.namespace}/{bound.name} the token is bound to is deleted")
        return service_account_user(claims.namespace, claims.service_account, claims.service_account_uid,
                                    claims.user_extra())

    def _legacy(self, token: str, claims: ServiceAccountClaims) -> UserInfo:
        secret = self._get(R.SECRETS, claims.namespace, claims.secret_name)
        if secret is None or secret.get("type") != SA_TOKEN_TYPE:
            raise Unauthenticated(f"token secret {claims.namespace}/{claims.secret_name} no longer exists")
        annotations = (secret.get("metadata") or {}).get("annotations") or {}
        if annotations.get(SA_UID_ANNOTATION) != claims.service_account_uid:
            raise Unauthenticated("token secret belongs to another service account")
        try:
            stored = base64.b64decode((secret.get("data") or {}).get("token") or "", validate=True)
        except (binascii.Error, ValueError):
            stored = b""
        if not hmac.compare_digest(stored, token.encode()):
            raise Unauthenticated("token does not match its secret")
        sa = self._get(R.SERVICE_ACCOUNTS, claims.namespace, claims.service_account)
        if sa is None or (sa.get("metadata") or {}).get("uid") != claims.service_account_uid:
            raise Unauthenticated(f"service account {claims.namespace}/{claims.service_account} no longer exists")
        return service_account_user(claims.namespace, claims.service_account, claims.service_account_uid)

    def _get(self, resource: R.Resource, namespace: str, name: str) -> dict | None:
        try:
            return self.store.get(resource.store_key(name, namespace)).value
        except sb.NotFound:
            return None


def _deleted_before(timestamp: Any, limit: float) -> bool:
    """Whether a deletionTimestamp is set and lies before `limit` (epoch seconds)."""
    if not timestamp:
        return False
    when = parse_rfc3339(timestamp)
    return when is None or when < limit  # unreadable: deleted (fail closed)
