"""The scheduler's view of the cluster, kept current by informer events: nodes, the pods bound
to each, and the pods this scheduler bound that the informer has not shown bound yet
("assumed", so the next decisions already count them). snapshot() rebuilds only the nodes
that changed since the last one, and a pod's footprint is computed once per version: a
decision costs what the nodes cost, not what every pod in the cluster costs."""
from __future__ import annotations

from typing import Any, Mapping

from kproxy.client.informer import object_key
from kproxy.scheduler.snapshot import Footprint, NodeInfo, Snapshot, is_terminal


def _node_of(pod: Mapping[str, Any]) -> str | None:
    if is_terminal(pod):
        return None
    return (pod.get("spec") or {}).get("nodeName") or None


class ClusterCache:
    def __init__(self) -> None:
        self.nodes: dict[str, Mapping[str, Any]] = {}
        self._pods_on: dict[str, dict[str, Mapping[str, Any]]] = {}  # node -> pod key -> pod
        self._where: dict[str, str] = {}  # pod key -> node
        self._assumed: set[str] = set()
        self._footprints: dict[str, tuple[Any, Footprint]] = {}  # pod key -> (resourceVersion, footprint)
        self._infos: dict[str, NodeInfo] = {}
        self._dirty: set[str] = set()

    # -- events ----------------------------------------------------------------------------

    def set_node(self, node: Mapping[str, Any]) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        self.nodes[name] = node
        self._dirty.add(name)

    def remove_node(self, name: str) -> None:
        self.nodes.pop(name, None)
        self._infos.pop(name, None)
        self._dirty.discard(name)

    def set_pod(self, pod: Mapping[str, Any]) -> None:
        """A pod as the informer reports it (added or updated)."""
        key = object_key(dict(pod))
        node = _node_of(pod)
        if key in self._assumed and node is None and not is_terminal(pod):
            return  # the informer has not caught up with our binding yet: keep the assumption
        self._assumed.discard(key)
        self._place(key, pod, node)

    def remove_pod(self, pod: Mapping[str, Any]) -> None:
        key = object_key(dict(pod))
        self._assumed.discard(key)
        self._footprints.pop(key, None)
        self._place(key, pod, None)

    def assume(self, pod: Mapping[str, Any], node: str) -> None:
        """`pod` was just bound to `node` by us."""
        if is_terminal(pod):
            return  # a finished pod takes nothing (and is never scheduled)
        key = object_key(dict(pod))
        self._assumed.add(key)
        self._place(key, {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node}}, node)

    def is_assumed(self, key: str) -> bool:
        return key in self._assumed

    def _place(self, key: str, pod: Mapping[str, Any], node: str | None) -> None:
        old = self._where.pop(key, None)
        if old is not None:
            self._pods_on.get(old, {}).pop(key, None)
            self._dirty.add(old)
        if node is not None:
            self._where[key] = node
            self._pods_on.setdefault(node, {})[key] = pod
            self._dirty.add(node)

    # -- reads -----------------------------------------------------------------------------

    def _footprint(self, pod: Mapping[str, Any]) -> Footprint:
        key = object_key(dict(pod))
        rv = (pod.get("metadata") or {}).get("resourceVersion")
        cached = self._footprints.get(key)
        if cached is not None and cached[0] == rv and rv is not None:
            return cached[1]
        fp = Footprint.of(pod)
        self._footprints[key] = (rv, fp)
        return fp

    def snapshot(self) -> Snapshot:
        for name in self._dirty:
            node = self.nodes.get(name)
            if node is not None:
                self._infos[name] = NodeInfo.of(node, self._pods_on.get(name, {}).values(), self._footprint)
        self._dirty.clear()
        return Snapshot(dict(sorted(self._infos.items())))
