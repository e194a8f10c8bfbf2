"""TokenRequest (POST .../serviceaccounts/NAME/token, `kubectl create token`): a bound,
expiring token for a ServiceAccount, optionally bound to a Pod or Secret of its namespace, as
kube-apiserver's serviceaccount token REST storage. Nothing is stored: the token is valid while
it has not expired and its account (and bound object) exist with the uid it names."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from kproxy.api import resources as R
from kproxy.api import status as st
from kproxy.apiserver.auth import bound_tokens
from kproxy.apiserver.auth.tokens import TokenSigner
from kproxy.apiserver.objects import rfc3339
from kproxy.store import base as sb

KIND = "TokenRequest"
API_VERSION = f"{R.AUTHN_GROUP}/v1"
MIN_EXPIRATION = 600  # upstream refuses less than 10 minutes
MAX_EXPIRATION = 1 << 32
DEFAULT_EXPIRATION = 3600


@dataclass(frozen=True)
class BoundRef:
    kind: str
    api_version: str
    name: str
    uid: str


@dataclass(frozen=True)
class TokenRequestSpec:
    audiences: tuple[str, ...]
    expiration_seconds: int
    bound: BoundRef | None


def _cause(field: str, message: str, reason: str = "FieldValueInvalid") -> dict[str, str]:
    return {"reason": reason, "field": field, "message": message}


def parse_spec(body: Any, name: str) -> TokenRequestSpec:
    """The validated spec of a TokenRequest body, defaults applied; 400/422 as upstream (pure)."""
    if not isinstance(body, dict):
        raise st.bad_request("the request body is not a TokenRequest object")
    if body.get("kind") not in (None, "", KIND) or body.get("apiVersion") not in (None, "", API_VERSION):
        raise st.bad_request(f"the body must be a {API_VERSION} {KIND}, "
                             f"not {body.get('apiVersion')} {body.get('kind')}")
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise st.invalid(KIND, name, [_cause("spec", "must be an object")], R.AUTHN_GROUP)
    causes = []
    audiences = spec.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
        causes.append(_cause("spec.audiences", "must be a list of non-empty strings"))
        audiences = []
    seconds = spec.get("expirationSeconds", DEFAULT_EXPIRATION)
    if seconds is None:
        seconds = DEFAULT_EXPIRATION
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        causes.append(_cause("spec.expirationSeconds", f"Invalid value: {seconds!r}: must be an integer"))
        seconds = DEFAULT_EXPIRATION
    elif seconds < MIN_EXPIRATION:
        causes.append(_cause("spec.expirationSeconds",
                             f"Invalid value: {seconds}: may not specify a duration less than 10 minutes"))
    elif seconds > MAX_EXPIRATION:
        causes.append(_cause("spec.expirationSeconds",
                             f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"))
    bound = None
    ref = spec.get("boundObjectRef")
    if ref:
        if not isinstance(ref, dict):
            causes.append(_cause("spec.boundObjectRef", "must be an object"))
        else:
            kind, version = ref.get("kind"), ref.get("apiVersion") or "v1"
            if kind not in bound_tokens.BOUND_KINDS:
                supported = ", ".join(f'"{k}"' for k in bound_tokens.BOUND_KINDS)
                causes.append(_cause("spec.boundObjectRef.kind", f"Unsupported value: {kind!r}: supported values: "
                                     f"{supported}", "FieldValueNotSupported"))
            if version != "v1":
                causes.append(_cause("spec.boundObjectRef.apiVersion", f"Unsupported value: {version!r}: "
                                     'supported values: "v1"', "FieldValueNotSupported"))
            if not isinstance(ref.get("name"), str) or not ref.get("name"):
                causes.append(_cause("spec.boundObjectRef.name", "Required value", "FieldValueRequired"))
            uid = ref.get("uid") or ""
            if not isinstance(uid, str):
                causes.append(_cause("spec.boundObjectRef.uid", "must be a string"))
            if not causes:
                bound = BoundRef(kind, version, ref["name"], uid)
    if causes:
        raise st.invalid(KIND, name, causes, R.AUTHN_GROUP)
    return TokenRequestSpec(tuple(audiences) or bound_tokens.API_AUDIENCES, seconds, bound)


class TokenIssuer:
    """Issues bound tokens. Blocking (reads the store): run it in an executor."""

    def __init__(self, store: sb.Store, signer: TokenSigner, clock: Callable[[], float] = time.time):
        self.store = store
        self.signer = signer
        self.clock = clock

    def _get(self, resource: R.Resource, namespace: str, name: str) -> dict[str, Any]:
        try:
            return self.store.get(resource.store_key(name, namespace)).value
        except sb.NotFound:
            raise st.not_found(resource.plural, name) from None

    def _bound_object(self, namespace: str, account: str, ref: BoundRef) -> bound_tokens.BoundObject:
        resource = R.PODS if ref.kind == "Pod" else R.SECRETS
        obj = self._get(resource, namespace, ref.name)
        if ref.kind == "Pod" and ((obj.get("spec") or {}).get("serviceAccountName") or "default") != account:
            raise st.bad_request(f"cannot bind token for serviceaccount {account!r} to pod running with "
                                 "different serviceaccount name.")
        uid = (obj.get("metadata") or {}).get("uid", "")
        if ref.uid and ref.uid != uid:
            raise st.conflict(ref.kind, ref.name, f"the UID in the bound object reference ({ref.uid}) does not "
                              "match the UID in record. The object might have been deleted and then recreated")
        return bound_tokens.BoundObject(ref.kind, ref.name, uid)

    def issue(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        """The answered TokenRequest: the request's spec, defaults applied, and a signed token."""
        spec = parse_spec(body, name)
        sa = self._get(R.SERVICE_ACCOUNTS, namespace, name)
        bound = self._bound_object(namespace, name, spec.bound) if spec.bound else None
        now = int(self.clock())
        claims = bound_tokens.new_claims(namespace, name, (sa.get("metadata") or {}).get("uid", ""),
                                         spec.audiences, now, spec.expiration_seconds, bound)
        token = self.signer.sign_payload(bound_tokens.payload(claims))
        out_spec: dict[str, Any] = {"audiences": list(spec.audiences), "expirationSeconds": spec.expiration_seconds}
        if spec.bound is not None and bound is not None:
            out_spec["boundObjectRef"] = {"kind": bound.kind, "apiVersion": spec.bound.api_version,
                                          "name": bound.name, "uid": bound.uid}
        return {"kind": KIND, "apiVersion": API_VERSION,
                "metadata": {"name": name, "namespace": namespace, "creationTimestamp": rfc3339(now)},
                "spec": out_spec, "status": {"token": token, "expirationTimestamp": rfc3339(claims.expires_at)}}
