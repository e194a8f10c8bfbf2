"""ReplicaSet controller: keeps `spec.replicas` active pods from each ReplicaSet's template, as
kube-controller-manager's replicaset controller.

Pure core (no I/O): `active_pods`, `deletion_order` (the least useful pods first: unscheduled,
pending, not ready, ready for the shortest time, most restarts, newest), `is_available`
(ready for minReadySeconds), `replica_set_status` and `pod_from_template`.

The controller claims pods by controller reference and selector (adopting matching orphans,
releasing pods that stopped matching), then creates or deletes the difference. Expectations
(expectations.py) make it wait until its informer has seen its own creates and deletes, so a
slow informer never doubles them. Creates go in slow-start batches (1, 2, 4, ...), so a
template the apiserver refuses fails once, not `replicas` times. A ReplicaSet it cannot act on
gets a ReplicaFailure condition and a Warning Event; the others go on.
"""
from __future__ import annotations

import asyncio
import copy
import datetime
import logging
from typing import Any

from kproxy.api.meta import parse_rfc3339
from kproxy.api.resources import PODS, REPLICA_SETS, Resource
from kproxy.api.status import ApiError
from kproxy.controllers.base import RequeueAfter
from kproxy.controllers.ownership import Obj, is_deleting, meta, owner_reference
from kproxy.controllers.podowners import NORMAL, WARNING, PodOwnerBase, key_of
from kproxy.controllers.podutil import is_pod_ready, is_terminal

log = logging.getLogger(__name__)

COMPONENT = "replicaset-controller"
BURST_REPLICAS = 500  # most pods created or deleted by one reconcile (upstream's burstReplicas)
SLOW_START_INITIAL_BATCH = 1


# -- pure core ----------------------------------------------------------------------------

def active_pods(pods: list[Obj]) -> list[Obj]:
    """Pods that count toward replicas: not finished, not being deleted."""
    return [p for p in pods if not is_terminal(p) and not is_deleting(p)]


def _timestamp(value: Any) -> float | None:
    try:
        return parse_rfc3339(value).timestamp() if value else None
    except ValueError:
        return None


