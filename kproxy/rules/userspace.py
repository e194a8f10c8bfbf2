"""The userspace adapter: listeners of the proxy process plus the iptables rules that send each
Service port's traffic to them (kproxy.userspace.backend.Inspection) -> the shared model.

Rules are attributed exactly as in iptables mode (their comments name the ServicePort); each
listener ("ns/name:port#internal" or "#external") is a `listener` object of its ServicePort, and
the ServicePort's endpoints are its listeners' endpoints (the proxy balances over them).

Listener ports are chosen by the kernel when a listener opens, so neither a rendered Plan nor
a rule that redirects to a listener can know them: KernelObject keys write the port of a
listener as "<listener KEY>" on both sides, so diff compares "redirects to the right listener"
and "the listener has the right endpoints", not port numbers.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from .iptables import IptablesAdapter, build, normalise_rule
from .model import EndpointInfo, KernelObject, NodeRules, ServiceRules
from .trace import Probe, TraceReport

MODE = "userspace"
_TO_PORT = re.compile(r"(--to-destination \S+:|--to-ports )(\d+)")


def _listener_key_text(text: str, by_port: Mapping[int, str]) -> str:
    """A rule's diff key with listener ports replaced by their listener's key."""
    return _port_names(normalise_rule(text), by_port)


def _port_names(text: str, by_port: Mapping[int, str]) -> str:
    """`text` with listener ports written as "<listener KEY>" (for rendered rules, whose ports are
    stand-ins)."""
    return _TO_PORT.sub(lambda m: m.group(1) + (f"<{by_port[int(m.group(2))]}>" if int(m.group(2)) in by_port
                                                 else m.group(2)), text)


def _with_listeners(rules: NodeRules, listeners: Sequence[Any], by_port: Mapping[int, str],
                    stand_in_ports: bool = False) -> NodeRules:
    """`rules` (iptables part) re-keyed for listener ports, with the listeners attached. With
    `stand_in_ports` (a rendered Plan) the texts name the listener instead of the fake port."""
    def rekey(o: KernelObject) -> KernelObject:
        if o.kind != "rule":
            return o
        text = _port_names(o.text, by_port) if stand_in_ports else o.text
        return KernelObject(o.kind, o.container, text, o.packets, o.bytes, _listener_key_text(o.text, by_port),
                            o.entry)

    by_service: dict[str, list[Any]] = {}
    for info in listeners:
        by_service.setdefault(info.key.split("#", 1)[0], []).append(info)
    services = []
    known = set()
    for svc in rules.services:
        known.add(svc.key)
        services.append(_attach(svc, [rekey(o) for o in svc.objects], by_service.get(svc.key, [])))
    for key in sorted(set(by_service) - known):  # a listener no rule sends traffic to
        ns, _, rest = key.partition("/")
        name, _, port_name = rest.partition(":")
        services.append(_attach(ServiceRules(ns, name, port_name, by_service[key][0].protocol), [],
                                by_service[key]))
    services.sort(key=lambda s: s.key)
    return NodeRules(MODE, rules.node, tuple(services), tuple(rekey(o) for o in rules.shared),
                     tuple(rekey(o) for o in rules.unowned), rules.detail)


def _attach(svc: ServiceRules, objects: list[KernelObject], listeners: list[Any]) -> ServiceRules:
    endpoints: dict[str, EndpointInfo] = {e.address: e for e in svc.endpoints}
    objs = list(objects)
    for info in sorted(listeners, key=lambda i: i.key):
        eps = ", ".join(info.endpoints) or "no endpoints"
        where = f"{info.address}:{info.port}" if info.port else "(not open yet)"
        text = f"{info.protocol.lower()} {where} -> {eps} ({info.flows} flows)"
        key = f"{info.key} {info.protocol.lower()} -> {' '.join(sorted(info.endpoints))}"
        objs.append(KernelObject("listener", f"userspace/{info.key}", text, key=key))
        for addr in info.endpoints:
            endpoints.setdefault(addr, EndpointInfo(addr))
    return ServiceRules(svc.namespace, svc.name, svc.port_name, svc.protocol, svc.frontends,
                        tuple(endpoints[a] for a in sorted(endpoints)), tuple(objs))


class _Listener:
    """The parts of a ListenerInfo the model uses, for a rendered (not yet opened) listener."""

    def __init__(self, key: str, protocol: str, endpoints: tuple[str, ...], port: int) -> None:
        self.key, self.protocol, self.endpoints, self.port = key, protocol, endpoints, port
        self.address, self.flows = "", 0


class UserspaceAdapter:
    """kproxy.rules.adapter.ModeAdapter for mode "userspace"."""

    mode = MODE

    def from_inspection(self, inspection: Any, node: str) -> NodeRules:
        base = IptablesAdapter().from_inspection(inspection.rules, node)
        by_port = {info.port: info.key for info in inspection.listeners}
        return _with_listeners(base, inspection.listeners, by_port)

    def from_ruleset(self, plan: Any, node: str) -> NodeRules:
        from kproxy.userspace.plan import render_rules
        # stand-in ports (the real ones are the kernel's choice), mapped back to listener keys
        ports = {key: 40000 + i for i, key in enumerate(sorted(plan.listeners))}
        ruleset = render_rules(plan, ports)
        chains = {key: [(text, 0, 0) for text in rules] for key, rules in ruleset.chains()}
        jumps = [(j.table, j.chain, (j.restore_text(), 0, 0)) for j in ruleset.jumps]
        base = build(chains, jumps, node)
        listeners = [_Listener(spec.key, spec.protocol, spec.endpoints, 0) for spec in plan.listeners.values()]
        return _with_listeners(base, listeners, {port: key for key, port in ports.items()}, stand_in_ports=True)

    def trace(self, inspection: Any, probe: Probe, local_addresses: Sequence[str]) -> TraceReport:
        raise ValueError("trace is not available for userspace mode yet (the proxy process picks the endpoint)")
