"""Events the workload controllers record about the objects they act on ("Created pod: web-x",
"Scaled up replica set web-5d8f to 3", ...), as kube-controller-manager's event recorder.

Guarantees: recording never blocks or fails a reconcile. Each Event is written in the
background; a refused write is logged once per recorder (later ones at debug level).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from kproxy.agent.events import event_name
from kproxy.api.meta import now_rfc3339
from kproxy.api.resources import EVENTS, Resource

log = logging.getLogger(__name__)

NORMAL, WARNING = "Normal", "Warning"


def event_for(resource: Resource, obj: dict[str, Any], event_type: str, reason: str, message: str,
              component: str) -> dict[str, Any]:
    """The Event object about `obj` (pure but for the timestamps)."""
    md = obj.get("metadata") or {}
    namespace, name = md.get("namespace") or "default", md.get("name", "")
    when = now_rfc3339()
    return {
        "metadata": {"name": event_name(name, time.time()), "namespace": namespace},
        "involvedObject": {"apiVersion": resource.group_version, "kind": resource.kind, "namespace": namespace,
                           "name": name, "uid": md.get("uid", ""), "resourceVersion": md.get("resourceVersion", "")},
        "reason": reason, "message": message[:1024], "type": event_type,
        "source": {"component": component}, "reportingComponent": component,
        "firstTimestamp": when, "lastTimestamp": when, "count": 1,
    }


class EventRecorder:
    def __init__(self, client: Any, component: str) -> None:
        self.client = client
        self.component = component
        self._tasks: set[asyncio.Task] = set()
        self._failed_once = False

    def record(self, resource: Resource, obj: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        event = event_for(resource, obj, event_type, reason, message, self.component)
        task = asyncio.get_running_loop().create_task(self._write(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, event: dict[str, Any]) -> None:
        try:
            await self.client.create(EVENTS, event, namespace=event["metadata"]["namespace"])
        except Exception as exc:  # never reaches the reconcile
            if not self._failed_once:
                self._failed_once = True
                log.warning("%s: cannot write Events (reported once): %s", self.component, exc)
            else:
                log.debug("Event not written: %s", exc)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
