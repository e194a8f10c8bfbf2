"""Events about objects, as client-go's event recorder writes them (core/v1 Event): a name of
"<object>.<nanoseconds in hex>", involvedObject, reason, message, type, and the reporting
component and instance (source.component/host too, for `kubectl describe`).

Guarantees: recording never blocks or fails the caller. Each Event is written in the
background; when the apiserver refuses it (RBAC, validation, unreachable) the failure is
logged once per recorder (later ones at debug level) and the Event is dropped.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from kproxy.api.meta import now_rfc3339
from kproxy.api.resources import EVENTS

log = logging.getLogger(__name__)

POD_REF = ("v1", "Pod")


def event_name(name: str, stamp: float, fallback: str) -> str:
    """"<object name>.<nanoseconds in hex>"; an object name that cannot start a DNS subdomain
    is reduced to its usable characters, or replaced by `fallback`."""
    base = re.sub(r"[^a-z0-9.-]", "", name.lower())[:200].strip(".-") or fallback
    return f"{base}.{int(stamp * 1e9):x}"


def make_event(ref: tuple[str, str], namespace: str, name: str, reason: str, message: str, *,
               component: str, instance: str, event_type: str = "Warning", uid: str | None = None,
               now: float | None = None) -> dict[str, Any]:
    """The Event object (pure but for the timestamp's default)."""
    stamp = time.time() if now is None else now
    when = now_rfc3339() if now is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
    api_version, kind = ref
    involved = {"apiVersion": api_version, "kind": kind, "namespace": namespace, "name": name}
    if uid:
        involved["uid"] = uid
    source = {"component": component, **({"host": instance} if instance else {})}
    return {
        "metadata": {"name": event_name(name, stamp, component), "namespace": namespace},
        "involvedObject": involved, "reason": reason, "message": message[:1024], "type": event_type,
        "source": source, "reportingComponent": component, "reportingInstance": instance,
        "firstTimestamp": when, "lastTimestamp": when, "count": 1,
    }


class EventRecorder:
    def __init__(self, client: Any, component: str, instance: str = "") -> None:
        self.client = client
        self.component = component
        self.instance = instance
        self._tasks: set[asyncio.Task] = set()
        self._failed_once = False

    def record(self, ref: tuple[str, str], namespace: str, name: str, event_type: str, reason: str,
               message: str, uid: str | None = None) -> None:
        """Writes an Event about namespace/name in the background (see module doc)."""
        if self.client is None or not hasattr(self.client, "create"):
            return
        event = make_event(ref, namespace, name, reason, message, component=self.component,
                           instance=self.instance, event_type=event_type, uid=uid)
        task = asyncio.get_running_loop().create_task(self._write(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def warn(self, ref: tuple[str, str], namespace: str, name: str, reason: str, message: str) -> None:
        self.record(ref, namespace, name, "Warning", reason, message)

    async def _write(self, event: dict[str, Any]) -> None:
        try:
            await self.client.create(EVENTS, event, namespace=event["metadata"]["namespace"])
        except Exception as exc:  # the apiserver's answer must not reach the caller
            if not self._failed_once:
                self._failed_once = True
                log.warning("cannot write Events (reported once; e.g. RBAC lacks events create): %s", exc)
            else:
                log.debug("Event not written: %s", exc)

    async def drain(self) -> None:
        """Waits for the Events being written (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
