"""Change tracking: informer events in, the next ProxyState and its Changes out.

Informer handlers only record: ServiceChangeTracker and EndpointSliceTracker keep
{previous, current} per object since the last build, drop changes that make no difference to
the proxy (a resourceVersion bump, a headless Service appearing), and call `on_change` so the
proxier can request a sync. ProxyStateBuilder.build_state() consumes what they recorded and
rebuilds only the ServicePorts of the Services that changed, reusing every other ServicePort
object as it was.

Not thread-safe: handlers and build_state() run on the agent's one event loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from kproxy.agent import translate
from kproxy.agent.state import Changes, ProxyState, ServicePort

Obj = Mapping[str, Any]


class _ObjectTracker:
    """{previous, current} per object key, with no-op detection on the object's `view()` (the
    part of it the proxy uses). `previous` is what the last take() handed to the builder, so a
    change and its reversal between two builds cancel out."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._pending: dict[str, tuple[Any, Obj | None, Any]] = {}  # key -> (previous view, current, its view)
        self._seen: dict[str, Any] = {}  # key -> view as of the last take()
        self._on_change = on_change
        self._issues: dict[str, tuple[str, ...]] = {}  # key -> what issues() reported last
        self._new_issues: dict[str, tuple[Obj, tuple[str, ...]]] = {}  # not yet taken
        self._empty = self.view(None)
        self.total = 0  # changes recorded since start (for the *_changes_total metric)

    def view(self, obj: Obj | None) -> Any:
        raise NotImplementedError

    def issues(self, obj: Obj) -> tuple[str, ...]:
        """What of `obj` the view leaves out because it is unusable (see translate)."""
        return ()

    def update(self, old: Obj | None, new: Obj | None) -> bool:
        """Records that the object is now `new` (None: deleted). Returns True if it differs from
        what the last build saw."""
        obj = new if new is not None else old
        if obj is None:
            return False
        key = translate.object_key(obj)
        self._note_issues(key, new)
        previous = self._pending[key][0] if key in self._pending else self._seen.get(key, self._empty)
        current = self.view(new)
        if previous == current:
            self._pending.pop(key, None)
            return False
        self._pending[key] = (previous, new, current)
        self.total += 1
        self._changed(new)
        if self._on_change is not None:
            self._on_change()
        return True

    def _changed(self, new: Obj | None) -> None:
        pass

    def _note_issues(self, key: str, new: Obj | None) -> None:
        # checked on every event, not only on view changes: a value that is dropped leaves the
        # view as it was
        issues = self.issues(new) if new is not None else ()
        if issues == self._issues.get(key, ()):
            return
        if issues and new is not None:
            self._issues[key] = issues
            self._new_issues[key] = (new, issues)
        else:
            self._issues.pop(key, None)
            self._new_issues.pop(key, None)

    def take_issues(self) -> dict[str, tuple[Obj, tuple[str, ...]]]:
        """Objects whose issues changed to a non-empty list since the last call, with them."""
        out, self._new_issues = self._new_issues, {}
        return out

    # informer handler protocol
    def on_add(self, obj: Obj) -> None:
        self.update(None, obj)

    def on_update(self, old: Obj, new: Obj) -> None:
        self.update(old, new)

    def on_delete(self, obj: Obj) -> None:
        self.update(obj, None)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def take(self) -> dict[str, tuple[Obj | None, Any]]:
        """Returns {key: (current object or None, its view)} recorded since the last take(),
        and forgets it."""
        pending, self._pending = self._pending, {}
        out = {}
        for key, (_, obj, view) in pending.items():
            if obj is None or view == self._empty:
                self._seen.pop(key, None)
            else:
                self._seen[key] = view
            out[key] = (obj, view)
        return out


class ServiceChangeTracker(_ObjectTracker):
    """Views a Service as its ServicePorts without endpoints (() when not proxied)."""

    def view(self, obj: Obj | None) -> tuple[ServicePort, ...]:
        return translate.service_ports(obj)

    def issues(self, obj: Obj) -> tuple[str, ...]:
        return translate.service_issues(obj)


