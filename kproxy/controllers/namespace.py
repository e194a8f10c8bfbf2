"""Namespace controller.

Guarantees:
- The system namespaces (default, kube-system, kube-public, kube-node-lease) exist; one that
  is deleted is created again once it is gone.
- A namespace with a deletionTimestamp (Terminating) has every namespaced object of every
  resource in kproxy.api.resources.ALL deleted; only when a fresh list shows none left is the
  "kubernetes" finalizer removed through PUT /api/v1/namespaces/NAME/finalize, which lets the
  apiserver delete the namespace. Objects that do not go away at once (own finalizers,
  graceful deletion) make the controller retry later, never finalize early.
"""
from __future__ import annotations

import logging
from typing import Any

from kproxy.api.resources import ALL, NAMESPACES
from kproxy.api.status import ApiError
from kproxy.controllers.base import Controller, Handlers, RequeueAfter, SharedInformers
from kproxy.controllers.podutil import meta

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
FINALIZER = "kubernetes"


def is_terminating_namespace(ns: dict) -> bool:
    return bool(meta(ns).get("deletionTimestamp")) or (ns.get("status") or {}).get("phase") == "Terminating"


def without_finalizer(ns: dict) -> dict:
    """The namespace with "kubernetes" removed from spec.finalizers (for the finalize PUT)."""
    out = dict(ns)
    spec = dict(out.get("spec") or {})
    spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]
    out["spec"] = spec
    return out


class NamespaceController(Controller):
    name = "namespace"
    workers = 2

    def __init__(self, client: Any, informers: SharedInformers, *, retry_delay: float = 1.0):
        super().__init__(client, informers)
        self.namespaces = informers.get(NAMESPACES)
        self.retry_delay = retry_delay
        enqueue = self._enqueue
        self.namespaces.add_handler(Handlers(on_add=enqueue, on_update=lambda o, n: enqueue(n), on_delete=enqueue))

    def watched(self):
        return [NAMESPACES]

    def _enqueue(self, ns: dict) -> None:
        self.queue.add(meta(ns).get("name"))

    async def resync(self) -> None:
        for name in SYSTEM_NAMESPACES:
            self.queue.add(name)
        for name in self.namespaces.cache:
            self.queue.add(name)

    async def reconcile(self, name: str) -> None:
        ns = self.namespaces.get(name)
        if ns is None:
            if name in SYSTEM_NAMESPACES:
                await self._ensure(name)
            return
        if is_terminating_namespace(ns):
            await self._drain_and_finalize(ns)

    async def _ensure(self, name: str) -> None:
        try:
            await self.client.create(NAMESPACES, {"metadata": {"name": name}})
            log.info("namespace: created system namespace %s", name)
        except ApiError as exc:
            if exc.code != 409:
                raise
            # AlreadyExists: the cache lags, or the old one is still terminating; look again later
            if self.namespaces.get(name) is None:
                raise RequeueAfter(self.retry_delay, f"namespace {name} still exists on the server") from None

    async def _drain_and_finalize(self, ns: dict) -> None:
        name = meta(ns)["name"]
        remaining = deleted = 0
        for resource in ALL:
            if not resource.namespaced:
                continue
            try:
                items = (await self.client.list(resource, namespace=name)).get("items") or []
            except ApiError as exc:
                if exc.code in (404, 405):
                    continue  # a resource this server does not serve
                raise
            for item in items:
                remaining += 1
                if meta(item).get("deletionTimestamp"):
                    continue  # already going away
                try:
                    await self.client.delete(resource, meta(item)["name"], name)
                    deleted += 1
                except ApiError as exc:
                    if exc.code != 404:
                        raise
        if remaining:
            # Check again from a fresh list before finalizing (deletes may be graceful); soon
            # after our own deletes, slowly while only others' finalizers hold objects.
            raise RequeueAfter(0.05 if deleted else self.retry_delay, f"{remaining} objects were left in {name}")
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return  # finalized already; the apiserver removes it
        try:
            await self.client.finalize_namespace(without_finalizer(ns))
            log.info("namespace: %s emptied and finalized", name)
        except ApiError as exc:
            if exc.code != 404:
                raise
