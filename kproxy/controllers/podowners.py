"""What the controllers that own pods directly share: a queue of owners fed by their own
informer and by their pods' events, expectations of their own pod creates and deletes
(expectations.py), adoption and release by controller reference (ownership.py) and Events
(`PodOwnerBase`, also the ReplicaSet controller's base); the DaemonSet and StatefulSet
controllers add the ControllerRevision history (revisions.py) (`PodOwnerController`).
Subclasses implement `reconcile(key)`.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from kproxy.api.resources import CONTROLLER_REVISIONS, PODS, Resource
from kproxy.api.status import ApiError
from kproxy.client.events import EventRecorder
from kproxy.controllers.base import Controller, Handlers, SharedInformers
from kproxy.controllers.expectations import Expectations
from kproxy.controllers.ownership import (
    Obj, adopt_patch, claim, controller_ref, is_deleting, meta, owner_reference, release_patch, selector_of,
)
from kproxy.controllers.podutil import is_terminal
from kproxy.controllers.revisions import RevisionHistory

NORMAL, WARNING = "Normal", "Warning"


def key_of(obj: Obj) -> str:
    return f"{meta(obj).get('namespace')}/{meta(obj).get('name')}"


class PodOwnerBase(Controller):
    owner: Resource  # the kind whose pods this controller manages
    component = ""  # the Events' source

    def __init__(self, client: Any, informers: SharedInformers, clock: Callable[[], float] | None = None):
        super().__init__(client, informers)
        self.clock = clock or time.time
        self.owners = informers.get(self.owner)
        self.pods = informers.get(PODS)
        self.expectations = Expectations()
        self.events = EventRecorder(client, self.component)
        self.owners.add_handler(Handlers(on_add=self._enqueue, on_update=lambda o, n: self._enqueue(n),
                                         on_delete=self._owner_deleted))
        self.pods.add_handler(Handlers(on_add=self._pod_added, on_update=self._pod_updated,
                                       on_delete=self._pod_deleted))

    def watched(self) -> list[Resource]:
        return [self.owner, PODS]

    async def resync(self) -> None:
        for obj in self.owners.list():
            self._enqueue(obj)

    def record(self, obj: Obj, event_type: str, reason: str, message: str) -> None:
        md = meta(obj)
        self.events.record((self.owner.group_version, self.owner.kind), md.get("namespace") or "default",
                           md.get("name", ""), event_type, reason, message, uid=md.get("uid"))

    # handlers: bookkeeping and enqueue only
    def _enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def _owner_deleted(self, obj: Obj) -> None:
        self.expectations.forget(key_of(obj))
        self._enqueue(obj)

    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != self.owner.kind or ref.get("apiVersion") != self.owner.group_version:
            return None
        owner = self.owners.get(ref.get("name", ""), meta(pod).get("namespace"))
        if owner is None or meta(owner).get("uid") != ref.get("uid"):
            return None
        return key_of(owner)

    def _enqueue_matching(self, pod: Obj) -> None:
        """An orphan: every owner that may adopt it."""
        for obj in self.owners.list(meta(pod).get("namespace")):
            if selector_of(obj).matches(meta(pod).get("labels")):
                self._enqueue(obj)

    def _pod_added(self, pod: Obj) -> None:
        owner = self._owner_key(pod)
        if owner is not None:
            self.expectations.creation_observed(owner)
            self.queue.add(owner)
        elif controller_ref(pod) is None:
            self._enqueue_matching(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        owner, old_owner = self._owner_key(new), self._owner_key(old)
        if old_owner is not None and old_owner != owner:
            self.queue.add(old_owner)
        if owner is not None:
            if is_deleting(new) and not is_deleting(old):
                self.expectations.deletion_observed(owner, key_of(new))
            self.queue.add(owner)
        elif controller_ref(new) is None and (meta(old).get("labels") != meta(new).get("labels") or old_owner):
            self._enqueue_matching(new)

    def _pod_deleted(self, pod: Obj) -> None:
        owner = self._owner_key(pod)
        if owner is not None:
            self.expectations.deletion_observed(owner, key_of(pod))
            self.queue.add(owner)

    # I/O shared by the subclasses' reconciles
    async def owned_pods(self, obj: Obj, eligible: Callable[[Obj], bool] = lambda p: not is_terminal(p)) -> list[Obj]:
        """The owner's pods after adopting matching orphans and releasing pods that stopped
        matching; pods whose patch fails are left out."""
        claimed = claim(obj, self.pods.list(meta(obj).get("namespace")), eligible=eligible)
        owned = [p for p in claimed.owned if p not in claimed.adopt]
        ref = owner_reference(obj, self.owner.group_version, self.owner.kind)
        for pod in claimed.adopt:
            try:
                owned.append(await self.client.patch(PODS, meta(pod)["name"], adopt_patch(pod, ref),
                                                     meta(pod)["namespace"], "strategic"))
            except ApiError as exc:
                if exc.code not in (404, 409, 422):
                    raise
        for pod in claimed.release:
            try:
                await self.client.patch(PODS, meta(pod)["name"], release_patch(pod, meta(obj)["uid"]),
                                        meta(pod)["namespace"], "strategic")
            except ApiError as exc:
                if exc.code not in (404, 409, 422):
                    raise
        return owned

    async def delete_pod(self, key: str, obj: Obj, pod: Obj, message: str) -> str | None:
        """Deletes one of the owner's pods (expected); returns the failure, if any."""
        self.expectations.expect_deletions(key, [key_of(pod)])
        try:
            await self.client.delete(PODS, meta(pod)["name"], meta(pod)["namespace"], uid=meta(pod).get("uid"))
        except ApiError as exc:
            self.expectations.deletion_observed(key, key_of(pod))
            if exc.code in (404, 409):
                return None  # already gone or replaced
            self.record(obj, WARNING, "FailedDelete", f"Error deleting: {exc}")
            return f"FailedDelete: {exc}"
        self.record(obj, NORMAL, "SuccessfulDelete", message)
        return None

    async def create_pod(self, key: str, obj: Obj, pod: Obj, message: Callable[[Obj], str]) -> str | None:
        """Creates one pod for the owner (expected); returns the failure, if any."""
        self.expectations.expect_creations(key, 1)
        try:
            created = await self.client.create(PODS, pod, meta(obj)["namespace"])
        except ApiError as exc:
            self.expectations.creation_observed(key)
            if exc.code == 409:
                return None  # exists already: the informer will show it
            self.record(obj, WARNING, "FailedCreate", f"Error creating: {exc}")
            return f"FailedCreate: {exc}"
        self.record(obj, NORMAL, "SuccessfulCreate", message(created))
        return None

    async def write_status(self, obj: Obj, status: dict[str, Any]) -> None:
        if status == (obj.get("status") or {}):
            return
        try:
            await self.client.update_status(self.owner, {**obj, "status": status})
        except ApiError as exc:
            if exc.code != 404:
                raise  # 409: the cache was stale; the retry reads the newer one


class PodOwnerController(PodOwnerBase):
    """A pod owner with a ControllerRevision history (DaemonSet, StatefulSet)."""

    def __init__(self, client: Any, informers: SharedInformers, clock: Callable[[], float] | None = None):
        super().__init__(client, informers, clock)
        self.history = RevisionHistory(client, informers.get(CONTROLLER_REVISIONS), self.owner)

    def watched(self) -> list[Resource]:
        return [*super().watched(), CONTROLLER_REVISIONS]
