"""The desired ProxyState of one node, built from the apiserver's objects exactly as the agent
builds it (same selectors, same translation and change tracking)."""
from __future__ import annotations

from typing import Any

from kproxy.agent.proxier import SERVICE_FIELD_SELECTOR, SERVICE_LABEL_SELECTOR, SLICE_LABEL_SELECTOR
from kproxy.agent.state import ProxyState
from kproxy.agent.tracker import ProxyStateBuilder, StateSettings
from kproxy.api.resources import ENDPOINT_SLICES, NODES, SERVICES

from .model import EndpointInfo, NodeRules, ServiceRules


def desired_state(client: Any, settings: StateSettings) -> ProxyState:
    """Lists Services, EndpointSlices and this Node through `client` (a kproxy.client.sync.Client)
    and returns the state the agent for settings.node_name would program."""
    builder = ProxyStateBuilder(settings)
    for obj in client.list(SERVICES, field_selector=SERVICE_FIELD_SELECTOR,
                           label_selector=SERVICE_LABEL_SELECTOR).get("items") or []:
        builder.services.on_add(obj)
    for obj in client.list(ENDPOINT_SLICES, label_selector=SLICE_LABEL_SELECTOR).get("items") or []:
        builder.slices.on_add(obj)
    for obj in client.list(NODES, field_selector=f"metadata.name={settings.node_name}").get("items") or []:
        builder.node.on_add(obj)
    return builder.build_state().state


def with_endpoint_states(rules: NodeRules, state: ProxyState) -> NodeRules:
    """`rules` (from the kernel) with each Service port's endpoints taken from `state`: readiness,
    serving, terminating, locality and node from the apiserver, `programmed` telling whether
    the kernel holds the endpoint. Endpoints only the kernel holds are kept as they are."""
    out = []
    for svc in rules.services:
        sp = state.services.get(svc.key)
        if sp is None:
            out.append(svc)
            continue
        kernel = {e.address: e for e in svc.endpoints}
        merged = {}
        for e in sp.endpoints:
            seen = kernel.get(e.address)
            merged[e.address] = EndpointInfo(e.address, e.ready, e.serving, e.terminating, e.is_local,
                                             e.node_name, programmed=seen is not None,
                                             packets=seen.packets if seen is not None else 0,
                                             weight=seen.weight if seen is not None else None)
        for addr, info in kernel.items():
            merged.setdefault(addr, info)
        out.append(ServiceRules(svc.namespace, svc.name, svc.port_name, svc.protocol, svc.frontends,
                                tuple(merged[a] for a in sorted(merged)), svc.objects, svc.affinity))
    return NodeRules(rules.mode, rules.node, tuple(out), rules.shared, rules.unowned, rules.detail, rules.skipped)
