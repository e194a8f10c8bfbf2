"""Warning Events about objects the agent could not (fully) program, as kube-proxy records them:
involvedObject the Service (or EndpointSlice), reportingComponent "kube-proxy", source.host
and reportingInstance the node's name. The writing is kproxy.client.events'."""
from __future__ import annotations

from typing import Any

from kproxy.client import events

COMPONENT = "kube-proxy"
SERVICE_REF = ("v1", "Service")
SLICE_REF = ("discovery.k8s.io/v1", "EndpointSlice")


def warning_event(ref: tuple[str, str], namespace: str, name: str, reason: str, message: str,
                  node_name: str, now: float | None = None) -> dict[str, Any]:
    return events.make_event(ref, namespace, name, reason, message, component=COMPONENT,
                             instance=node_name, now=now)


class EventRecorder(events.EventRecorder):
    def __init__(self, client: Any, node_name: str) -> None:
        super().__init__(client, COMPONENT, node_name)
