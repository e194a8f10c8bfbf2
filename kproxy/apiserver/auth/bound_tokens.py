"""Bound service-account tokens (TokenRequest): the claims kube-apiserver puts in them and
their checks, pure. Signing is tokens.TokenSigner's; the store lookups (the account and the
bound object still exist with the same uid) are authn.py's.

Claims, as upstream: iss, sub (system:serviceaccount:NS:NAME), aud, exp, iat, nbf, jti, and
kubernetes.io {namespace, serviceaccount {name, uid}, pod|secret {name, uid} when bound}."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from kproxy.apiserver.auth.tokens import TokenError

# kube-apiserver's --service-account-issuer as kubeadm sets it; its API audiences default to it
ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES: tuple[str, ...] = (ISSUER,)
K8S_CLAIM = "kubernetes.io"
LEEWAY = 60  # seconds of clock skew allowed on exp and nbf (go-jose's DefaultLeeway, as upstream)
BOUND_KINDS = ("Pod", "Secret")  # what a token may be bound to (apiVersion v1)
# a bound pod being deleted keeps its token this long past its deletionTimestamp, as upstream
DELETED_POD_GRACE = 60
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"


@dataclass(frozen=True)
class BoundObject:
    kind: str  # one of BOUND_KINDS
    name: str
    uid: str


@dataclass(frozen=True)
class BoundClaims:
    namespace: str
    service_account: str
    service_account_uid: str
    audiences: tuple[str, ...]
    issued_at: int
    expires_at: int
    token_id: str
    bound: BoundObject | None = None

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def user_extra(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The user's extra attributes, as upstream's authenticator gives them."""
        extra: list[tuple[str, tuple[str, ...]]] = [(EXTRA_CREDENTIAL_ID, (f"JTI={self.token_id}",))]
        if self.bound is not None and self.bound.kind == "Pod":
            extra += [(EXTRA_POD_NAME, (self.bound.name,)), (EXTRA_POD_UID, (self.bound.uid,))]
        return tuple(sorted(extra))


def new_claims(namespace: str, account: str, account_uid: str, audiences: tuple[str, ...], now: int,
               expiration_seconds: int, bound: BoundObject | None = None) -> BoundClaims:
    return BoundClaims(namespace, account, account_uid, audiences, now, now + expiration_seconds,
                       str(uuid.uuid4()), bound)


def payload(claims: BoundClaims) -> dict[str, Any]:
    """The JWT payload of a bound token."""
    k8s: dict[str, Any] = {"namespace": claims.namespace,
                           "serviceaccount": {"name": claims.service_account, "uid": claims.service_account_uid}}
    if claims.bound is not None:
        k8s[claims.bound.kind.lower()] = {"name": claims.bound.name, "uid": claims.bound.uid}
    return {"aud": list(claims.audiences), "exp": claims.expires_at, "iat": claims.issued_at, "iss": ISSUER,
            "jti": claims.token_id, K8S_CLAIM: k8s, "nbf": claims.issued_at, "sub": claims.subject}


def _ref(value: Any, what: str) -> tuple[str, str]:
    if not isinstance(value, dict) or not all(isinstance(value.get(k), str) and value.get(k) for k in ("name", "uid")):
        raise TokenError(f"malformed {what} claim")
    return value["name"], value["uid"]


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenError(f"missing {what} claim")
    return int(value)


def parse(data: dict[str, Any], now: float, audiences: tuple[str, ...]) -> BoundClaims:
    """The claims of a verified bound token's payload, when it is valid at `now` for one of
    `audiences`; TokenError (expired, not yet valid, another audience, malformed) otherwise."""
    if data.get("iss") != ISSUER:
        raise TokenError("wrong issuer")
    exp, nbf = _int(data.get("exp"), "exp"), _int(data.get("nbf", data.get("iat")), "nbf")
    if now > exp + LEEWAY:
        raise TokenError("the token has expired")
    if now < nbf - LEEWAY:
        raise TokenError("the token is not valid yet")
    aud = data.get("aud")
    if isinstance(aud, str):
        token_audiences: tuple[str, ...] = (aud,)
    else:
        token_audiences = tuple(a for a in aud if isinstance(a, str)) if isinstance(aud, list) else ()
    if not set(token_audiences) & set(audiences):
        raise TokenError("the token is not for this audience")
    k8s = data.get(K8S_CLAIM)
    if not isinstance(k8s, dict) or not isinstance(k8s.get("namespace"), str) or not k8s["namespace"]:
        raise TokenError(f"missing {K8S_CLAIM} claim")
    name, uid = _ref(k8s.get("serviceaccount"), "serviceaccount")
    if data.get("sub") != f"system:serviceaccount:{k8s['namespace']}:{name}":
        raise TokenError("the subject does not match the service account")
    bound = None
    for kind in BOUND_KINDS:
        if kind.lower() in k8s:
            bound = BoundObject(kind, *_ref(k8s[kind.lower()], kind.lower()))
    jti = data.get("jti") if isinstance(data.get("jti"), str) else ""
    return BoundClaims(k8s["namespace"], name, uid, token_audiences, _int(data.get("iat", nbf), "iat"), exp, jti, bound)
