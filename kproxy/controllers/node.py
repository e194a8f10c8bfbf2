"""Node lifecycle controller: nodes that stop sending heartbeats become NotReady (Unknown) and
their pods stop being ready, so their endpoints stop receiving traffic.

A node's heartbeat is its Lease in kube-node-lease (spec.renewTime), else its Ready condition's
lastHeartbeatTime. As in Kubernetes' node lifecycle controller, staleness is judged by when
*this controller* last saw the heartbeat change (local monotonic clock), not by the
timestamp's value, so clock skew between machines does not matter and a restarted controller
gives every node a full grace period.

Guarantees, checked every `monitor_period` seconds:
- a node whose heartbeat has not changed for longer than `grace_period` gets its Ready (and
  pressure) conditions set to Unknown through the status subresource;
- every pod on a node whose Ready condition is Unknown or False has its Ready condition set to
  False through the pod's status subresource (Kubernetes' MarkPodsNotReady);
- a node without any Ready condition and heartbeat is treated like a silent one after the
  grace period. Nothing is ever set back to Ready: that is the kubelet's job;
- a node's taints follow its Ready condition (TaintNodesByCondition and the NoExecute
  tainting pass): Unknown -> node.kubernetes.io/unreachable, False -> node.kubernetes.io/
  not-ready, each as NoSchedule and NoExecute; Ready=True removes them. The taint eviction
  manager (tainteviction.py) acts on the NoExecute ones.
"""
from __future__ import annotations

import asyncio
import copy
import datetime
import logging
import time
from typing import Any

