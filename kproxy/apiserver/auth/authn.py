"""Authentication: a verified client certificate (CN = user, O = groups) or a bearer token
(a service-account token this apiserver signed, whose Secret and ServiceAccount still exist).

The TLS layer has already verified a presented certificate against the cluster CA (an invalid,
expired or foreign certificate fails the handshake), so here a certificate is only read."""
from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from kproxy.api import resources as R
from kproxy.apiserver.auth.identity import UserInfo, authenticated_user, service_account_user
from kproxy.apiserver.auth.tokens import TokenError, TokenSigner
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

    def __init__(self, store: sb.Store, signer: TokenSigner):
        self.store = store
        self.signer = signer

    def authenticate(self, token: str) -> UserInfo:
        try:
            claims = self.signer.verify(token)
        except TokenError as exc:
            raise Unauthenticated(f"invalid bearer token: {exc}") from None
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
        return service_account_user(claims.namespace, claims.service_account)

    def _get(self, resource: R.Resource, namespace: str, name: str) -> dict | None:
        try:
            return self.store.get(resource.store_key(name, namespace)).value
        except sb.NotFound:
            return None
