"""Disruption controller: keeps each PodDisruptionBudget's status (how many of its pods may be
evicted now) as kube-controller-manager's disruption controller; the eviction API
(kproxy.apiserver.eviction) spends what it allows.

Pure core: `selected_pods`, `scaled_value` (intstr.GetScaledValueFromIntOrPercent),
`controller_refs`, `budget_status` (expectedPods, desiredHealthy, currentHealthy,
disruptionsAllowed, disruptedPods, observedGeneration and the DisruptionAllowed condition).

expectedPods is the sum of the scale of the pods' controllers when the budget needs it
(maxUnavailable, or a percent minAvailable): a ReplicaSet run by a Deployment counts as the
Deployment, ReplicaSets and ReplicationControllers by spec.replicas from the caches, any other
kind by its scale subresource where the server serves one (StatefulSets). With an integer
minAvailable it is the number of selected pods. A controller that cannot be found leaves the
budget at 0 disruptions with DisruptionAllowed False (SyncFailed), as upstream's failSafe;
pods without a controller are left out and named in a Warning Event. A pod the eviction API
recorded in disruptedPods does not count as healthy for two minutes, unless it is gone.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Iterable, NamedTuple

from kproxy.api.disruptionbudget import with_disruption_allowed
from kproxy.api.meta import parse_rfc3339
from kproxy.api.resources import (
    DEPLOYMENTS, POD_DISRUPTION_BUDGETS, PODS, REPLICA_SETS, REPLICATION_CONTROLLERS, by_kind,
)
from kproxy.api.selectors import LabelSelector, SelectorError
from kproxy.api.status import ApiError
from kproxy.client.events import EventRecorder
from kproxy.controllers.base import Controller, Handlers, RequeueAfter, SharedInformers
from kproxy.controllers.ownership import Obj, controller_ref, is_deleting, meta
from kproxy.controllers.podutil import is_pod_ready
from kproxy.controllers.replicaset import key_of

log = logging.getLogger(__name__)

COMPONENT = "controllermanager"  # upstream's disruption controller records Events as this
DELETION_TIMEOUT = 120.0  # how long an allowed eviction keeps its pod out of currentHealthy

# a pod's controller reference -> (the uid of the controller that sets its scale, the scale);
# None: no such controller
Scales = dict[str, "tuple[str, int] | None"]


# -- pure core ----------------------------------------------------------------------------

def selected_pods(pdb: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The budget's pods: its namespace's pods its selector matches (a missing selector
    selects none, an empty one every pod, as LabelSelectorAsSelector)."""
    try:
        selector = LabelSelector.from_dict((pdb.get("spec") or {}).get("selector"))
    except SelectorError:
        return []
    return [p for p in pods if selector.matches(meta(p).get("labels"))]


def scaled_value(value: Any, total: int, round_up: bool = True) -> int:
    """An IntOrString against `total`: an int as is, "N%" as N% of total rounded up."""
    if isinstance(value, str) and value.endswith("%"):
        share = int(value[:-1]) * total / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def needs_scale(pdb: Obj) -> bool:
    """expectedPods comes from the controllers' scale (not from counting pods)."""
    spec = pdb.get("spec") or {}
    return spec.get("maxUnavailable") is not None or isinstance(spec.get("minAvailable"), str)