class EndpointSliceTracker(_ObjectTracker):
    """Views a slice as (owning service key, SliceView)."""

    def __init__(self, node_name: str, on_change: Callable[[], None] | None = None) -> None:
        self.node_name = node_name
        self._trigger_times: list[float] = []
        super().__init__(on_change)

    def view(self, obj: Obj | None) -> tuple[str | None, translate.SliceView]:
        if obj is None:
            return None, ()
        return translate.slice_service_key(obj), translate.slice_view(obj, self.node_name)

    def issues(self, obj: Obj) -> tuple[str, ...]:
        return translate.slice_issues(obj)

    def _changed(self, new: Obj | None) -> None:
        t = translate.trigger_time(new)
        if t is not None:
            self._trigger_times.append(t)

    def take_trigger_times(self) -> list[float]:
        """Trigger times of the slice changes recorded since the last call (for
        network_programming_duration_seconds)."""
        times, self._trigger_times = self._trigger_times, []
        return times


class NodeTracker:
    """This node's Node object: its addresses (for NodePort primary), pod CIDRs (for the
    NodeCIDR local-traffic detector), zone (for topology hints) and health eligibility."""

    def __init__(self, node_name: str, on_change: Callable[[], None] | None = None) -> None:
        self.node_name = node_name
        self.node: Obj | None = None
        self._on_change = on_change
        self.changed = False

    def _set(self, node: Obj | None) -> None:
        if node is not None and translate.object_key(node) != self.node_name:
            return
        before = self._view(self.node)
        self.node = node
        after = self._view(node)
        if after != before:
            self.changed = True  # a sync refreshes node IPs and health eligibility
            if self._on_change is not None:
                self._on_change()

    @staticmethod
    def _view(node: Obj | None) -> tuple:
        return (translate.node_ips(node), translate.node_pod_cidrs(node), translate.node_zone(node),
                translate.node_eligible(node))

    def on_add(self, obj: Obj) -> None:
        self._set(obj)

    def on_update(self, old: Obj, new: Obj) -> None:
        self._set(new)

    def on_delete(self, obj: Obj) -> None:
        if translate.object_key(obj) == self.node_name:
            self._set(None)

    @property
    def eligible(self) -> bool:
        return translate.node_eligible(self.node)


@dataclass(frozen=True)
class BuildResult:
    state: ProxyState
    changes: Changes
    trigger_times: tuple[float, ...] = ()  # slice last-change-trigger-times consumed by this build


@dataclass(frozen=True)
class StateSettings:
    """The node-wide ProxyState fields that come from configuration."""

    node_name: str
    cluster_cidr: str | None = None
    service_cidrs: tuple[str, ...] = ()
    masquerade_all: bool = False
    masquerade_bit: int = 14
    node_port_addresses: tuple[str, ...] = ()
    detect_local_mode: str = "ClusterCIDR"
    detect_local_interface: str = ""  # bridge name or interface prefix, per the mode

    @classmethod
    def from_config(cls, config: Any, node_name: str) -> "StateSettings":
        """The settings an AgentConfig gives node `node_name`."""
        return cls(node_name=node_name, cluster_cidr=config.cluster_cidr or None,
                   service_cidrs=config.service_cidrs, masquerade_all=config.masquerade_all,
                   masquerade_bit=config.masquerade_bit,
                   node_port_addresses=config.node_port_addresses, detect_local_mode=config.detect_local_mode,
                   detect_local_interface=config.detect_local_interface)


