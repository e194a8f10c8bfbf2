"""Warning Events about objects the agent could not (fully) program, as kube-proxy records them:
involvedObject the Service (or EndpointSlice), reportingComponent "kube-proxy", source.host
and reportingInstance the node's name.

Guarantees: recording never blocks or fails a sync. Each Event is written in the background;
when the apiserver refuses it (RBAC, validation, unreachable) the failure is logged once per
recorder (later ones at debug level) and the Event is dropped.
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

COMPONENT = "kube-proxy"
SERVICE_REF = ("v1", "Service")
SLICE_REF = ("discovery.k8s.io/v1", "EndpointSlice")


def event_name(name: str, stamp: float) -> str:
    """"<object name>.<nanoseconds in hex>", as client-go names Events; an object name that
    cannot start a DNS subdomain (the very objects these Events are about may have one) is
    reduced to its usable characters, or replaced by "kube-proxy"."""
    base = re.sub(r"[^a-z0-9.-]", "", name.lower())[:200].strip(".-") or COMPONENT
    return f"{base}.{int(stamp * 1e9):x}"


def warning_event(ref: tuple[str, str], namespace: str, name: str, reason: str, message: str,
                  node_name: str, now: float | None = None) -> dict[str, Any]:
    """The Event object (pure but for the timestamp's default)."""
    stamp = time.time() if now is None else now
    when = now_rfc3339() if now is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
    api_version, kind = ref
    return {
        "metadata": {"name": event_name(name, stamp), "namespace": namespace},
        "involvedObject": {"apiVersion": api_version, "kind": kind, "namespace": namespace, "name": name},
        "reason": reason, "message": message[:1024], "type": "Warning",
        "source": {"component": COMPONENT, "host": node_name},
        "reportingComponent": COMPONENT, "reportingInstance": node_name,
        "firstTimestamp": when, "lastTimestamp": when, "count": 1,
    }


class EventRecorder:
    def __init__(self, client: Any, node_name: str) -> None:
        self.client = client
        self.node_name = node_name
        self._tasks: set[asyncio.Task] = set()
        self._failed_once = False

    def warn(self, ref: tuple[str, str], namespace: str, name: str, reason: str, message: str) -> None:
        """Writes a Warning Event about namespace/name in the background (see module doc)."""
        if self.client is None or not hasattr(self.client, "create"):
            return
        event = warning_event(ref, namespace, name, reason, message, self.node_name)
        task = asyncio.get_running_loop().create_task(self._write(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, event: dict[str, Any]) -> None:
        try:
            await self.client.create(EVENTS, event, namespace=event["metadata"]["namespace"])
        except Exception as exc:  # the apiserver's answer must not reach the sync loop
            if not self._failed_once:
                self._failed_once = True
                log.warning("cannot write Events (reported once; e.g. RBAC lacks events create): %s", exc)
            else:
                log.debug("Event not written: %s", exc)

    async def drain(self) -> None:
        """Waits for the Events being written (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
