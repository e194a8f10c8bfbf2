"""When the change an EndpointSlice write carries first happened (KEP-3453's trigger time).

The EndpointSlice controller writes `endpoints.kubernetes.io/last-change-trigger-time` on the
slices it creates or updates; the agent observes `network_programming_duration_seconds` from it
to the moment the rule is in the kernel. The trigger time of a write is the earliest change
(a selected pod or the Service itself) not yet carried by a write of that Service's slices.

Upstream takes the time from the pod's Ready condition lastTransitionTime or the Service's
creationTimestamp; both are second-precision, which would swamp the sub-100 ms programming
this project measures. Here it is the moment the controller's informer delivered the change
(wall clock, microseconds), so the histogram starts at the controller, not at the kubelet.
"""
from __future__ import annotations

import datetime
import time
from typing import Callable

from kproxy.api.meta import TRIGGER_TIME_ANNOTATION


def format_trigger_time(t: float) -> str:
    """RFC 3339 with microseconds and "Z", as the agent parses it."""
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TriggerTimes:
    """Earliest unconsumed change per key. `take` at the start of a reconcile, `give_back`
    when the reconcile fails (so the next try still carries the original time)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._earliest: dict[str, float] = {}

    def changed(self, key: str) -> None:
        now = self._clock()
        if key not in self._earliest or now < self._earliest[key]:
            self._earliest[key] = now

    def take(self, key: str) -> float | None:
        return self._earliest.pop(key, None)

    def give_back(self, key: str, t: float | None) -> None:
        if t is not None and (key not in self._earliest or t < self._earliest[key]):
            self._earliest[key] = t

    def forget(self, key: str) -> None:
        self._earliest.pop(key, None)


def annotate(slices: list[dict], t: float | None) -> None:
    """Sets (or, with no trigger, removes) the annotation on slices about to be written."""
    for s in slices:
        metadata = s.setdefault("metadata", {})
        annotations = dict(metadata.get("annotations") or {})
        if t is None:
            annotations.pop(TRIGGER_TIME_ANNOTATION, None)
        else:
            annotations[TRIGGER_TIME_ANNOTATION] = format_trigger_time(t)
        if annotations:
            metadata["annotations"] = annotations
        else:
            metadata.pop("annotations", None)
