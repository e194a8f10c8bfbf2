"""ServiceAccount controller: every active namespace has a "default" ServiceAccount; one that
is deleted is created again. Terminating namespaces are left alone."""
from __future__ import annotations

from typing import Any

from kproxy.api.resources import NAMESPACES, SERVICE_ACCOUNTS
from kproxy.api.status import ApiError
from kproxy.controllers.base import Controller, Handlers, SharedInformers
from kproxy.controllers.namespace import is_terminating_namespace
from kproxy.controllers.podutil import meta

DEFAULT_NAME = "default"


class ServiceAccountController(Controller):
    name = "serviceaccount"

    def __init__(self, client: Any, informers: SharedInformers):
        super().__init__(client, informers)
        self.namespaces = informers.get(NAMESPACES)
        self.accounts = informers.get(SERVICE_ACCOUNTS)
        self.namespaces.add_handler(Handlers(on_add=self._ns_changed, on_update=lambda o, n: self._ns_changed(n)))
        self.accounts.add_handler(Handlers(on_delete=self._sa_deleted))

    def watched(self):
        return [NAMESPACES, SERVICE_ACCOUNTS]

    async def resync(self) -> None:
        for name in self.namespaces.cache:
            self.queue.add(name)

    def _ns_changed(self, ns: dict) -> None:
        self.queue.add(meta(ns)["name"])

    def _sa_deleted(self, sa: dict) -> None:
        if meta(sa).get("name") == DEFAULT_NAME:
            self.queue.add(meta(sa).get("namespace"))

    async def reconcile(self, namespace: str) -> None:
        ns = self.namespaces.get(namespace)
        if ns is None or is_terminating_namespace(ns):
            return
        if self.accounts.get(DEFAULT_NAME, namespace) is not None:
            return
        try:
            await self.client.create(SERVICE_ACCOUNTS, {"metadata": {"name": DEFAULT_NAME, "namespace": namespace}},
                                     namespace)
        except ApiError as exc:
            # 409: it exists (our cache lags); 403/404: the namespace is going away.
            if exc.code not in (409, 403, 404):
                raise
