"""Service-account token Secrets on create: a Secret of type kubernetes.io/service-account-token
must name an existing ServiceAccount (annotation kubernetes.io/service-account.name); the
account's uid is recorded and any token the client put in is dropped. The Secret is stored
without a token: the token controller (token_controller.py) fills it in afterwards, as
upstream's, so the create response never carries a token and reading it back needs `get`."""
from __future__ import annotations

from typing import Any

from kproxy.api import resources as R
from kproxy.api import status as st
from kproxy.apiserver.auth.authn import SA_NAME_ANNOTATION, SA_TOKEN_TYPE, SA_UID_ANNOTATION
from kproxy.store import base as sb

TOKEN_KEY = "token"


class ServiceAccountTokenAdmission:
    """Called by the registry for every object about to be created (blocking: reads the store)."""

    def __init__(self, store: sb.Store):
        self.store = store

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
        meta["annotations"] = {**annotations, SA_UID_ANNOTATION: (sa.get("metadata") or {}).get("uid", "")}
        for field_name in ("data", "stringData"):
            if isinstance(obj.get(field_name), dict):
                obj[field_name].pop(TOKEN_KEY, None)  # a client never chooses its token