def ready_since(pod: Obj) -> float | None:
    """When the pod's Ready condition last became True (None: not ready)."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            since = _timestamp(cond.get("lastTransitionTime"))
            return since if since is not None else 0.0
    return None


def is_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """Ready, and for at least minReadySeconds (podutil.IsPodAvailable)."""
    since = ready_since(pod)
    if since is None:
        return False
    return min_ready_seconds <= 0 or since + min_ready_seconds <= now


def _phase_rank(pod: Obj) -> int:
    return {"Pending": 0, "Unknown": 1, "Running": 2}.get((pod.get("status") or {}).get("phase", "Pending"), 0)


def deletion_order(pods: list[Obj]) -> list[Obj]:
    """Pods sorted least useful first (controller.ActivePods): unscheduled before scheduled,
    pending before running, not ready before ready, ready more recently before ready longer,
    more container restarts first, newer before older."""
    def rank(pod: Obj) -> tuple:
        since = ready_since(pod)
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
        created = _timestamp(meta(pod).get("creationTimestamp")) or 0.0
        return (bool((pod.get("spec") or {}).get("nodeName")), _phase_rank(pod), since is not None,
                -(since or 0.0), -restarts, -created, meta(pod).get("name", ""))
    return sorted(pods, key=rank)


def pod_from_template(rs: Obj, owner: Resource = REPLICA_SETS) -> Obj:
    """A new pod of the ReplicaSet (or other `owner` kind): its template, generateName
    "<rs>-", its controller ref."""
    template = (rs.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    md: dict[str, Any] = {"generateName": f"{meta(rs)['name']}-", "namespace": meta(rs)["namespace"],
                          "labels": dict(tmeta.get("labels") or {}),
                          "ownerReferences": [owner_reference(rs, owner.group_version, owner.kind)]}
    if tmeta.get("annotations"):
        md["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        md["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": copy.deepcopy(template.get("spec") or {})}


def replica_set_status(rs: Obj, owned: list[Obj], now: float, failure: str | None) -> dict[str, Any]:
    """status of the ReplicaSet for its owned pods; `failure` (a create/delete error) makes
    the ReplicaFailure condition, whose absence clears it."""
    spec = rs.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    active = active_pods(owned)
    status: dict[str, Any] = {
        "replicas": len(active),
        "fullyLabeledReplicas": sum(1 for p in active if all(
            (meta(p).get("labels") or {}).get(k) == v for k, v in template_labels.items())),
        "readyReplicas": sum(1 for p in active if is_pod_ready(p)),
        "availableReplicas": sum(1 for p in active if is_available(p, min_ready, now)),
        "terminatingReplicas": sum(1 for p in owned if is_deleting(p) and not is_terminal(p)),
        "observedGeneration": meta(rs).get("generation", 1),
    }
    old_conditions = [c for c in (rs.get("status") or {}).get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    if failure is not None:
        old = next((c for c in (rs.get("status") or {}).get("conditions") or []
                    if c.get("type") == "ReplicaFailure"), None)
        stamp = old["lastTransitionTime"] if old and old.get("status") == "True" else _rfc3339(now)
        old_conditions.append({"type": "ReplicaFailure", "status": "True", "lastTransitionTime": stamp,
                               "reason": failure.split(":", 1)[0], "message": failure})
    if old_conditions:
        status["conditions"] = old_conditions
    return status


def _rfc3339(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_available_check(rs: Obj, owned: list[Obj], now: float) -> float | None:
    """Seconds until a ready pod becomes available (None: none is waiting)."""
    min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
    if min_ready <= 0:
        return None
    waits = [since + min_ready - now for p in active_pods(owned)
             if (since := ready_since(p)) is not None and since + min_ready > now]
    return max(0.1, min(waits)) if waits else None


# -- the controller -----------------------------------------------------------------------

class ReplicaSetController(PodOwnerBase):
    """Also the ReplicationController's controller (replicationcontroller.py): a subclass names
    its owner resource, Event source and the status fields its kind lacks."""

    name = "replicaset"
    workers = 2
    owner: Resource = REPLICA_SETS
    component = COMPONENT
    status_fields_absent: tuple[str, ...] = ()

    # reconcile
    async def reconcile(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        rs = self.owners.get(name, namespace)
        if rs is None:
            self.expectations.forget(key)
            return
        satisfied = self.expectations.satisfied(key)
        owned = await self.owned_pods(rs)
        failure = None
        if satisfied and not is_deleting(rs):
            failure = await self._manage(key, rs, active_pods(owned))
        await self._write_status(rs, owned, failure)
        wait = next_available_check(rs, owned, self.clock())
        if wait is not None:
            raise RequeueAfter(wait, "pods becoming available")

    async def _manage(self, key: str, rs: Obj, active: list[Obj]) -> str | None:
        """Creates or deletes pods toward spec.replicas; returns the failure, if any."""
        wanted = int((rs.get("spec") or {}).get("replicas", 1) or 0)
        diff = len(active) - wanted
        if diff < 0:
            return await self._create(key, rs, min(-diff, BURST_REPLICAS))
        if diff > 0:
            return await self._delete(key, rs, deletion_order(active)[:min(diff, BURST_REPLICAS)])
        return None

    async def _create(self, key: str, rs: Obj, count: int) -> str | None:
        self.expectations.expect_creations(key, count)
        batch, remaining = SLOW_START_INITIAL_BATCH, count
        while remaining > 0:
            size = min(batch, remaining)
            results = await asyncio.gather(*(self.client.create(PODS, pod_from_template(rs, self.owner),
                                                                meta(rs)["namespace"])
                                             for _ in range(size)), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            for created in results:
                if not isinstance(created, BaseException):
                    self.record(rs, NORMAL, "SuccessfulCreate",
                                       f"Created pod: {meta(created)['name']}")
            remaining -= size
            if errors:
                # the failed ones and those never tried will not show up
                for _ in range(len(errors) + remaining):
                    self.expectations.creation_observed(key)
                message = f"FailedCreate: {errors[0]}"
                self.record(rs, WARNING, "FailedCreate", f"Error creating: {errors[0]}")
                if not isinstance(errors[0], ApiError):
                    raise errors[0]
                return message
            batch *= 2
        return None

    async def _delete(self, key: str, rs: Obj, victims: list[Obj]) -> str | None:
        self.expectations.expect_deletions(key, [key_of(p) for p in victims])
        failure = None
        for pod in victims:
            try:
                await self.client.delete(PODS, meta(pod)["name"], meta(pod)["namespace"], uid=meta(pod).get("uid"))
                self.record(rs, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta(pod)['name']}")
            except ApiError as exc:
                self.expectations.deletion_observed(key, key_of(pod))
                if exc.code in (404, 409):
                    continue  # already gone or replaced
                failure = f"FailedDelete: {exc}"
                self.record(rs, WARNING, "FailedDelete", f"Error deleting: {exc}")
        return failure

    async def _write_status(self, rs: Obj, owned: list[Obj], failure: str | None) -> None:
        status = replica_set_status(rs, owned, self.clock(), failure)
        for key in self.status_fields_absent:
            status.pop(key, None)
        await self.write_status(rs, status)
