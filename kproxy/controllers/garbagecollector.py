"""Garbage collector: deletes objects whose owners are gone, and carries out the Orphan and
Foreground propagation policies, as kube-controller-manager's garbagecollector.

The graph is the ownerReferences of the objects of GC_RESOURCES, kept as an index from owner
uid to dependents while the informers deliver them (handlers only index and enqueue). A
worker takes one object and:
- marked for deletion with the `orphan` finalizer: removes its reference from every
  dependent, then the finalizer;
- marked with `foregroundDeletion`: deletes its dependents (those that block it in the
  foreground, so their own dependents go first) and removes the finalizer once no dependent
  with blockOwnerDeletion is left;
- otherwise, for each owner reference: an owner that is gone (absent from the cache and from
  a live read, or present with another uid) is dangling. With no owner left the object is
  deleted (in the foreground when an owner is itself being deleted in the foreground); with
  some left, the dangling references are removed.
An object it cannot act on is logged and retried with backoff; the others go on.
"""
from __future__ import annotations

import logging
from typing import Any

from kproxy.api.resources import (
    CONFIG_MAPS, CONTROLLER_REVISIONS, CRON_JOBS, DAEMON_SETS, DEPLOYMENTS, ENDPOINT_SLICES, JOBS, PODS, REPLICA_SETS,
    REPLICATION_CONTROLLERS, SECRETS, SERVICES, STATEFUL_SETS, Resource, by_kind, by_group_version_plural,
)
from kproxy.api.status import ApiError
from kproxy.controllers.base import Controller, Handlers, SharedInformers
from kproxy.controllers.ownership import Obj, meta, release_patch

log = logging.getLogger(__name__)

ORPHAN, FOREGROUND = "orphan", "foregroundDeletion"
# the kinds whose ownerReferences the collector follows (owners of any served kind are looked up)
GC_RESOURCES: tuple[Resource, ...] = (DEPLOYMENTS, REPLICA_SETS, PODS, SERVICES, ENDPOINT_SLICES, CONFIG_MAPS,
                                      SECRETS, CRON_JOBS, JOBS, REPLICATION_CONTROLLERS, DAEMON_SETS, STATEFUL_SETS,
                                      CONTROLLER_REVISIONS)


def item_key(resource: Resource, obj: Obj) -> str:
    """"group/version/plural|namespace/name": which object to look at."""
    m = meta(obj)
    return f"{resource.group}/{resource.version}/{resource.plural}|{m.get('namespace') or ''}/{m.get('name')}"


def parse_item_key(key: str) -> tuple[Resource | None, str | None, str]:
    kind, _, ref = key.partition("|")
    group, version, plural = kind.split("/", 2)
    ns, _, name = ref.partition("/")
    return by_group_version_plural(group, version, plural), ns or None, name


