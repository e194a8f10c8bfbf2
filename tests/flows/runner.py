"""Runs the flow table (tests/flows/cases.py) through `kproxy rules trace`'s own code.

For one Scenario: its API objects go through the agent's translation (kproxy.rules.desired,
the function `kproxy rules diff` uses, over an in-memory list client) into a ProxyState; a
mode renders it with its pure render function; `reading()` turns the rendered ruleset into
what the mode's rules adapter reads from the kernel (adapter.read(backend)); and `trace()` is
the adapter's trace(), exactly as the CLI calls it. Only the kernel round trip is left out
here; tests/kernel and tests/vm/guest put the same rulesets into a kernel.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable

from kproxy.agent.families import family_view
from kproxy.agent.state import ProxyState
from kproxy.agent.tracker import StateSettings
from kproxy import modes
from kproxy.api.resources import ENDPOINT_SLICES, NODES, SERVICES
from kproxy.rules.adapter import adapter_for
from kproxy.rules.desired import desired_state
from kproxy.rules.trace import Probe, TraceReport

from .cases import Flow, Scenario

# the modes whose kernel the development machines have (ipvs runs its table in the VM)
HOST_MODES = tuple(name for name in modes.names() if not modes.spec(name).needs_vm)


class ListClient:
    """The one call desired_state() makes, list(), answered from the scenario's objects (the
    Node list honours its metadata.name field selector; the Service and slice selectors only
    exclude objects the table never holds)."""

    def __init__(self, scenario: Scenario) -> None:
        self._items = {SERVICES: scenario.services, ENDPOINT_SLICES: scenario.slices, NODES: (scenario.node(),)}

    def list(self, resource: Any, field_selector: str = "", label_selector: str = "") -> dict:
        items = [copy.deepcopy(obj) for obj in self._items[resource]]
        if field_selector.startswith("metadata.name="):
            name = field_selector.partition("=")[2]
            items = [obj for obj in items if obj["metadata"]["name"] == name]
        return {"items": items}


def settings(scenario: Scenario) -> StateSettings:
    """The scenario's node settings (scenario.settings names StateSettings fields)."""
    known = {f.name for f in dataclasses.fields(StateSettings)}
    unknown = set(scenario.settings) - known
    assert not unknown, f"{scenario.name}: no StateSettings field {sorted(unknown)}"
    extra = dict(scenario.settings)
    return StateSettings(node_name=scenario.node_name, cluster_cidr=scenario.cluster_cidr,
                         node_port_addresses=scenario.node_port_addresses, **extra)


def build_state(scenario: Scenario) -> ProxyState:
    """The agent's state for the scenario, with the node's interface addresses as the agent reads
    them from the kernel, as the scenario's family sees it (the agent's pass for that family)."""
    state = desired_state(ListClient(scenario), settings(scenario))
    return family_view(dataclasses.replace(state, local_ips=tuple(scenario.local_addresses)), scenario.family)


# ------------------------------------------------------------------ rendered -> what the adapter reads


def _iptables_inspection(ruleset: Any) -> Any:
    """An iptables Inspection of `ruleset` as iptables-save would show it after a full restore."""
    from kproxy.iptables.backend import Inspection
    from kproxy.iptables.restore import full_restore
    from kproxy.iptables.save import owned_view, parse_save
    return Inspection("rendered", owned_view(parse_save(full_restore(ruleset))))


def _iptables(state: ProxyState, scenario: Scenario) -> Any:
    from kproxy.iptables.render import render
    return _iptables_inspection(render(state))


def _nftables(state: ProxyState, scenario: Scenario) -> Any:
    from kproxy.nftables.render import render
    from kproxy.rules.nftables import Dump
    return Dump(render(state).text())


LISTENER_PORT_BASE = 40000  # listener ports are the kernel's choice; any free ones do here


def _userspace(state: ProxyState, scenario: Scenario) -> Any:
    from kproxy.rules.userspace import Reading
    from kproxy.userspace.backend import Inspection
    from kproxy.userspace.plan import render_plan, render_rules
    from kproxy.userspace.proxy import ListenerInfo
    plan = render_plan(state)
    ports = {key: LISTENER_PORT_BASE + i for i, key in enumerate(sorted(plan.listeners))}
    listeners = tuple(ListenerInfo(key, spec.protocol, plan.target_ip or "", ports[key], spec.endpoints, 0)
                      for key, spec in sorted(plan.listeners.items()))
    # this node's pods have routed-veth host routes, as in the lab (what the adapter reads)
    local = sorted({e.ip for sp in state.services.values() for e in sp.endpoints if e.is_local})
    routes = "".join(f"{ip} dev veth{i} scope link\n" for i, ip in enumerate(local))
    return Reading(Inspection(listeners, _iptables_inspection(render_rules(plan, ports))), "roundrobin", routes)


# each host mode's kernel view, rendered offline (mode-specific by nature; a new host mode adds
# its reader here, and test_flows checks every host mode has one)
READERS: dict[str, Callable[[ProxyState, Scenario], Any]] = {
    "iptables": _iptables, "nftables": _nftables, "userspace": _userspace}


def reading(mode: str, scenario: Scenario, state: ProxyState | None = None) -> Any:
    """What `mode`'s adapter would read from a kernel holding the scenario's rendered rules."""
    return READERS[mode](build_state(scenario) if state is None else state, scenario)


def trace(mode: str, read: Any, scenario: Scenario, flow: Flow) -> TraceReport:
    """`kproxy rules trace --proto P --src SRC --dst DST:PORT` over `read`."""
    probe = Probe(flow.proto.lower(), flow.src, 0, flow.dst, flow.port)
    return adapter_for(mode).trace(read, probe, list(scenario.local_addresses))
