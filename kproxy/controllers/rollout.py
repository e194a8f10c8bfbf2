"""The pure part of the Deployment controller (no I/O): pod-template-hash, revisions, the
ReplicaSet a Deployment's template maps to, the rolling-update and Recreate steps, and the
Deployment's status and conditions, following kubernetes/pkg/controller/deployment.

Counting is conservative so the bounds hold for the pods that exist, not only for the specs
written: a ReplicaSet counts max(spec.replicas, its active pods, what it is draining from)
toward the total (pods not yet deleted still exist, pods not yet created will, and after a
scale-down the pods an informer has not shown yet may still be there) and
min(spec.replicas, its available pods)
toward availability (a ReplicaSet above its spec deletes its least useful pods first, so it
keeps that many available ones). With those counts a rolling update never has more than
replicas + maxSurge pods nor fewer than replicas - maxUnavailable available ones.
"""
from __future__ import annotations

import copy
import datetime
import json
import math
from dataclasses import dataclass, field
from typing import Any

from kproxy.controllers.ownership import Obj, meta

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# annotations of the Deployment that are not copied to its ReplicaSets
NOT_COPIED = (LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS)
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # no vowels: a hash never spells a word


# -- template hash and revisions -----------------------------------------------------------

def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """A short stable name for a pod template (and the collision count that disambiguates
    two templates with one hash), made of letters and digits that spell no word."""
    data = json.dumps(without_hash(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    h = _fnv32a(data)
    out = ""
    for _ in range(10):
        out += _SAFE_ALPHABET[h % len(_SAFE_ALPHABET)]
        h //= len(_SAFE_ALPHABET)
    return out.rstrip(_SAFE_ALPHABET[0]) or _SAFE_ALPHABET[0]


def without_hash(template: Obj) -> Obj:
    """The template without the pod-template-hash label (how templates are compared)."""
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
        if not labels:
            t["metadata"].pop("labels")
    if isinstance(t.get("metadata"), dict) and not t["metadata"]:
        t.pop("metadata")
    return t


def revision_of(obj: Obj) -> int:
    try:
        return int((meta(obj).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def replicas_of(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return int(value) if isinstance(value, int) else 0


# -- fenceposts ----------------------------------------------------------------------------

def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An IntOrString against `total`: a number as is, "25%" of total rounded up or down."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = int(value[:-1])
        except ValueError:
            return 0
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return 0


def surge_and_unavailable(deployment: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods; both 0 would deadlock, so unavailable becomes 1."""
    spec = deployment.get("spec") or {}
    strategy = spec.get("strategy") or {}
    replicas = replicas_of(deployment)
    if strategy.get("type") == "Recreate":
        return 0, replicas
    rolling = strategy.get("rollingUpdate") or {}
    surge = scaled_value(rolling.get("maxSurge", "25%"), replicas, True)
    unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


# -- the ReplicaSets of a Deployment -------------------------------------------------------

@dataclass
class RSView:
    """One ReplicaSet with the pods the controller sees for it."""
    rs: Obj
    pods: int = 0  # active pods
    available: int = 0  # available pods
    draining: int = 0  # pods it may still have from before a scale-down the caller has not seen done

    @property
    def spec(self) -> int:
        return replicas_of(self.rs)

    @property
    def counted(self) -> int:
        """Its share of the total: the pods that exist or will."""
        return max(self.spec, self.pods, self.draining)

    @property
    def counted_available(self) -> int:
        """The available pods it is sure to keep."""
        return min(self.spec, self.available)


def find_new(deployment: Obj, views: list[RSView]) -> RSView | None:
    """The ReplicaSet whose template is the Deployment's (the oldest such one)."""
    wanted = without_hash((deployment.get("spec") or {}).get("template") or {})
    same = [v for v in views if without_hash((v.rs.get("spec") or {}).get("template") or {}) == wanted]
    return min(same, key=lambda v: (meta(v.rs).get("creationTimestamp") or "", meta(v.rs).get("name", ""))) \
        if same else None


def new_replica_set(deployment: Obj, collision_count: int, revision: int, replicas: int) -> Obj:
    """The ReplicaSet for the Deployment's current template."""
    spec = deployment.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    h = template_hash(template, collision_count)
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = h
    md = meta(deployment)
    annotations = {k: v for k, v in (md.get("annotations") or {}).items() if k not in NOT_COPIED}
    annotations[REVISION] = str(revision)
    surge, _ = surge_and_unavailable(deployment)
    annotations[DESIRED_REPLICAS] = str(replicas_of(deployment))
    annotations[MAX_REPLICAS] = str(replicas_of(deployment) + surge)
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{md['name']}-{h}", "namespace": md["namespace"],
                     "labels": dict(template["metadata"]["labels"]), "annotations": annotations,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": md["name"],
                                          "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"replicas": replicas, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                 "selector": selector, "template": template},
    }


def with_revision(rs: Obj, deployment: Obj, revision: int) -> Obj | None:
    """The ReplicaSet with the new revision and the Deployment's annotations, when that
    changes it (an old template rolled back to: its old revisions go to revision-history)."""
    out = copy.deepcopy(rs)
    annotations = out.setdefault("metadata", {}).setdefault("annotations", {})
    old = annotations.get(REVISION)
    if old and old != str(revision):
        history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
        annotations[REVISION_HISTORY] = ",".join(history + [old])
    annotations[REVISION] = str(revision)
    for k, v in (meta(deployment).get("annotations") or {}).items():
        if k not in NOT_COPIED:
            annotations[k] = v
    surge, _ = surge_and_unavailable(deployment)
    annotations[DESIRED_REPLICAS] = str(replicas_of(deployment))
    annotations[MAX_REPLICAS] = str(replicas_of(deployment) + surge)
    return out if out != rs else None


def next_revision(views: list[RSView]) -> int:
    return max((revision_of(v.rs) for v in views), default=0) + 1


# -- the steps -----------------------------------------------------------------------------

@dataclass
class Plan:
    """The ReplicaSet spec.replicas to write, by ReplicaSet name, and what each counted
    before (a scale-down drains from there)."""
    scale: dict[str, int] = field(default_factory=dict)
    before: dict[str, int] = field(default_factory=dict)

    def set(self, view: RSView, replicas: int) -> None:
        if replicas != view.spec:
            self.before.setdefault(meta(view.rs)["name"], view.counted)
            self.scale[meta(view.rs)["name"]] = replicas
            view.rs = {**view.rs, "spec": {**(view.rs.get("spec") or {}), "replicas": replicas}}


def rolling_update(deployment: Obj, new: RSView, old: list[RSView]) -> Plan:
    """One rolling-update step: scale the new ReplicaSet up within maxSurge, then the old
    ones down within maxUnavailable (oldest first); when neither is possible, old pods that
    are not available are removed (which trusts the caller's view of readiness, as upstream:
    a pod that became ready since may go)."""
    plan = Plan()
    replicas = replicas_of(deployment)
    surge, max_unavailable = surge_and_unavailable(deployment)
    views = [new] + old
    # scale up the new ReplicaSet
    if new.spec > replicas:
        plan.set(new, replicas)
    elif new.spec < replicas:
        total = sum(v.counted for v in views)
        room = replicas + surge - total
        if room > 0:
            plan.set(new, new.spec + min(room, replicas - new.spec))
    # scale down the old ones: first by the availability to spare, oldest first
    min_available = replicas - max_unavailable
    olds = sorted(old, key=lambda v: (meta(v.rs).get("creationTimestamp") or ""))
    excess = sum(v.counted_available for v in views) - min_available
    for view in olds:
        if excess <= 0:
            break
        cut = min(view.spec, excess)
        if cut > 0:
            plan.set(view, view.spec - cut)
            excess -= cut
    if plan.scale:
        return plan
    # stuck (nothing to spare, no room to grow): old pods that are not available go, as
    # upstream's cleanupUnhealthyReplicas, but never from a ReplicaSet whose last scale-down
    # the caller has not seen done (its view of those pods is not to be trusted yet)
    budget = sum(v.counted for v in views) - min_available - max(0, new.spec - new.available)
    for view in olds:
        if budget <= 0:
            break
        if view.draining:
            continue
        cut = min(max(0, view.spec - view.available), budget)
        if cut > 0:
            plan.set(view, view.spec - cut)
            budget -= cut
    return plan


def recreate(deployment: Obj, new: RSView | None, old: list[RSView]) -> tuple[Plan, bool]:
    """One Recreate step: every old ReplicaSet to 0, and only once none of their pods is
    left, the new one to replicas. Returns the plan and whether the new one may be made."""
    plan = Plan()
    for view in old:
        plan.set(view, 0)
    may_create = all(v.pods == 0 for v in old)
    if may_create and new is not None:
        plan.set(new, replicas_of(deployment))
    return plan, may_create


def scale_proportionally(deployment: Obj, new: RSView | None, old: list[RSView]) -> Plan:
    """A paused (or settled) Deployment whose replicas changed: the ReplicaSets with pods keep
    their shares (the newest absorbs rounding), as upstream's proportional scaling."""
    plan = Plan()
    active = [v for v in ([new] if new else []) + old if v.spec > 0]
    if not active:
        if new is not None:
            plan.set(new, replicas_of(deployment))
        return plan
    surge, _ = surge_and_unavailable(deployment)
    allowed = replicas_of(deployment) + (surge if len(active) > 1 else 0)
    current = sum(v.spec for v in active)
    if current == allowed:
        return plan
    if len(active) == 1:
        plan.set(active[0], replicas_of(deployment))
        return plan
    diff = allowed - current
    shares = {id(v): (v.spec * allowed) // current - v.spec if current else 0 for v in active}
    leftover = diff - sum(shares.values())
    newest = max(active, key=lambda v: meta(v.rs).get("creationTimestamp") or "")
    for v in active:
        change = shares[id(v)] + (leftover if v is newest else 0)
        plan.set(v, max(0, v.spec + change))
    return plan


def history_to_delete(deployment: Obj, old: list[RSView]) -> list[Obj]:
    """Old ReplicaSets with no replicas and no pods beyond revisionHistoryLimit, oldest first."""
    limit = (deployment.get("spec") or {}).get("revisionHistoryLimit")
    limit = 10 if not isinstance(limit, int) else limit
    idle = sorted((v for v in old if v.spec == 0 and v.pods == 0 and not (v.rs.get("status") or {}).get("replicas")),
                  key=lambda v: (revision_of(v.rs), meta(v.rs).get("creationTimestamp") or ""))
    return [v.rs for v in idle[:max(0, len(idle) - limit)]]


# -- status --------------------------------------------------------------------------------

def _rfc3339(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: Any) -> float | None:
    try:
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def _set_condition(conditions: list[dict], kind: str, status: str, reason: str, message: str, now: float) -> None:
    old = next((c for c in conditions if c.get("type") == kind), None)
    stamp = _rfc3339(now)
    cond = {"type": kind, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
            "reason": reason, "message": message}
    if old is not None:
        if old.get("status") == status:
            cond["lastTransitionTime"] = old.get("lastTransitionTime", stamp)
            if old.get("reason") == reason and old.get("message") == message:
                cond["lastUpdateTime"] = old.get("lastUpdateTime", stamp)
        conditions.remove(old)
    conditions.append(cond)


def is_complete(deployment: Obj, status: dict[str, Any]) -> bool:
    replicas = replicas_of(deployment)
    return (status.get("updatedReplicas", 0) == replicas and status.get("replicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
            and status.get("observedGeneration", 0) >= meta(deployment).get("generation", 1))


def deployment_status(deployment: Obj, new: RSView | None, views: list[RSView], now: float,
                      created_new: bool = False) -> dict[str, Any]:
    """The Deployment's status from its ReplicaSets' statuses, with the Available and
    Progressing conditions (ProgressDeadlineExceeded once no progress was made for
    progressDeadlineSeconds)."""
    old_status = deployment.get("status") or {}
    replicas = replicas_of(deployment)
    _, max_unavailable = surge_and_unavailable(deployment)

    def total(key: str) -> int:
        return sum(int((v.rs.get("status") or {}).get(key) or 0) for v in views)
    status: dict[str, Any] = {
        "observedGeneration": meta(deployment).get("generation", 1),
        "replicas": total("replicas"),
        "updatedReplicas": int(((new.rs.get("status") or {}).get("replicas") or 0)) if new else 0,
        "readyReplicas": total("readyReplicas"),
        "availableReplicas": total("availableReplicas"),
    }
    status["unavailableReplicas"] = max(0, replicas - status["availableReplicas"])
    if old_status.get("collisionCount"):
        status["collisionCount"] = old_status["collisionCount"]
    conditions = [dict(c) for c in old_status.get("conditions") or []]
    if status["availableReplicas"] >= replicas - max_unavailable:
        _set_condition(conditions, "Available", "True", "MinimumReplicasAvailable",
                       "Deployment has minimum availability.", now)
    else:
        _set_condition(conditions, "Available", "False", "MinimumReplicasUnavailable",
                       "Deployment does not have minimum availability.", now)
    spec = deployment.get("spec") or {}
    name = meta(new.rs)["name"] if new else ""
    progressing = next((c for c in conditions if c["type"] == "Progressing"), None)
    if spec.get("paused"):
        if progressing is None or progressing.get("reason") != "DeploymentPaused":
            _set_condition(conditions, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", now)
    elif progressing is not None and progressing.get("reason") == "DeploymentPaused":
        _set_condition(conditions, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", now)
    elif new is not None and is_complete(deployment, status):
        _set_condition(conditions, "Progressing", "True", "NewReplicaSetAvailable",
                       f'ReplicaSet "{name}" has successfully progressed.', now)
    elif new is not None:
        moved = any(status.get(k, 0) != old_status.get(k, 0)
                    for k in ("updatedReplicas", "availableReplicas", "readyReplicas", "replicas"))
        if created_new:
            _set_condition(conditions, "Progressing", "True", "NewReplicaSetCreated",
                           f'Created new replica set "{name}"', now)
        elif progressing is None or (
                progressing.get("reason") in ("DeploymentResumed", "NewReplicaSetAvailable")
                and progressing.get("message") != f'ReplicaSet "{name}" has successfully progressed.'):
            _set_condition(conditions, "Progressing", "True", "FoundNewReplicaSet",
                           f'Found new replica set "{name}"', now)
        elif moved:
            _set_condition(conditions, "Progressing", "True", "ReplicaSetUpdated",
                           f'ReplicaSet "{name}" is progressing.', now)
        else:
            current = next(c for c in conditions if c["type"] == "Progressing")
            deadline = spec.get("progressDeadlineSeconds")
            since = _parse(current.get("lastUpdateTime"))
            if (isinstance(deadline, int) and since is not None and current.get("status") == "True"
                    and since + deadline < now):
                _set_condition(conditions, "Progressing", "False", "ProgressDeadlineExceeded",
                               f'ReplicaSet "{name}" has timed out progressing.', now)
    status["conditions"] = sorted(conditions, key=lambda c: c["type"])
    return status


def progress_check_in(deployment: Obj, status: dict[str, Any], now: float) -> float | None:
    """Seconds until the progress deadline is due for a check (None: no check pending)."""
    deadline = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
    cond = condition(status, "Progressing")
    if (not isinstance(deadline, int) or cond is None or cond.get("status") != "True"
            or cond.get("reason") == "NewReplicaSetAvailable" or (deployment.get("spec") or {}).get("paused")):
        return None
    since = _parse(cond.get("lastUpdateTime"))
    return None if since is None else max(0.5, since + deadline - now + 0.5)
