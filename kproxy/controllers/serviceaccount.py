"""ServiceAccount controller: every active namespace has a "default" ServiceAccount; one that
is deleted is created again. Terminating namespaces are left alone.

It creates no token Secrets: as upstream since 1.24, clients get bound, expiring tokens through
TokenRequest (`kubectl create token`), and a legacy token Secret (type
kubernetes.io/service-account-token) exists only when a user creates one; the apiserver fills
its token in. It removes token Secrets whose ServiceAccount is gone or was recreated with
another uid, as upstream's tokens controller: such a token no longer authenticates (the
apiserver checks the account), and the Secret holding it should not linger."""
from __future__ import annotations

from typing import Any

from kproxy.api.resources import NAMESPACES, SECRETS, SERVICE_ACCOUNTS
from kproxy.api.status import ApiError
from kproxy.controllers.base import Controller, Handlers, SharedInformers
from kproxy.controllers.namespace import is_terminating_namespace
from kproxy.controllers.podutil import meta

DEFAULT_NAME = "default"
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"


def orphaned_token_secrets(secrets: list[dict], accounts: dict[str, str]) -> list[str]:
    """Names of token Secrets whose account (name -> uid in `accounts`) is gone or replaced (pure)."""
    out = []
    for s in secrets:
        if s.get("type") != SA_TOKEN_TYPE:
            continue
        ann = meta(s).get("annotations") or {}
        uid = accounts.get(ann.get(SA_NAME_ANNOTATION, ""))
        if uid is None or (ann.get(SA_UID_ANNOTATION) and ann.get(SA_UID_ANNOTATION) != uid):
            out.append(meta(s).get("name", ""))
    return out


class ServiceAccountController(Controller):
    name = "serviceaccount"

    def __init__(self, client: Any, informers: SharedInformers):
        super().__init__(client, informers)
        self.namespaces = informers.get(NAMESPACES)
        self.accounts = informers.get(SERVICE_ACCOUNTS)
        self.secrets = informers.get(SECRETS)
        self.namespaces.add_handler(Handlers(on_add=self._ns_changed, on_update=lambda o, n: self._ns_changed(n)))
        self.accounts.add_handler(Handlers(on_add=self._sa_changed, on_delete=self._sa_changed))
        self.secrets.add_handler(Handlers(on_add=self._secret_changed, on_update=lambda o, n: self._secret_changed(n),
                                          on_delete=self._secret_changed))

    def watched(self):
        return [NAMESPACES, SERVICE_ACCOUNTS, SECRETS]

    async def resync(self) -> None:
        for name in self.namespaces.cache:
            self.queue.add(name)

    def _ns_changed(self, ns: dict) -> None:
        self.queue.add(meta(ns)["name"])

    def _sa_changed(self, sa: dict) -> None:
        self.queue.add(meta(sa).get("namespace"))

    def _secret_changed(self, secret: dict) -> None:
        if secret.get("type") == SA_TOKEN_TYPE:
            self.queue.add(meta(secret).get("namespace"))

    async def reconcile(self, namespace: str) -> None:
        ns = self.namespaces.get(namespace)
        if ns is None or is_terminating_namespace(ns):
            return
        await self._remove_orphaned_tokens(namespace)
        if self.accounts.get(DEFAULT_NAME, namespace) is not None:
            return
        try:
            await self.client.create(SERVICE_ACCOUNTS, {"metadata": {"name": DEFAULT_NAME, "namespace": namespace}},
                                     namespace)
        except ApiError as exc:
            # 409: it exists (our cache lags); 403/404: the namespace is going away.
            if exc.code not in (409, 403, 404):
                raise

    def _namespace_view(self, namespace: str) -> tuple[list[dict], dict[str, str]]:
        """The namespace's Secrets and its accounts (name -> uid), from the caches."""
        secrets = [s for s in self.secrets.cache.values() if meta(s).get("namespace") == namespace]
        accounts = {meta(a).get("name", ""): meta(a).get("uid", "") for a in self.accounts.cache.values()
                    if meta(a).get("namespace") == namespace}
        return secrets, accounts

    async def _remove_orphaned_tokens(self, namespace: str) -> None:
        secrets, accounts = self._namespace_view(namespace)
        for name in orphaned_token_secrets(secrets, accounts):
            secret = self.secrets.get(name, namespace) or {}
            if await self._account_current(namespace, secret):
                continue  # our account cache lags behind the Secret's; it is not orphaned
            try:
                await self.client.delete(SECRETS, name, namespace)
            except ApiError as exc:
                if exc.code != 404:
                    raise

    async def _account_current(self, namespace: str, secret: dict) -> bool:
        """Asks the apiserver (not the cache) whether the Secret's account still exists."""
        ann = meta(secret).get("annotations") or {}
        try:
            sa = await self.client.get(SERVICE_ACCOUNTS, ann.get(SA_NAME_ANNOTATION, ""), namespace)
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return not ann.get(SA_UID_ANNOTATION) or meta(sa).get("uid") == ann.get(SA_UID_ANNOTATION)