class GarbageCollector(Controller):
    name = "garbagecollector"
    workers = 2

    def __init__(self, client: Any, informers: SharedInformers):
        super().__init__(client, informers)
        self.informers_by_resource = {r: informers.get(r) for r in GC_RESOURCES}
        # owner uid -> {item key of a dependent: the dependent's reference to that owner}
        self.dependents: dict[str, dict[str, dict]] = {}
        for resource, informer in self.informers_by_resource.items():
            informer.add_handler(Handlers(
                on_add=lambda obj, r=resource: self._observe(r, None, obj),
                on_update=lambda old, new, r=resource: self._observe(r, old, new),
                on_delete=lambda obj, r=resource: self._gone(r, obj)))

    def watched(self):
        return list(GC_RESOURCES)

    async def resync(self) -> None:
        for resource, informer in self.informers_by_resource.items():
            for obj in informer.list():
                if meta(obj).get("ownerReferences") or _gc_finalizers(obj):
                    self.queue.add(item_key(resource, obj))

    # handlers: index and enqueue only
    def _observe(self, resource: Resource, old: Obj | None, new: Obj) -> None:
        key = item_key(resource, new)
        if old is not None:
            for ref in meta(old).get("ownerReferences") or []:
                self.dependents.get(ref.get("uid", ""), {}).pop(key, None)
        for ref in meta(new).get("ownerReferences") or []:
            self.dependents.setdefault(ref.get("uid", ""), {})[key] = ref
        if meta(new).get("ownerReferences") or (meta(new).get("deletionTimestamp") and _gc_finalizers(new)):
            self.queue.add(key)
        if meta(new).get("deletionTimestamp") and _gc_finalizers(new):
            for dep in self.dependents.get(meta(new).get("uid", ""), {}):
                self.queue.add(dep)

    def _gone(self, resource: Resource, obj: Obj) -> None:
        key = item_key(resource, obj)
        for ref in meta(obj).get("ownerReferences") or []:
            deps = self.dependents.get(ref.get("uid", ""), {})
            deps.pop(key, None)
            if not deps:
                self.dependents.pop(ref.get("uid", ""), None)
            owner = self._owner_item(resource, obj, ref)
            if owner is not None:
                self.queue.add(owner)  # a foreground owner may be waiting for this one
        for dep in self.dependents.get(meta(obj).get("uid", ""), {}):
            self.queue.add(dep)

    def _owner_item(self, resource: Resource, obj: Obj, ref: dict) -> str | None:
        owner = by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if owner is None:
            return None
        ns = meta(obj).get("namespace") if owner.namespaced else None
        return item_key(owner, {"metadata": {"namespace": ns, "name": ref.get("name")}})

    # reconcile
    async def reconcile(self, key: str) -> None:
        resource, namespace, name = parse_item_key(key)
        if resource is None:
            return
        informer = self.informers_by_resource.get(resource)
        obj = informer.get(name, namespace) if informer is not None else await self._read(resource, namespace, name)
        if obj is None:
            return
        finalizers = meta(obj).get("finalizers") or []
        if meta(obj).get("deletionTimestamp") and ORPHAN in finalizers:
            await self._orphan_dependents(obj)
            await self._remove_finalizer(resource, obj, ORPHAN)
            return
        if meta(obj).get("deletionTimestamp") and FOREGROUND in finalizers:
            if await self._delete_dependents(obj):
                await self._remove_finalizer(resource, obj, FOREGROUND)
            return
        await self._check_owners(resource, obj)

    async def _read(self, resource: Resource, namespace: str | None, name: str) -> Obj | None:
        try:
            return await self.client.get(resource, name, namespace)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def _dependents_of(self, obj: Obj) -> list[tuple[str, dict]]:
        return list(self.dependents.get(meta(obj).get("uid", ""), {}).items())

    async def _orphan_dependents(self, owner: Obj) -> None:
        for dep_key, _ in self._dependents_of(owner):
            resource, ns, name = parse_item_key(dep_key)
            if resource is None:
                continue
            try:
                await self.client.patch(resource, name, release_patch({}, meta(owner)["uid"]),
                                        ns, "strategic")
            except ApiError as exc:
                if exc.code != 404:
                    raise

    async def _delete_dependents(self, owner: Obj) -> bool:
        """Deletes the owner's dependents; True once none that blocks it is left."""
        blocking = False
        for dep_key, ref in self._dependents_of(owner):
            resource, ns, name = parse_item_key(dep_key)
            if resource is None:
                continue
            dep = self.informers_by_resource[resource].get(name, ns) if resource in self.informers_by_resource else None
            if dep is None:
                continue
            if ref.get("blockOwnerDeletion"):
                blocking = True
            if meta(dep).get("deletionTimestamp"):
                continue
            policy = "Foreground" if ref.get("blockOwnerDeletion") else "Background"
            await self._delete(resource, dep, policy)
        return not blocking

    async def _check_owners(self, resource: Resource, obj: Obj) -> None:
        refs = meta(obj).get("ownerReferences") or []
        if not refs:
            return
        dangling, foreground_owner = [], False
        for ref in refs:
            owner = await self._owner(obj, ref)
            if owner is None:
                dangling.append(ref)
            elif meta(owner).get("deletionTimestamp") and FOREGROUND in (meta(owner).get("finalizers") or []):
                foreground_owner = True
        if not dangling and not foreground_owner:
            return
        if len(dangling) == len(refs) or foreground_owner and all(
                r in dangling or r.get("blockOwnerDeletion") for r in refs):
            if not meta(obj).get("deletionTimestamp"):
                await self._delete(resource, obj, "Foreground" if foreground_owner else "Background")
            return
        for ref in dangling:
            try:
                await self.client.patch(resource, meta(obj)["name"], release_patch(obj, ref.get("uid", "")),
                                        meta(obj).get("namespace"), "strategic")
            except ApiError as exc:
                if exc.code != 404:
                    raise

    async def _owner(self, obj: Obj, ref: dict) -> Obj | None:
        """The owner `ref` names, when it exists with that uid (cache first, then a live read:
        an owner the cache has not shown yet must not make its dependents look orphaned)."""
        owner_resource = by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if owner_resource is None:
            return {"metadata": {"uid": ref.get("uid")}}  # a kind we do not serve: never ours to judge
        ns = meta(obj).get("namespace") if owner_resource.namespaced else None
        informer = self.informers_by_resource.get(owner_resource)
        cached = informer.get(ref.get("name", ""), ns) if informer is not None else None
        if cached is not None and meta(cached).get("uid") == ref.get("uid"):
            return cached
        live = await self._read(owner_resource, ns, ref.get("name", ""))
        return live if live is not None and meta(live).get("uid") == ref.get("uid") else None

    async def _delete(self, resource: Resource, obj: Obj, policy: str) -> None:
        try:
            await self.client.delete(resource, meta(obj)["name"], meta(obj).get("namespace"),
                                     uid=meta(obj).get("uid"), propagation_policy=policy)
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    async def _remove_finalizer(self, resource: Resource, obj: Obj, finalizer: str) -> None:
        updated = dict(obj)
        updated["metadata"] = {**meta(obj), "finalizers": [f for f in meta(obj).get("finalizers") or []
                                                           if f != finalizer]}
        try:
            await self.client.update(resource, updated)
        except ApiError as exc:
            if exc.code != 404:
                raise  # 409: retried with the newer object


def _gc_finalizers(obj: Obj) -> bool:
    return bool({ORPHAN, FOREGROUND} & set(meta(obj).get("finalizers") or []))
