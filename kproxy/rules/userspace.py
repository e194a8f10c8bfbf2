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

import ipaddress
import re
from typing import Any, Mapping, Sequence

from .iptables import IptablesAdapter, build, normalise_rule
from .model import EndpointInfo, KernelObject, NodeRules, ServiceRules, SkippedPort
from .trace import Candidate, Probe, Step, TraceReport

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
                    stand_in_ports: bool = False, skipped: Sequence[tuple[str, str]] = ()) -> NodeRules:
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
                     tuple(rekey(o) for o in rules.unowned), rules.detail,
                     tuple(sorted(SkippedPort(k, why) for k, why in skipped)))


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
                        tuple(endpoints[a] for a in sorted(endpoints)), tuple(objs), svc.affinity)


class _Listener:
    """The parts of a ListenerInfo the model uses, for a rendered (not yet opened) listener."""

    def __init__(self, key: str, protocol: str, endpoints: tuple[str, ...], port: int) -> None:
        self.key, self.protocol, self.endpoints, self.port = key, protocol, endpoints, port
        self.address, self.flows = "", 0


class UserspaceAdapter:
    """kproxy.rules.adapter.ModeAdapter for mode "userspace"."""

    mode = MODE
    # why `kproxy rules trace --send` cannot confirm this mode's trace from conntrack
    send_unsupported = ("not for userspace mode: conntrack only shows the redirect to the proxy's listener; "
                        "the proxy picks the endpoint on its own connection")

    def read(self, backend: Any) -> "Reading":
        """The backend's inspection plus what the trace needs and the listener dump lacks: the
        balancer and the node's routes (to tell which endpoints are on this node)."""
        routes = backend.netns.command(["ip", "-4", "-o", "route", "show", "table", "main"], check=False).stdout
        return Reading(backend.inspect(), getattr(backend.proxy, "balancer", "maglev"), routes)

    def from_inspection(self, inspection: Any, node: str) -> NodeRules:
        inspection = getattr(inspection, "inspection", inspection)
        base = IptablesAdapter().from_inspection(inspection.rules, node)
        by_port = {info.port: info.key for info in inspection.listeners}
        return _with_listeners(base, inspection.listeners, by_port, skipped=getattr(inspection, "skipped", ()))

    def from_ruleset(self, plan: Any, node: str) -> NodeRules:
        from kproxy.userspace.plan import render_rules
        # stand-in ports (the real ones are the kernel's choice), mapped back to listener keys
        ports = {key: 40000 + i for i, key in enumerate(sorted(plan.listeners))}
        ruleset = render_rules(plan, ports)
        chains = {key: [(text, 0, 0) for text in rules] for key, rules in ruleset.chains()}
        jumps = [(j.table, j.chain, (j.restore_text(), 0, 0)) for j in ruleset.jumps]
        base = build(chains, jumps, node)
        listeners = [_Listener(spec.key, spec.protocol, spec.endpoints, 0) for spec in plan.listeners.values()]
        return _with_listeners(base, listeners, {port: key for key, port in ports.items()}, stand_in_ports=True,
                               skipped=plan.skipped)

    def trace(self, inspection: Any, probe: Probe, local_addresses: Sequence[str]) -> TraceReport:
        """The redirect rules traced as in iptables mode; a redirect to a listener is then
        replaced by the endpoints that listener's balancer chooses from (see choose())."""
        balancer = getattr(inspection, "balancer", "maglev")
        routes = getattr(inspection, "routes", "")
        inspection = getattr(inspection, "inspection", inspection)
        report = IptablesAdapter().trace(inspection.rules, probe, local_addresses)
        by_address = {f"{info.address}:{info.port}": info for info in inspection.listeners if info.port}
        by_port = {info.port: info for info in inspection.listeners if info.port}
        candidates: list[Candidate] = []
        notes = [report.note] if report.note else []
        for c in report.candidates:
            info = by_address.get(c.outcome)
            if info is None and c.is_endpoint:
                info = by_port.get(int(c.outcome.rpartition(":")[2]))
            if info is None:
                candidates.append(c)
                continue
            host, _, port = c.outcome.rpartition(":")
            step = Step(f"userspace/{info.key}", 0,
                        f"{info.protocol.lower()} listener {c.outcome} ({balancer}) -> "
                        f"{', '.join(info.endpoints) or 'no endpoints'}")
            choices = choose(balancer, info.endpoints, probe, host, int(port))
            if not choices:
                candidates.append(Candidate("REJECT", c.probability, c.masquerade, c.path + (step,)))
                notes.append(f"listener {info.key} has no endpoints: the proxy resets the connection")
            local = local_endpoints(routes, info.endpoints)
            for endpoint, p in choices:
                # the proxy opens its own connection to the endpoint: from the node's address,
                # except to an endpoint on this node, which gets the client's (transparent)
                kept = (endpoint in local and endpoint.rpartition(":")[0] != probe.src
                        and not probe.src.startswith("127."))
                candidates.append(Candidate(endpoint, c.probability * p, not kept, c.path + (step,)))
            notes.append(_choice_note(balancer, probe))
        merged: dict[str, Candidate] = {}
        for c in candidates:
            old = merged.get(c.outcome)
            merged[c.outcome] = c if old is None else Candidate(
                c.outcome, old.probability + c.probability, old.masquerade or c.masquerade,
                old.path if old.probability >= c.probability else c.path)
        ordered = tuple(sorted(merged.values(), key=lambda c: (-c.probability, c.outcome)))
        return TraceReport(MODE, probe, report.service, report.frontend, ordered,
                           "; ".join(dict.fromkeys(n for n in notes if n)))


