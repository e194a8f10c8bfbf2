"""The pure part of the StatefulSet controller (no I/O), following
kubernetes/pkg/controller/statefulset: stable pod identities, the next step toward the spec,
and the status.

Pod `<name>-<ordinal>` for each ordinal in [start, start + replicas): its hostname is its name
and its subdomain the StatefulSet's serviceName (so the headless Service gives it the DNS
name <pod>.<service>), labelled with its name, index and revision.

One step (`next_step`) goes, as upstream's updateStatefulSet, through
1. the wanted ordinals, lowest first: create what is missing, delete failed pods so they are
   made again; with OrderedReady stop at the first pod created, deleted or not Running and
   Ready (available, with minReadySeconds), so pods start one at a time, in order;
2. the condemned pods (ordinals beyond replicas), highest first: with OrderedReady one at a
   time, each gone before the next;
3. with RollingUpdate, the ordinals from the highest down to the partition: delete the first
   pod not of the update revision, waiting for each replaced pod to be Running and Ready
   (the deleted pod is made again of the update revision by step 1).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable

from kproxy.api.resources import STATEFUL_SETS
from kproxy.controllers.ownership import Obj, is_deleting, meta, owner_reference
from kproxy.controllers.podutil import is_pod_ready, is_terminal
from kproxy.controllers.replicaset import is_available
from kproxy.controllers.revisions import HASH_LABEL

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def _spec(sts: Obj) -> dict[str, Any]:
    return sts.get("spec") or {}


def start_ordinal(sts: Obj) -> int:
    start = (_spec(sts).get("ordinals") or {}).get("start")
    return start if isinstance(start, int) else 0


def wanted_ordinals(sts: Obj) -> range:
    replicas = _spec(sts).get("replicas")
    start = start_ordinal(sts)
    return range(start, start + (replicas if isinstance(replicas, int) else 1))


def ordinal_of(sts: Obj, pod: Obj) -> int | None:
    """The ordinal in the pod's name `<statefulset>-<ordinal>`, None for another name."""
    prefix = f"{meta(sts).get('name')}-"
    name = meta(pod).get("name", "")
    suffix = name[len(prefix):] if name.startswith(prefix) else ""
    return int(suffix) if suffix.isdigit() and str(int(suffix)) == suffix else None


def revision_of(pod: Obj) -> str | None:
    return (meta(pod).get("labels") or {}).get(HASH_LABEL)


def stateful_pod(sts: Obj, ordinal: int, revision: Obj) -> Obj:
    """Pod `ordinal` of the StatefulSet, made from `revision`'s template."""
    template = ((revision.get("data") or {}).get("spec") or {}).get("template") or {}
    template = {k: v for k, v in template.items() if k != "$patch"}
    tmeta = template.get("metadata") or {}
    name = f"{meta(sts)['name']}-{ordinal}"
    labels = {**(tmeta.get("labels") or {}), POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal),
              HASH_LABEL: meta(revision)["name"]}
    md: dict[str, Any] = {"name": name, "namespace": meta(sts)["namespace"], "labels": labels,
                          "ownerReferences": [owner_reference(sts, STATEFUL_SETS.group_version, STATEFUL_SETS.kind)]}
    if tmeta.get("annotations"):
        md["annotations"] = dict(tmeta["annotations"])
    spec = copy.deepcopy(template.get("spec") or {})
    spec["hostname"] = name
    if _spec(sts).get("serviceName"):
        spec["subdomain"] = _spec(sts)["serviceName"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec}


def partition(sts: Obj) -> int:
    rolling = (_spec(sts).get("updateStrategy") or {}).get("rollingUpdate") or {}
    value = rolling.get("partition")
    return value if isinstance(value, int) else 0