from kproxy.api.resources import LEASES, NODES, PODS
from kproxy.api.status import ApiError
from kproxy.client.errors import ApiConnectionError
from kproxy.controllers.base import SharedInformers
from kproxy.controllers.podutil import meta

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
NODE_CONDITIONS_SET_UNKNOWN = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(obj: dict, ctype: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def heartbeat_of(node: dict, lease: dict | None) -> str | None:
    """The node's latest heartbeat marker: Lease renewTime, else Ready lastHeartbeatTime."""
    if lease is not None:
        renew = (lease.get("spec") or {}).get("renewTime")
        if renew:
            return f"lease:{renew}"
    ready = condition(node, "Ready")
    if ready and ready.get("lastHeartbeatTime"):
        return f"ready:{ready['lastHeartbeatTime']}"
    return None


def node_marked_unknown(node: dict, now: str) -> dict | None:
    """The node with its Ready/pressure conditions set to Unknown, or None if they already are."""
    new = copy.deepcopy(node)
    status = new.setdefault("status", {})
    conditions = status.setdefault("conditions", [])
    changed = False
    for ctype in NODE_CONDITIONS_SET_UNKNOWN:
        cond = condition(new, ctype)
        if cond is None:
            if ctype != "Ready":
                continue  # never posted: do not invent pressure conditions
            cond = {"type": "Ready"}
            conditions.append(cond)
            reason, message = "NodeStatusNeverUpdated", "Kubelet never posted node status."
        else:
            reason, message = "NodeStatusUnknown", "Kubelet stopped posting node status."
        if cond.get("status") == "Unknown":
            continue
        cond.update(status="Unknown", reason=reason, message=message, lastTransitionTime=now)
        cond.setdefault("lastHeartbeatTime", now)
        changed = True
    return new if changed else None


NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
CONDITION_TAINTS = (NOT_READY_TAINT, UNREACHABLE_TAINT)


def node_with_condition_taints(node: dict, now: str) -> dict | None:
    """The node with the not-ready/unreachable taints its Ready condition calls for, None when
    it already has exactly those (pure). A taint kept keeps its timeAdded."""
    ready = (condition(node, "Ready") or {}).get("status")
    key = {"False": NOT_READY_TAINT, "Unknown": UNREACHABLE_TAINT}.get(str(ready))
    taints = list((node.get("spec") or {}).get("taints") or [])
    kept = [t for t in taints if t.get("key") not in CONDITION_TAINTS or t.get("key") == key]
    if key is not None:
        for effect in ("NoSchedule", "NoExecute"):
            if not any(t.get("key") == key and t.get("effect") == effect for t in kept):
                kept.append({"key": key, "effect": effect, **({"timeAdded": now} if effect == "NoExecute" else {})})
    if kept == taints:
        return None
    new = copy.deepcopy(node)
    new.setdefault("spec", {})["taints"] = kept
    if not kept:
        del new["spec"]["taints"]
    return new


def pod_marked_not_ready(pod: dict, now: str) -> dict | None:
    """The pod with its Ready condition False, or None when it is not Ready=True."""
    cond = condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    new = copy.deepcopy(pod)
    c = condition(new, "Ready")
    assert c is not None
    c.update(status="False", lastTransitionTime=now, reason="NodeNotReady", message="the node is not ready")
    return new


class NodeLifecycleController:
    name = "node"

    def __init__(self, client: Any, informers: SharedInformers, *, grace_period: float = 40.0,
                 monitor_period: float | None = None):
        self.client = client
        self.nodes = informers.get(NODES)
        self.leases = informers.get(LEASES)
        self.pods = informers.get(PODS)
        self.informers = informers
        self.grace_period = grace_period
        self.monitor_period = monitor_period if monitor_period is not None else min(5.0, max(0.1, grace_period / 4))
        self._probes: dict[str, tuple[str | None, float]] = {}  # node -> (heartbeat, seen at)

    async def run(self, stop: asyncio.Event) -> None:
        await self.informers.wait_synced([NODES, LEASES, PODS])
        while not stop.is_set():
            try:
                await self.monitor_once()
            except (ApiError, ApiConnectionError) as exc:
                log.warning("node: monitor pass failed: %s (next pass retries)", exc)
            except Exception:
                log.exception("node: monitor pass failed")
            try:
                await asyncio.wait_for(stop.wait(), self.monitor_period)
            except asyncio.TimeoutError:
                pass

    def stale_nodes(self, now: float) -> list[str]:
        """Updates the heartbeat observations and returns the nodes silent beyond the grace period."""
        stale = []
        names = set()
        for node in list(self.nodes.cache.values()):
            name = meta(node)["name"]
            names.add(name)
            hb = heartbeat_of(node, self.leases.get(name, LEASE_NAMESPACE))
            seen = self._probes.get(name)
            if seen is None or seen[0] != hb:
                self._probes[name] = (hb, now)
            elif now - seen[1] > self.grace_period:
                stale.append(name)
        for gone in set(self._probes) - names:
            del self._probes[gone]
        return stale

    async def monitor_once(self) -> None:
        stamp = now_rfc3339()
        for name in self.stale_nodes(time.monotonic()):
            node = self.nodes.get(name)
            new = node_marked_unknown(node, stamp) if node is not None else None
            if new is not None:
                try:
                    await self.client.update_status(NODES, new)
                    log.info("node: %s stopped sending heartbeats: Ready=Unknown", name)
                except ApiError as exc:
                    if exc.code not in (404, 409):  # gone, or changed meanwhile: next pass
                        raise
        await self._taint_by_condition(stamp)
        not_ready = set()
        for node in self.nodes.cache.values():
            ready = condition(node, "Ready")
            if ready is not None and ready.get("status") in ("False", "Unknown"):
                not_ready.add(meta(node)["name"])
        for pod in list(self.pods.cache.values()):
            if (pod.get("spec") or {}).get("nodeName") not in not_ready:
                continue
            new = pod_marked_not_ready(pod, stamp)
            if new is None:
                continue
            try:
                await self.client.update_status(PODS, new)
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise

    async def _taint_by_condition(self, stamp: str) -> None:
        for node in list(self.nodes.cache.values()):
            new = node_with_condition_taints(node, stamp)
            if new is None:
                continue
            try:
                await self.client.update(NODES, new)
                log.info("node: %s taints now %s", meta(node)["name"],
                         [f"{t['key']}:{t['effect']}" for t in (new.get("spec") or {}).get("taints") or []])
            except ApiError as exc:
                if exc.code not in (404, 409):  # gone, or changed meanwhile: next pass
                    raise
