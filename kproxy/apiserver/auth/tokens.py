"""Service-account tokens: JWTs (RFC 7519) signed with ES256 by the apiserver's key.

`sign`/`verify` are Kubernetes' legacy secret-based tokens, whose claims name the Secret that
holds it: deleting that Secret (or the ServiceAccount) revokes it, because the authenticator
checks both still exist (see authn.py). Bound, expiring tokens (TokenRequest) are signed by
the same key with other claims (bound_tokens.py), through `sign_payload`/`verified_payload`."""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

ISSUER = "kubernetes/serviceaccount"
NS_CLAIM = "kubernetes.io/serviceaccount/namespace"
SECRET_CLAIM = "kubernetes.io/serviceaccount/secret.name"
SA_NAME_CLAIM = "kubernetes.io/serviceaccount/service-account.name"
SA_UID_CLAIM = "kubernetes.io/serviceaccount/service-account.uid"
_COORD = 32  # P-256 coordinate size: a JWS ES256 signature is r || s, 32 bytes each


class TokenError(ValueError):
    """The token is not one this apiserver issued (never says which check failed to the client)."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class ServiceAccountClaims:
    namespace: str
    secret_name: str
    service_account: str
    service_account_uid: str


class TokenSigner:
    """Signs and verifies service-account tokens with one ECDSA P-256 key."""

    def __init__(self, key: ec.EllipticCurvePrivateKey):
        self._key = key
        self._public = key.public_key()
        der = self._public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.key_id = _b64url(hashlib.sha256(der).digest())[:32]

    @classmethod
    def from_pem(cls, pem: bytes) -> "TokenSigner":
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the service-account signing key is not an ECDSA key")
        return cls(key)

    def sign(self, claims: ServiceAccountClaims) -> str:
        """A legacy (secret-based, non-expiring) token."""
        return self.sign_payload({
            "iss": ISSUER, NS_CLAIM: claims.namespace, SECRET_CLAIM: claims.secret_name,
            SA_NAME_CLAIM: claims.service_account, SA_UID_CLAIM: claims.service_account_uid,
            "sub": f"system:serviceaccount:{claims.namespace}:{claims.service_account}",
        })

    def sign_payload(self, payload: dict[str, Any]) -> str:
        """A JWT carrying `payload`, signed with this key."""
        header = {"alg": "ES256", "kid": self.key_id, "typ": "JWT"}
        signing_input = f"{_b64url(json.dumps(header, separators=(',', ':')).encode())}." \
                        f"{_b64url(json.dumps(payload, separators=(',', ':')).encode())}"
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64url(r.to_bytes(_COORD, 'big') + s.to_bytes(_COORD, 'big'))}"

    def verify(self, token: str) -> ServiceAccountClaims:
        """The claims of a legacy token signed by this key; TokenError otherwise."""
        return legacy_claims(self.verified_payload(token))

    def verified_payload(self, token: str) -> dict[str, Any]:
        """The payload of a JWT whose signature this key made; TokenError otherwise (the
        claims themselves are not checked here)."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("not a JWT")
        try:
            header = json.loads(_unb64url(parts[0]))
            payload: Any = json.loads(_unb64url(parts[1]))
            sig = _unb64url(parts[2])
        except (ValueError, UnicodeDecodeError):
            raise TokenError("malformed JWT") from None
        if not isinstance(header, dict) or header.get("alg") != "ES256" or len(sig) != 2 * _COORD:
            raise TokenError("unsupported JWT algorithm")
        der = encode_dss_signature(int.from_bytes(sig[:_COORD], "big"), int.from_bytes(sig[_COORD:], "big"))
        try:
            self._public.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise TokenError("bad signature") from None
        if not isinstance(payload, dict):
            raise TokenError("the payload is not an object")
        return payload


def legacy_claims(payload: dict[str, Any]) -> ServiceAccountClaims:
    """The claims of a verified legacy token's payload; TokenError when it is not one (pure)."""
    if payload.get("iss") != ISSUER:
        raise TokenError("wrong issuer")
    values = [payload.get(c) for c in (NS_CLAIM, SECRET_CLAIM, SA_NAME_CLAIM, SA_UID_CLAIM)]
    if not all(isinstance(v, str) and v for v in values):
        raise TokenError("missing claims")
    return ServiceAccountClaims(*values)