def _rolling(sts: Obj) -> bool:
    return (_spec(sts).get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def revision_for(sts: Obj, ordinal: int, current: str, update: str) -> str:
    """The revision a new pod gets: below the partition the current one, else the update
    revision (newVersionedStatefulSetPod)."""
    if _rolling(sts) and ordinal < start_ordinal(sts) + partition(sts):
        return current
    return update


def is_healthy(pod: Obj, min_ready_seconds: int = 0, now: float = 0.0) -> bool:
    """Running and Ready (for minReadySeconds: available), not being deleted."""
    return ((pod.get("status") or {}).get("phase") == "Running" and is_available(pod, min_ready_seconds, now)
            and not is_deleting(pod))


@dataclass
class Step:
    create: list[tuple[int, str]] = field(default_factory=list)  # (ordinal, revision name)
    delete: list[Obj] = field(default_factory=list)


def next_step(sts: Obj, pods: Iterable[Obj], current: str, update: str, now: float) -> Step:
    """What to create and delete now (see the module's doc); `pods` are the StatefulSet's.
    With minReadySeconds, OrderedReady and the rolling update wait for pods to be available."""
    min_ready = int(_spec(sts).get("minReadySeconds") or 0)
    by_ordinal: dict[int, Obj] = {}
    condemned: list[tuple[int, Obj]] = []
    wanted = wanted_ordinals(sts)
    for pod in pods:
        ordinal = ordinal_of(sts, pod)
        if ordinal is None:
            continue
        if ordinal in wanted:
            by_ordinal[ordinal] = pod
        else:
            condemned.append((ordinal, pod))
    ordered = _spec(sts).get("podManagementPolicy", "OrderedReady") != "Parallel"
    step = Step()
    for ordinal in wanted:
        existing = by_ordinal.get(ordinal)
        if existing is None:
            step.create.append((ordinal, revision_for(sts, ordinal, current, update)))
        elif is_terminal(existing) and not is_deleting(existing):
            step.delete.append(existing)
        elif is_healthy(existing, min_ready, now) or not ordered:
            continue
        if ordered:
            return step
    for _, doomed in sorted(condemned, key=lambda c: -c[0]):
        if not is_deleting(doomed):
            step.delete.append(doomed)
        if ordered:
            return step
    if not _rolling(sts) or step.create or step.delete:
        return step
    for ordinal in reversed(range(wanted.start + partition(sts), wanted.stop)):
        replica = by_ordinal[ordinal]
        if revision_of(replica) != update and not is_deleting(replica):
            step.delete.append(replica)
            return step
        if not is_healthy(replica, min_ready, now):
            return step
    return step


def stateful_set_status(sts: Obj, pods: Iterable[Obj], current: str, update: str, now: float,
                        collision_count: int) -> dict[str, Any]:
    """The status for the StatefulSet's pods; a RollingUpdate whose pods are all of the update
    revision and ready makes it the current revision (completeRollingUpdate)."""
    min_ready = int(_spec(sts).get("minReadySeconds") or 0)
    live = [p for p in pods if not is_terminal(p) and not is_deleting(p) and ordinal_of(sts, p) is not None]
    status: dict[str, Any] = {
        "observedGeneration": meta(sts).get("generation", 1),
        "replicas": len(live),
        "readyReplicas": sum(1 for p in live if is_pod_ready(p)),
        "availableReplicas": sum(1 for p in live if is_available(p, min_ready, now)),
        "currentReplicas": sum(1 for p in live if revision_of(p) == current),
        "updatedReplicas": sum(1 for p in live if revision_of(p) == update),
        "currentRevision": current, "updateRevision": update,
    }
    wanted = len(wanted_ordinals(sts))
    if (_rolling(sts) and status["updatedReplicas"] == status["replicas"] == wanted
            and status["readyReplicas"] == wanted):
        status["currentRevision"], status["currentReplicas"] = update, status["updatedReplicas"]
    if collision_count:
        status["collisionCount"] = collision_count
    conditions = (sts.get("status") or {}).get("conditions")
    if conditions:
        status["conditions"] = conditions
    return status
