"""Service-account token Secrets: when a Secret of type kubernetes.io/service-account-token
naming a ServiceAccount (annotation kubernetes.io/service-account.name) is created, the
apiserver fills it with a token signed by its key, the cluster CA and the namespace, and
records the account's uid. The signing key never leaves the apiserver. Whatever token data a
client sends is replaced, so a client cannot choose its token."""
from __future__ import annotations

import base64
from typing import Any

from kproxy.api import resources as R
from kproxy.api import status as st
from kproxy.apiserver.auth.authn import SA_NAME_ANNOTATION, SA_TOKEN_TYPE, SA_UID_ANNOTATION
from kproxy.apiserver.auth.tokens import ServiceAccountClaims, TokenSigner
from kproxy.store import base as sb


class ServiceAccountTokenAdmission:
    """Called by the registry for every object about to be created (blocking: reads the store)."""

    def __init__(self, store: sb.Store, signer: TokenSigner, ca_pem: bytes):
        self.store = store
        self.signer = signer
        self.ca_pem = ca_pem

    def admit_create(self, resource: R.Resource, namespace: str | None, obj: dict[str, Any]) -> None:
        if resource is not R.SECRETS or obj.get("type") != SA_TOKEN_TYPE:
            return
        meta = obj.setdefault("metadata", {})
        annotations = meta.get("annotations") or {}
        sa_name = annotations.get(SA_NAME_ANNOTATION)
        field = f"metadata.annotations[{SA_NAME_ANNOTATION}]"
        if not sa_name:
            raise st.invalid("Secret", meta.get("name", ""), [{
                "reason": "FieldValueRequired", "field": field, "message": "Required value"}])
        try:
            sa = self.store.get(R.SERVICE_ACCOUNTS.store_key(sa_name, namespace)).value
        except sb.NotFound:
            raise st.invalid("Secret", meta.get("name", ""), [{
                "reason": "FieldValueNotFound", "field": field,
                "message": f"Not found: {sa_name!r}: no ServiceAccount {namespace}/{sa_name}"}]) from None
        uid = (sa.get("metadata") or {}).get("uid", "")
        token = self.signer.sign(ServiceAccountClaims(namespace or "", meta.get("name", ""), sa_name, uid))
        meta["annotations"] = {**annotations, SA_UID_ANNOTATION: uid}
        obj.pop("stringData", None)
        obj["data"] = {
            **(obj.get("data") or {}),
            "token": base64.b64encode(token.encode()).decode(),
            "ca.crt": base64.b64encode(self.ca_pem).decode(),
            "namespace": base64.b64encode((namespace or "").encode()).decode(),
        }