def controller_refs(pods: Iterable[Obj]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """({uid: controller reference} of the pods' controllers, names of pods without one)."""
    refs: dict[str, dict[str, Any]] = {}
    unmanaged: list[str] = []
    for pod in pods:
        ref = controller_ref(pod)
        if ref is None:
            unmanaged.append(meta(pod).get("name", ""))
        else:
            refs.setdefault(ref.get("uid", ""), ref)
    return refs, unmanaged


class NoController(Exception):
    """A pod's controller (or its scale) cannot be found: the budget cannot be computed."""


class Counts(NamedTuple):
    expected: int  # expectedPods
    desired: int  # desiredHealthy


def expected_and_desired(pdb: Obj, pods: list[Obj], scales: Scales) -> Counts:
    """getExpectedPodCount: raises NoController when a pod's controller has no scale."""
    spec = pdb.get("spec") or {}
    if not needs_scale(pdb):
        min_available = spec.get("minAvailable")
        return Counts(len(pods), int(min_available)) if min_available is not None else Counts(0, 0)
    by_controller: dict[str, int] = {}
    for pod in pods:
        ref = controller_ref(pod)
        if ref is None:
            continue
        found = scales.get(ref.get("uid", ""))
        if found is None:
            raise NoController(f'found no controllers for pod "{meta(pod).get("name", "")}"')
        by_controller[found[0]] = found[1]
    expected = sum(by_controller.values())
    if spec.get("maxUnavailable") is not None:
        return Counts(expected, max(0, expected - scaled_value(spec["maxUnavailable"], expected)))
    return Counts(expected, scaled_value(spec["minAvailable"], expected))


def _timestamp(value: Any) -> float | None:
    try:
        return parse_rfc3339(value).timestamp() if isinstance(value, str) else None
    except ValueError:
        return None


def still_disrupted(pdb: Obj, pods: list[Obj], now: float) -> tuple[dict[str, str], float | None]:
    """buildDisruptedPodMap: the disruptedPods entries of pods still there and not being
    deleted whose eviction is under DELETION_TIMEOUT old, and when the first of those expires."""
    recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
    kept: dict[str, str] = {}
    recheck: float | None = None
    for pod in pods:
        name = meta(pod).get("name", "")
        if is_deleting(pod) or name not in recorded:
            continue
        since = _timestamp(recorded[name])
        if since is None or since + DELETION_TIMEOUT <= now:
            continue  # expected to be deleted but was not: it counts again
        kept[name] = recorded[name]
        recheck = since + DELETION_TIMEOUT if recheck is None else min(recheck, since + DELETION_TIMEOUT)
    return kept, recheck


def current_healthy(pods: list[Obj], disrupted: dict[str, str]) -> int:
    return sum(1 for p in pods if not is_deleting(p) and meta(p).get("name") not in disrupted and is_pod_ready(p))


def budget_status(pdb: Obj, pods: list[Obj], scales: Scales, now: float,
                  stamp: str) -> tuple[dict[str, Any], float | None]:
    """(the budget's status, when to look again) for its selected pods; `stamp` is `now` as
    RFC 3339 for new condition transitions."""
    old = pdb.get("status") or {}
    generation = meta(pdb).get("generation") or 0
    try:
        counts = expected_and_desired(pdb, pods, scales)
    except NoController as exc:
        failed = {**old, "disruptionsAllowed": 0}
        return with_disruption_allowed(failed, stamp, sync_failure=str(exc)), None
    disrupted, recheck = still_disrupted(pdb, pods, now)
    healthy = current_healthy(pods, disrupted)
    allowed = healthy - counts.desired
    if counts.expected <= 0 or allowed <= 0:
        allowed = 0  # a budget that matches no pod yet is safe when its first pods appear
    status: dict[str, Any] = {
        "observedGeneration": generation, "disruptionsAllowed": allowed, "currentHealthy": healthy,
        "desiredHealthy": counts.desired, "expectedPods": counts.expected,
        "conditions": old.get("conditions") or [],
    }
    if disrupted:
        status["disruptedPods"] = disrupted
    return with_disruption_allowed(status, stamp), recheck


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# -- the controller -----------------------------------------------------------------------

class DisruptionController(Controller):
    name = "disruption"

    def __init__(self, client: Any, informers: SharedInformers, clock: Callable[[], float] | None = None):
        super().__init__(client, informers)
        self.clock = clock or time.time
        self.budgets = informers.get(POD_DISRUPTION_BUDGETS)
        self.pods = informers.get(PODS)
        # the controllers whose spec.replicas is read from a cache; other kinds by /scale
        self.scaled = {r: informers.get(r) for r in (REPLICA_SETS, DEPLOYMENTS, REPLICATION_CONTROLLERS)}
        self.events = EventRecorder(client, COMPONENT)
        self.budgets.add_handler(Handlers(on_add=self._enqueue, on_update=lambda o, n: self._enqueue(n),
                                          on_delete=lambda o: None))
        self.pods.add_handler(Handlers(on_add=self._pod_changed, on_update=self._pod_updated,
                                       on_delete=self._pod_changed))
        for informer in self.scaled.values():
            informer.add_handler(Handlers(on_update=self._scale_changed))

    def watched(self):
        return [POD_DISRUPTION_BUDGETS, PODS, *self.scaled]

    async def resync(self) -> None:
        for pdb in self.budgets.list():
            self._enqueue(pdb)

    # handlers: enqueue only
    def _enqueue(self, pdb: Obj) -> None:
        self.queue.add(key_of(pdb))

    def _pod_changed(self, pod: Obj) -> None:
        for pdb in self.budgets.list(meta(pod).get("namespace")):
            if selected_pods(pdb, [pod]):
                self._enqueue(pdb)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self._pod_changed(new)
        if meta(old).get("labels") != meta(new).get("labels"):
            self._pod_changed(old)

    def _scale_changed(self, old: Obj, new: Obj) -> None:
        if (old.get("spec") or {}).get("replicas") != (new.get("spec") or {}).get("replicas"):
            for pdb in self.budgets.list(meta(new).get("namespace")):
                self._enqueue(pdb)

    # reconcile
    async def reconcile(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        pdb = self.budgets.get(name, namespace)
        if pdb is None:
            return
        pods = selected_pods(pdb, self.pods.list(namespace))
        scales: Scales = {}
        unmanaged: list[str] = []
        if needs_scale(pdb):
            refs, unmanaged = controller_refs(pods)
            for uid, ref in refs.items():
                scales[uid] = await self._scale_of(ref, namespace)
        now = self.clock()
        status, recheck = budget_status(pdb, pods, scales, now, _rfc3339(now))
        if status != (pdb.get("status") or {}):
            # Events with each new status, not with every look (our recorder does not aggregate)
            if not pods:
                self._record(pdb, "Normal", "NoPods", "No matching pods found")
            if unmanaged:
                self._record(pdb, "Warning", "UnmanagedPods", (
                    f"Pods selected by this PodDisruptionBudget (selector: {(pdb.get('spec') or {}).get('selector')}) "
                    "were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, "
                    "which may result in undefined behavior. To account for these pods please set "
                    '".spec.minAvailable" field of the PDB to an integer value.'))
            try:
                await self.client.update_status(POD_DISRUPTION_BUDGETS, {**pdb, "status": status})
            except ApiError as exc:
                if exc.code != 404:
                    raise  # 409: an eviction or a newer spec got in first; the retry reads it
        if recheck is not None:
            raise RequeueAfter(max(0.1, recheck - now), "disrupted pods not yet deleted")

    def _record(self, pdb: Obj, event_type: str, reason: str, message: str) -> None:
        md = meta(pdb)
        self.events.record((POD_DISRUPTION_BUDGETS.group_version, POD_DISRUPTION_BUDGETS.kind),
                           md.get("namespace") or "default", md.get("name", ""), event_type, reason, message,
                           uid=md.get("uid"))

    async def _scale_of(self, ref: dict[str, Any], namespace: str) -> tuple[str, int] | None:
        """(uid of the controller whose scale counts, its scale) for a pod's controller ref."""
        resource = by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if resource is None:
            return None
        informer = self.scaled.get(resource)
        if informer is None:
            return await self._scale_subresource(resource, ref, namespace)
        owner = informer.get(ref.get("name", ""), namespace)
        if owner is None or meta(owner).get("uid") != ref.get("uid"):
            return None
        if resource is REPLICA_SETS:
            parent = controller_ref(owner)
            if parent is not None and parent.get("kind") == DEPLOYMENTS.kind:
                return await self._scale_of(parent, namespace)  # a Deployment's pods count as its replicas
        return meta(owner)["uid"], int((owner.get("spec") or {}).get("replicas", 1) or 0)

    async def _scale_subresource(self, resource: Any, ref: dict[str, Any], namespace: str) -> tuple[str, int] | None:
        if not resource.scale_subresource:
            return None
        try:
            scale = await self.client.request("GET", resource.object_path(ref.get("name", ""), namespace) + "/scale")
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise
        if not isinstance(scale, dict) or meta(scale).get("uid") != ref.get("uid"):
            return None
        return ref["uid"], int((scale.get("spec") or {}).get("replicas") or 0)