def _choice_note(balancer: str, probe: Probe) -> str:
    if balancer == "maglev" and probe.sport:
        return ("maglev picks by the connection's 5-tuple (client address and port, listener address and port); "
                "with ClientIP session affinity a client that connected within the timeout keeps its previous "
                "endpoint, which the listener dump does not show")
    if balancer == "maglev":
        return "maglev hashes the client port too: give --src IP:PORT for the one endpoint this connection gets"
    return "round robin: each new connection takes the next endpoint in turn"


def choose(balancer: str, endpoints: Sequence[str], probe: Probe, listener_ip: str,
           listener_port: int) -> list[tuple[str, float]]:
    """(endpoint, probability) for a new connection of `probe` reaching the listener at
    listener_ip:listener_port: the one endpoint Maglev picks for this 5-tuple (the proxy sees
    the client's address and the listener's own address, as kproxy.userspace.core.Balancer
    hashes them), or each endpoint's share of the Maglev table when the source port is not
    known, or an even share for round robin."""
    from kproxy import fastpath
    from kproxy.userspace.core import MAGLEV_TABLE_SIZE, Balancer

    if not endpoints:
        return []
    if balancer != "maglev":
        return [(ep, 1 / len(endpoints)) for ep in sorted(endpoints)]
    if probe.sport:
        proto = {"tcp": 6, "udp": 17, "sctp": 132}[probe.proto]
        first = Balancer(tuple(endpoints), None, "maglev").order(probe.src, probe.sport, listener_ip, listener_port,
                                                                 proto, 0.0)[0]
        return [(first, 1.0)]
    maglev = fastpath.Maglev(list(endpoints), size=MAGLEV_TABLE_SIZE)
    counts = {name: 0 for name in maglev.names}
    for i in maglev.table or ():  # None only without endpoints, returned above
        counts[maglev.names[i]] += 1
    return [(name, n / MAGLEV_TABLE_SIZE) for name, n in sorted(counts.items())]


def local_endpoints(routes: str, endpoints: Sequence[str]) -> set[str]:
    """The endpoints on this node, judged from `ip -4 -o route show` text: those whose most
    specific route is a /32 host route without a gateway (a pod's routed veth, as the lab and
    routed-veth CNIs set up). The proxy connects to those with the client's address."""
    table = []
    for line in routes.splitlines():
        words = line.split()
        if not words:
            continue
        dest = "0.0.0.0/0" if words[0] == "default" else words[0]
        try:
            net = ipaddress.IPv4Network(dest if "/" in dest else dest + "/32", strict=False)
        except ValueError:
            continue
        table.append((net, "via" in words))
    local = set()
    for ep in endpoints:
        try:
            ip = ipaddress.IPv4Address(ep.rpartition(":")[0])
        except ValueError:
            continue
        matches = [(net.prefixlen, via) for net, via in table if ip in net]
        if matches and max(matches)[0] == 32 and not max(matches)[1]:
            local.add(ep)
    return local


class Reading:
    """What UserspaceAdapter.read() returns: the backend's Inspection, its balancer kind and the
    node's routes."""

    def __init__(self, inspection: Any, balancer: str, routes: str = "") -> None:
        self.inspection, self.balancer, self.routes = inspection, balancer, routes
