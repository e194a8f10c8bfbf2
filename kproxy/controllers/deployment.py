"""Deployment controller: rolls each Deployment's pod template out through ReplicaSets, as
kube-controller-manager's deployment controller; the steps themselves are pure (rollout.py).

A reconcile claims the Deployment's ReplicaSets (controller reference and selector, adopting
and releasing as the ReplicaSet controller does with pods), finds or creates the ReplicaSet of
the current template (named <deployment>-<pod-template-hash>, revision max+1), then takes one
step: RollingUpdate within maxSurge/maxUnavailable, or Recreate (old pods all gone before new
ones are made); a paused Deployment only scales. Old ReplicaSets beyond revisionHistoryLimit
are deleted and the status (with Available/Progressing conditions) is written. It waits until
its informer shows the ReplicaSet writes it made (WrittenVersions) before the next step.
All state lives in the API objects, so a restarted controller goes on where it stopped.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from kproxy.api.resources import DEPLOYMENTS, PODS, REPLICA_SETS
from kproxy.api.status import ApiError
from kproxy.controllers.base import Controller, Handlers, RequeueAfter, SharedInformers
from kproxy.client.events import EventRecorder
from kproxy.controllers.expectations import WrittenVersions
from kproxy.controllers.ownership import (
    Obj, adopt_patch, claim, controller_ref, is_deleting, meta, owner_reference, release_patch, selector_of,
)
from kproxy.controllers.replicaset import active_pods, is_available, key_of
from kproxy.controllers import rollout

log = logging.getLogger(__name__)

NORMAL, WARNING = "Normal", "Warning"
COMPONENT = "deployment-controller"


class DeploymentController(Controller):
    name = "deployment"
    workers = 2

    def __init__(self, client: Any, informers: SharedInformers, clock: Callable[[], float] | None = None):
        super().__init__(client, informers)
        self.clock = clock or time.time
        self.deployments = informers.get(DEPLOYMENTS)
        self.replica_sets = informers.get(REPLICA_SETS)
        self.pods = informers.get(PODS)
        self.written = WrittenVersions()
        # ReplicaSet uid -> (pods it may still have, revision of the scale-down): kept until
        # the pod informer is past that revision and shows the ReplicaSet within its spec
        self.draining: dict[str, tuple[int, int]] = {}
        self.events = EventRecorder(client, COMPONENT)
        self.deployments.add_handler(Handlers(on_add=self._enqueue, on_update=lambda o, n: self._enqueue(n),
                                              on_delete=self._deployment_deleted))
        self.replica_sets.add_handler(Handlers(on_add=self._rs_changed, on_update=self._rs_updated,
                                               on_delete=self._rs_changed))
        self.pods.add_handler(Handlers(on_add=self._pod_changed, on_update=lambda o, n: self._pod_changed(n),
                                       on_delete=self._pod_changed))

    def watched(self):
        return [DEPLOYMENTS, REPLICA_SETS, PODS]

    def _record(self, obj: Obj, event_type: str, reason: str, message: str) -> None:
        md = meta(obj)
        self.events.record((DEPLOYMENTS.group_version, DEPLOYMENTS.kind), md.get("namespace") or "default",
                           md.get("name", ""), event_type, reason, message, uid=md.get("uid"))

    async def resync(self) -> None:
        for d in self.deployments.list():
            self._enqueue(d)

    # handlers: enqueue only
    def _enqueue(self, d: Obj) -> None:
        self.queue.add(key_of(d))

    def _deployment_deleted(self, d: Obj) -> None:
        self.written.forget(key_of(d))
        live = {meta(rs).get("uid") for rs in self.replica_sets.cache.values()}
        self.draining = {uid: v for uid, v in self.draining.items() if uid in live}
        self._enqueue(d)

    def _owner_of_rs(self, rs: Obj) -> Obj | None:
        ref = controller_ref(rs)
        if ref is None or ref.get("kind") != DEPLOYMENTS.kind:
            return None
        d = self.deployments.get(ref.get("name", ""), meta(rs).get("namespace"))
        return d if d is not None and meta(d).get("uid") == ref.get("uid") else None

    def _rs_changed(self, rs: Obj) -> None:
        owner = self._owner_of_rs(rs)
        if owner is not None:
            self._enqueue(owner)
        elif controller_ref(rs) is None:
            for d in self.deployments.list(meta(rs).get("namespace")):
                if selector_of(d).matches(meta(rs).get("labels")):
                    self._enqueue(d)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        self._rs_changed(new)
        if controller_ref(old) != controller_ref(new):
            self._rs_changed(old)

    def _pod_changed(self, pod: Obj) -> None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != REPLICA_SETS.kind:
            return
        rs = self.replica_sets.get(ref.get("name", ""), meta(pod).get("namespace"))
        if rs is not None:
            owner = self._owner_of_rs(rs)
            if owner is not None:
                self._enqueue(owner)

    # reconcile
    async def reconcile(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        d = self.deployments.get(name, namespace)
        if d is None:
            self.written.forget(key)
            return
        if self.written.stale(key, self.replica_sets.cache):
            raise RequeueAfter(0.05, "replicaset cache has not seen our last writes")
        views = await self._claim(d)
        if is_deleting(d):
            return
        new = rollout.find_new(d, views)
        old = [v for v in views if v is not new]
        spec = d.get("spec") or {}
        created_new = False
        if spec.get("paused"):
            await self._apply(key, d, rollout.scale_proportionally(d, new, old), views)
        else:
            if new is None:
                may_create = True
                if (spec.get("strategy") or {}).get("type") == "Recreate":
                    plan, may_create = rollout.recreate(d, None, old)
                    await self._apply(key, d, plan, views)
                if may_create:
                    new = await self._create_new(key, d, views, old)
                    if new is None:
                        return  # created by a concurrent writer or collided: the next event retries
                    views.append(new)
                    created_new = True
            await self._update_revision(key, d, new, old)
            if (spec.get("strategy") or {}).get("type") == "Recreate":
                plan, _ = rollout.recreate(d, new, old)
            elif not old and new.spec != rollout.replicas_of(d):
                plan = rollout.scale_proportionally(d, new, old)
            else:
                plan = rollout.rolling_update(d, new, old)
            await self._apply(key, d, plan, views)
            await self._clean_history(d, old)
        status = rollout.deployment_status(d, new, views, self.clock(), created_new)
        await self._write_status(d, status)
        wait = rollout.progress_check_in(d, status, self.clock())
        if wait is not None:
            raise RequeueAfter(wait, "progress deadline check")

    async def _claim(self, d: Obj) -> list[rollout.RSView]:
        """The Deployment's ReplicaSets (adopting and releasing), with their pod counts."""
        namespace = meta(d)["namespace"]
        claimed = claim(d, self.replica_sets.list(namespace))
        ref = owner_reference(d, DEPLOYMENTS.group_version, DEPLOYMENTS.kind)
        owned = [rs for rs in claimed.owned if rs not in claimed.adopt]
        for rs in claimed.adopt:
            try:
                owned.append(await self.client.patch(REPLICA_SETS, meta(rs)["name"], adopt_patch(rs, ref), namespace,
                                                     "strategic"))
            except ApiError as exc:
                if exc.code not in (404, 409, 422):
                    raise
        for rs in claimed.release:
            try:
                await self.client.patch(REPLICA_SETS, meta(rs)["name"], release_patch(rs, meta(d)["uid"]), namespace,
                                        "strategic")
            except ApiError as exc:
                if exc.code not in (404, 409, 422):
                    raise
        by_uid = {meta(rs)["uid"]: rollout.RSView(rs) for rs in owned}
        now = self.clock()
        for pod in active_pods(self.pods.list(namespace)):
            pref = controller_ref(pod)
            view = by_uid.get(pref.get("uid")) if pref else None
            if view is not None:
                view.pods += 1
                if is_available(pod, int((view.rs.get("spec") or {}).get("minReadySeconds") or 0), now):
                    view.available += 1
        self._note_draining(by_uid)
        return list(by_uid.values())

    def _note_draining(self, by_uid: dict[str, rollout.RSView]) -> None:
        try:
            seen = int(self.pods.resource_version or 0)
        except ValueError:
            seen = 0
        for uid, view in by_uid.items():
            if uid not in self.draining:
                continue
            count, revision = self.draining[uid]
            status = view.rs.get("status") or {}
            settled = (status.get("observedGeneration", 0) >= meta(view.rs).get("generation", 1)
                       and int(status.get("replicas") or 0) <= view.spec)  # its controller saw it done
            if (seen >= revision and view.pods <= view.spec) or settled:
                del self.draining[uid]
            else:
                view.draining = count

    async def _create_new(self, key: str, d: Obj, views: list[rollout.RSView],
                          old: list[rollout.RSView]) -> rollout.RSView | None:
        collision = int((d.get("status") or {}).get("collisionCount") or 0)
        replicas = 0 if any(v.counted for v in old) else rollout.replicas_of(d)
        if (d.get("spec") or {}).get("strategy", {}).get("type") == "Recreate":
            replicas = 0
        rs = rollout.new_replica_set(d, collision, rollout.next_revision(views), replicas)
        try:
            created = await self.client.create(REPLICA_SETS, rs, meta(d)["namespace"])
        except ApiError as exc:
            if exc.code != 409:
                raise
            existing = await self.client.get(REPLICA_SETS, meta(rs)["name"], meta(d)["namespace"])
            if rollout.without_hash((existing.get("spec") or {}).get("template") or {}) == \
                    rollout.without_hash((d.get("spec") or {}).get("template") or {}):
                return None  # ours, not in the cache yet
            # another template has this hash: count the collision, which changes the next hash
            status = {**(d.get("status") or {}), "collisionCount": collision + 1}
            await self.client.update_status(DEPLOYMENTS, {**d, "status": status})
            return None
        self.written.wrote(key, key_of(created), meta(created).get("resourceVersion"))
        self._record(d, NORMAL, "ScalingReplicaSet",
                           f"Scaled up replica set {meta(created)['name']} from 0 to {replicas}")
        return rollout.RSView(created)

    async def _update_revision(self, key: str, d: Obj, new: rollout.RSView, old: list[rollout.RSView]) -> None:
        """The new ReplicaSet carries the highest revision (a rollback makes an old one new),
        and the Deployment's revision annotation says which."""
        revision = rollout.revision_of(new.rs)
        newest_old = max((rollout.revision_of(v.rs) for v in old), default=0)
        if revision <= newest_old:
            revision = newest_old + 1
        changed = rollout.with_revision(new.rs, d, revision)
        if changed is not None:
            updated = await self.client.update(REPLICA_SETS, changed)
            self.written.wrote(key, key_of(updated), meta(updated).get("resourceVersion"))
            new.rs = updated
        if (meta(d).get("annotations") or {}).get(rollout.REVISION) != str(revision):
            await self._annotate_revision(d, revision)

    async def _annotate_revision(self, d: Obj, revision: int) -> None:
        await self.client.patch(DEPLOYMENTS, meta(d)["name"],
                                {"metadata": {"annotations": {rollout.REVISION: str(revision)}}}, meta(d)["namespace"])

    async def _apply(self, key: str, d: Obj, plan: rollout.Plan, views: list[rollout.RSView]) -> None:
        by_name = {meta(v.rs)["name"]: v for v in views}
        for name, replicas in plan.scale.items():
            view = by_name.get(name)
            before = int(((self.replica_sets.get(name, meta(d)["namespace"]) or {}).get("spec") or {})
                         .get("replicas") or 0)
            updated = await self.client.patch(
                REPLICA_SETS, name, {"spec": {"replicas": replicas}, "metadata": {"annotations": {
                    rollout.DESIRED_REPLICAS: str(rollout.replicas_of(d)),
                    rollout.MAX_REPLICAS: str(rollout.replicas_of(d) + rollout.surge_and_unavailable(d)[0])}}},
                meta(d)["namespace"])
            self.written.wrote(key, key_of(updated), meta(updated).get("resourceVersion"))
            if replicas < plan.before.get(name, 0):
                try:
                    self.draining[meta(updated)["uid"]] = (plan.before[name], int(meta(updated)["resourceVersion"]))
                except (KeyError, ValueError):
                    pass
            if view is not None:
                view.rs = updated
            direction = "up" if replicas > before else "down"
            self._record(d, NORMAL, "ScalingReplicaSet",
                               f"Scaled {direction} replica set {name} from {before} to {replicas}")

    async def _clean_history(self, d: Obj, old: list[rollout.RSView]) -> None:
        for rs in rollout.history_to_delete(d, old):
            try:
                await self.client.delete(REPLICA_SETS, meta(rs)["name"], meta(rs)["namespace"], uid=meta(rs)["uid"])
            except ApiError as exc:
                if exc.code not in (404, 409):
                    self._record(d, WARNING, "FailedDelete", str(exc))

    async def _write_status(self, d: Obj, status: dict[str, Any]) -> None:
        if status == (d.get("status") or {}):
            return
        try:
            await self.client.update_status(DEPLOYMENTS, {**d, "status": status})
        except ApiError as exc:
            if exc.code != 404:
                raise
