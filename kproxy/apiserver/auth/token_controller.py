"""The token controller: fills each kubernetes.io/service-account-token Secret that has no
token yet with a token signed for its ServiceAccount, the cluster CA and the namespace, as
upstream's tokens controller. It runs inside the apiserver because only the apiserver holds
the signing key; it writes through the registry, so watchers see an ordinary MODIFIED event.
A Secret whose account is gone or was recreated (another uid) is left unfilled (the
serviceaccount controller removes it)."""
from __future__ import annotations

import asyncio
import base64
import logging
from concurrent.futures import Executor
from typing import Any

from kproxy.api import resources as R
from kproxy.api import status as st
from kproxy.apiserver.auth.authn import SA_NAME_ANNOTATION, SA_TOKEN_TYPE, SA_UID_ANNOTATION
from kproxy.apiserver.auth.sa_admission import TOKEN_KEY
from kproxy.apiserver.auth.tokens import ServiceAccountClaims, TokenSigner
from kproxy.apiserver.registry import Registry
from kproxy.store import base as sb

log = logging.getLogger(__name__)

FILL_ATTEMPTS = 5  # a Secret changed concurrently is read again this many times


def wants_token(secret: Any) -> bool:
    """Whether a stored Secret is a service-account token Secret still without its token (pure)."""
    return (isinstance(secret, dict) and secret.get("type") == SA_TOKEN_TYPE
            and not ((secret.get("data") or {}).get(TOKEN_KEY)))


class TokenController:
    def __init__(self, registry: Registry, signer: TokenSigner, ca_pem: bytes):
        self.registry = registry
        self.signer = signer
        self.ca_pem = ca_pem

    def fill(self, namespace: str, name: str) -> bool:
        """Signs and stores the token of one Secret if it still wants one (blocking). True when
        it wrote the token."""
        for _ in range(FILL_ATTEMPTS):
            try:
                secret = self.registry.get(R.SECRETS, namespace, name)
            except st.ApiError:
                return False  # deleted meanwhile
            if not wants_token(secret):
                return False
            meta = secret.get("metadata") or {}
            annotations = meta.get("annotations") or {}
            account, uid = annotations.get(SA_NAME_ANNOTATION, ""), annotations.get(SA_UID_ANNOTATION, "")
            try:
                sa = self.registry.store.get(R.SERVICE_ACCOUNTS.store_key(account, namespace)).value
            except sb.NotFound:
                return False
            if (sa.get("metadata") or {}).get("uid") != uid:
                return False
            token = self.signer.sign(ServiceAccountClaims(namespace, name, account, uid))
            secret["data"] = {**(secret.get("data") or {}), TOKEN_KEY: _b64(token.encode()),
                              "ca.crt": _b64(self.ca_pem), "namespace": _b64(namespace.encode())}
            try:
                self.registry.update(R.SECRETS, namespace, name, secret)  # resourceVersion: conditional
                return True
            except st.ApiError as exc:
                if exc.code != 409:
                    log.warning("cannot fill the token of Secret %s/%s: %s", namespace, name, exc)
                    return False
        return False

    def unfilled(self) -> list[tuple[str, str]]:
        """(namespace, name) of every token Secret still without a token (blocking)."""
        kvs, _ = self.registry.store.list(R.SECRETS.store_prefix())
        return [((kv.value.get("metadata") or {}).get("namespace", ""), (kv.value.get("metadata") or {}).get("name", ""))
                for kv in kvs if wants_token(kv.value)]

    async def run(self, executor: Executor) -> None:
        """Fills what is pending, then every token Secret created or emptied from now on."""
        loop = asyncio.get_running_loop()
        pending: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

        def on_event(event: sb.Event) -> None:  # on the store's writer thread: hand over only
            if event.type != sb.DELETED and wants_token(event.value):
                m = event.value.get("metadata") or {}
                try:
                    loop.call_soon_threadsafe(pending.put_nowait, (m.get("namespace", ""), m.get("name", "")))
                except RuntimeError:
                    pass  # the loop is closing
        store = self.registry.store
        cancel = await loop.run_in_executor(executor, lambda: store.watch(
            R.SECRETS.store_prefix(), store.revision, on_event))
        try:
            for key in await loop.run_in_executor(executor, self.unfilled):
                pending.put_nowait(key)
            while True:
                namespace, name = await pending.get()
                try:
                    await loop.run_in_executor(executor, self.fill, namespace, name)
                except Exception:  # one bad Secret must not stop the others' tokens
                    log.exception("filling the token of Secret %s/%s failed", namespace, name)
        finally:
            cancel()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