@dataclass
class ProxyStateBuilder:
    """Owns the trackers and the object caches; `build_state()` is O(changed Services)."""

    settings: StateSettings
    on_change: Callable[[], None] | None = None
    services: ServiceChangeTracker = field(init=False)
    slices: EndpointSliceTracker = field(init=False)
    node: NodeTracker = field(init=False)

    def __post_init__(self) -> None:
        self.services = ServiceChangeTracker(self.on_change)
        self.slices = EndpointSliceTracker(self.settings.node_name, self.on_change)
        self.node = NodeTracker(self.settings.node_name, self.on_change)
        self._service_ports: dict[str, tuple[ServicePort, ...]] = {}  # service key -> ports without endpoints
        self._slice_owner: dict[str, str] = {}  # slice key -> service key
        self._slice_views: dict[str, dict[str, translate.SliceView]] = {}  # service key -> slice name -> view
        self._ports_by_service: dict[str, dict[str, ServicePort]] = {}
        self._ports: dict[str, ServicePort] = {}
        self._node_ips: tuple[str, ...] = ()
        self._node_pod_cidrs: tuple[str, ...] = ()
        self._node_zone = ""
        self._local_ips: tuple[str, ...] | None = None  # None until the kernel's are known
        self._local_ips_changed = False
        self._state: ProxyState | None = None

    @property
    def state(self) -> ProxyState | None:
        """The last built state (None before the first build)."""
        return self._state

    def set_local_ips(self, ips: tuple[str, ...]) -> None:
        """Records the addresses of the node's interfaces; a change asks for a (full) sync."""
        if ips == self._local_ips:
            return
        self._local_ips = ips
        self._local_ips_changed = True
        if self.on_change is not None:
            self.on_change()

    def build_state(self) -> BuildResult:
        """Consumes recorded changes; returns the next state (same object and revision when
        nothing changed) and the ServicePort keys that differ. The first build is full, and so
        is a build where the node's addresses (Node object or interfaces) changed."""
        affected: set[str] = set()
        for key, (_, ports) in self.services.take().items():
            affected.add(key)
            if ports:
                self._service_ports[key] = ports
            else:
                self._service_ports.pop(key, None)
        for key, (_, (owner, view)) in self.slices.take().items():
            old_owner = self._slice_owner.pop(key, None)
            if old_owner is not None:
                affected.add(old_owner)
                views = self._slice_views.get(old_owner, {})
                views.pop(key, None)
                if not views:
                    self._slice_views.pop(old_owner, None)
            if owner is not None:
                affected.add(owner)
                self._slice_owner[key] = owner
                self._slice_views.setdefault(owner, {})[key] = view
        trigger_times = tuple(self.slices.take_trigger_times())

        changed: set[str] = set()
        for svc_key in affected:
            views = self._slice_views.get(svc_key, {})
            new = translate.attach_endpoints(self._service_ports.get(svc_key, ()),
                                             (views[k] for k in sorted(views)))
            old = self._ports_by_service.get(svc_key, {})
            for port_key in old.keys() | new.keys():
                before, after = old.get(port_key), new.get(port_key)
                if before is not None and before == after:
                    new[port_key] = before  # reuse the object the backend may have cached
                    continue
                changed.add(port_key)
                if after is None:
                    del self._ports[port_key]
                else:
                    self._ports[port_key] = after
            if new:
                self._ports_by_service[svc_key] = new
            else:
                self._ports_by_service.pop(svc_key, None)

        node_changed = self.node.changed
        self.node.changed = False
        new_node_ips = translate.node_ips(self.node.node)
        new_pod_cidrs = translate.node_pod_cidrs(self.node.node)
        new_zone = translate.node_zone(self.node.node)
        # a new zone changes which endpoints topology hints leave to every ServicePort: full, as
        # kube-proxy's OnNodeUpdate does for a label change
        full = (self._state is None or self._local_ips_changed
                or (node_changed and (new_node_ips, new_pod_cidrs, new_zone)
                    != (self._node_ips, self._node_pod_cidrs, self._node_zone)))
        self._node_ips, self._node_pod_cidrs, self._node_zone = new_node_ips, new_pod_cidrs, new_zone
        self._local_ips_changed = False
        if self._state is not None and not changed and not full:
            return BuildResult(self._state, Changes(full=False), trigger_times)
        s = self.settings
        self._state = ProxyState(
            node_name=s.node_name, node_ips=self._node_ips, cluster_cidr=s.cluster_cidr,
            service_cidrs=s.service_cidrs,
            masquerade_all=s.masquerade_all, masquerade_bit=s.masquerade_bit,
            node_port_addresses=s.node_port_addresses, local_ips=self._local_ips,
            detect_local_mode=s.detect_local_mode, detect_local_interface=s.detect_local_interface,
            node_pod_cidrs=self._node_pod_cidrs, node_zone=self._node_zone, services=dict(self._ports),
            revision=(self._state.revision + 1) if self._state is not None else 1,
        )
        return BuildResult(self._state, Changes(full=full, services=frozenset(changed)), trigger_times)
