"""Pure rendering for the userspace mode: ProxyState -> Plan (listeners and what is redirected to
them), and Plan + listener ports -> the iptables Ruleset that redirects traffic to them.

Layout (static chains and jump rules are the iptables mode's, so switching between the two
modes is one atomic iptables-restore and `kproxy rules`/trace tooling reads both):
  nat KUBE-SERVICES   -d <clusterIP|externalIP|LB IP> --dport N -> DNAT to <node IP>:<listener port>
                      (REDIRECT --to-ports <listener port> when the node IP is unknown)
                      last rule: addrtype LOCAL -> KUBE-NODEPORTS
  nat KUBE-NODEPORTS  --dport <nodePort> -> DNAT/REDIRECT to the external listener
  filter              REJECT (no endpoints) / DROP (Local policy, no local endpoint), exactly as
                      the iptables mode, for traffic that is not redirected.
A ServicePort gets one listener per distinct endpoint set: "internal" (cluster IPs, under
internalTrafficPolicy) and "external" (node port, external and LB IPs, under
externalTrafficPolicy); both are the same listener when the two sets are equal. Under
externalTrafficPolicy Local, traffic to the external frontends from pods (the pod CIDR) or from
the node itself goes to every endpoint, as kube-proxy's KUBE-EXT chain short-circuits it: those
sources are redirected first, to a "cluster" listener (or the internal one when its endpoints
are the same), and only the rest meets the Local listener or the DROP.
NodePorts answer on 127.0.0.0/8 unless `localhostNodePorts` is false (iptables mode's option).
SCTP ServicePorts are not proxied (the kernel may lack SCTP sockets; asyncio has no SCTP
transport): the Plan lists them in `skipped` with the reason.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping

from kproxy.agent.addresses import LocalTraffic, ipv4, local_traffic, nodeport_ips
from kproxy.agent.policy import categorize_in
from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from kproxy.iptables import names as n
from kproxy.iptables.render import jump_rules
from kproxy.iptables.ruleset import Fragment, RenderOptions, Ruleset

NAT, FILTER = n.NAT, n.FILTER
PROTOCOLS = ("TCP", "UDP")
SCTP_SKIPPED = "userspace mode does not proxy SCTP"
RULE_OPTIONS = RenderOptions(localhost_nodeports=False, random_fully=False)
NODEPORTS_COMMENT = '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"'


@dataclass(frozen=True)
class ListenerSpec:
    """One proxy listener: where its connections go and how the endpoint is chosen.

    `key` is stable for the ServicePort and role ("ns/name:port#internal"), so a listener keeps
    its socket (and port) while only its endpoints change. `endpoints` are "ip:port" strings,
    sorted. `affinity_timeout` is ClientIP session affinity in seconds (None: none)."""

    key: str
    protocol: str  # TCP | UDP
    endpoints: tuple[str, ...]
    terminating: tuple[str, ...] = ()  # endpoints in use only through the terminating fallback
    affinity_timeout: int | None = None
    # Connect from the client's own address (IP_TRANSPARENT) where the reply is sure to come
    # back through this node: to `local_endpoints` (their default route is this node).
    transparent: bool = False
    local_endpoints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dispatch:
    """What one ServicePort redirects or filters. Listener keys are "" when that side has none."""

    service: ServicePort
    internal: str
    external: str
    # externalTrafficPolicy Local: the listener (every endpoint) for traffic to the external
    # frontends from pods or this node; "" when that is `external` anyway or nothing is left
    short_circuit: str = ""


@dataclass(frozen=True)
class Plan:
    """The complete desired userspace state: listeners by key, dispatch per ServicePort key, and
    the local address DNAT sends redirected traffic to (None: REDIRECT)."""

    listeners: Mapping[str, ListenerSpec]
    dispatch: Mapping[str, Dispatch]
    target_ip: str | None
    nodeport_ips: tuple[str, ...] | None = None  # None: NodePorts on every local address
    local: LocalTraffic | None = None  # what tells pod traffic (detectLocalMode; None: nothing does)
    localhost_nodeports: bool = True  # NodePorts answer on 127.0.0.0/8
    skipped: tuple[tuple[str, str], ...] = ()  # (ServicePort key, why it is not programmed)

    def __post_init__(self) -> None:
        from types import MappingProxyType

        for name in ("listeners", "dispatch"):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))


def _spec(key: str, sp: ServicePort, endpoints: tuple[Endpoint, ...]) -> ListenerSpec:
    local = tuple(sorted({e.address for e in endpoints if e.is_local}))
    return ListenerSpec(
        key=key, protocol=sp.protocol,
        endpoints=tuple(sorted({e.address for e in endpoints})),
        terminating=tuple(sorted({e.address for e in endpoints if e.terminating})),
        affinity_timeout=sp.session_affinity_timeout,
        transparent=bool(local), local_endpoints=local,
    )


def render_plan(state: ProxyState, localhost_nodeports: bool = True) -> Plan:
    """The Plan for `state` (pure, deterministic). A ServicePort's roles share one listener
    wherever their endpoint sets are equal."""
    listeners: dict[str, ListenerSpec] = {}
    dispatch: dict[str, Dispatch] = {}
    skipped: list[tuple[str, str]] = []
    for key in sorted(state.services):
        sp = state.services[key]
        if sp.protocol not in PROTOCOLS:
            skipped.append((key, SCTP_SKIPPED if sp.protocol == "SCTP" else f"protocol {sp.protocol} is not proxied"))
            continue
        # each role's endpoints are a filtered run of sp.endpoints (sorted): equal sets are
        # equal tuples of the same objects, so == is cheap (no hashing of endpoints)
        opened: list[tuple[tuple[Endpoint, ...], str]] = []

        def listener(role: str, endpoints: tuple[Endpoint, ...]) -> str:
            if not endpoints:
                return ""
            for have, name in opened:
                if have == endpoints:
                    return name
            name = f"{sp.key}#{role}"
            listeners[name] = _spec(name, sp, endpoints)
            opened.append((endpoints, name))
            return name

        categories = categorize_in(sp, state)
        internal = listener("internal", categories.internal if sp.cluster_ips else ())
        external = listener("external", categories.external if sp.has_external else ())
        short = ""
        if sp.external_policy_local and sp.has_external:
            short = listener("cluster", categories.cluster)
        dispatch[key] = Dispatch(sp, internal, external, "" if short == external else short)
    target = next(iter(ipv4(state.node_ips)), None)
    selected = nodeport_ips(state, include_loopback=localhost_nodeports)
    return Plan(listeners=listeners, dispatch=dispatch, target_ip=target,
                nodeport_ips=None if selected is None else tuple(
                    ip for ip in selected if localhost_nodeports or not ip.startswith("127.")),
                local=local_traffic(state), localhost_nodeports=localhost_nodeports,
                skipped=tuple(skipped))


# ------------------------------------------------------------------ iptables rules


def _to(target_ip: str | None, port: int) -> str:
    if target_ip:
        return f"-j DNAT --to-destination {target_ip}:{port}"
    return f"-j REDIRECT --to-ports {port}"


def _within(cidr: str, pod_cidr: str) -> str | None:
    """The part of `cidr` that is inside `pod_cidr` (CIDRs nest or are disjoint); None: none."""
    try:
        a, b = ipaddress.ip_network(cidr, strict=False), ipaddress.ip_network(pod_cidr, strict=False)
    except ValueError:
        return None
    if a.version != b.version:
        return None
    return str(a) if a.subnet_of(b) else str(b) if b.subnet_of(a) else None  # type: ignore[arg-type]


def _internal_sources(sources: list[str], local: LocalTraffic | None) -> list[tuple[str, str]]:
    """(origin, source match) for the traffic kube-proxy treats as internal under
    externalTrafficPolicy Local: from this node's pods (the detectLocalMode detector), and from
    this node (addrtype LOCAL), each kept within the allowed `sources` ("" or "-s CIDR ")."""
    out = []
    for src in sources:
        if local is not None and local.cidr is None:  # an interface detector: both matches apply
            out.append(("pod", f"{src}{local.iptables_match()} "))
        elif local is not None and local.cidr is not None:
            allowed = src[3:].strip() if src else ""
            pods = local.cidr if not allowed else _within(allowed, local.cidr)
            if pods:
                out.append(("pod", f"-s {pods} "))
        out.append(("node", f"{src}-m addrtype --src-type LOCAL "))
    return out


def _in_any(ip: str, cidrs: tuple[str, ...]) -> bool:
    """True when `ip` is inside one of `cidrs` (entries that are no CIDR match nothing)."""
    for cidr in cidrs:
        try:
            if ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False):
                return True
        except ValueError:
            continue
    return False


def render_fragment(d: Dispatch, target_ip: str | None, ports: Mapping[str, int],
                    local: LocalTraffic | None = None) -> Fragment:
    """The dispatch rules of one ServicePort (pure): redirects to its listeners' ports, and the
    REJECT/DROP filter rules where a side has no endpoints. `local`: what tells pod traffic
    (externalTrafficPolicy Local short-circuit)."""
    sp = d.service
    spn = n.service_port_name(sp)
    proto = sp.protocol.lower()
    match = f"-m {proto} -p {proto}"
    has_endpoints = any(e.ready or (e.serving and e.terminating) for e in sp.endpoints)
    verdict = "REJECT" if not has_endpoints else "DROP"
    why = f'"{spn} has no endpoints"' if not has_endpoints else f'"{spn} has no local endpoints"'
    rules: dict[tuple[str, str], list[str]] = {}

    def add(table: str, chain: str, rule: str) -> None:
        rules.setdefault((table, chain), []).append(rule)

    def short_circuit(chain: str, what: str, dest: str, sources: list[str]) -> None:
        if d.short_circuit:
            for origin, source in _internal_sources(sources, local):
                add(NAT, chain, f'-m comment --comment "{spn}{what}: {origin} traffic" {source}{dest} '
                                f'{_to(target_ip, ports[d.short_circuit])}')

    for ip in ipv4(sp.cluster_ips):
        if d.internal:
            add(NAT, n.KUBE_SERVICES, f'-m comment --comment "{spn} cluster IP" {match} -d {ip} '
                                      f'--dport {sp.port} {_to(target_ip, ports[d.internal])}')
        else:
            add(FILTER, n.KUBE_SERVICES, f"-m comment --comment {why} {match} -d {ip} --dport {sp.port} -j {verdict}")
    for kind, ips in (("external IP", sp.external_ips), ("loadbalancer IP", sp.load_balancer_ips)):
        # loadBalancerSourceRanges: only the allowed sources are redirected; the rest reaches
        # KUBE-PROXY-FIREWALL unchanged and is dropped there (as in the iptables mode).
        sources = [""]
        if kind == "loadbalancer IP" and sp.load_balancer_source_ranges:
            sources = [f"-s {cidr} " for cidr in sp.load_balancer_source_ranges]
            if target_ip and _in_any(target_ip, sp.load_balancer_source_ranges):
                # the node reaching its own LB IP arrives with the LB IP as source (as in iptables mode)
                sources += [f"-s {lb} " for lb in ipv4(sp.load_balancer_ips)]
        for ip in ipv4(ips):
            short_circuit(n.KUBE_SERVICES, f" {kind}", f"{match} -d {ip} --dport {sp.port}", sources)
            if d.external:
                for src in sources:
                    add(NAT, n.KUBE_SERVICES, f'-m comment --comment "{spn} {kind}" {src}{match} -d {ip} '
                                              f'--dport {sp.port} {_to(target_ip, ports[d.external])}')
                if sources != [""]:
                    add(FILTER, n.KUBE_PROXY_FIREWALL, f'-m comment --comment "{spn} traffic not accepted by '
                                                       f'loadBalancerSourceRanges" {match} -d {ip} '
                                                       f'--dport {sp.port} -j DROP')
            else:
                add(FILTER, n.KUBE_EXTERNAL_SERVICES,
                    f"-m comment --comment {why} {match} -d {ip} --dport {sp.port} -j {verdict}")
    if sp.node_port:
        short_circuit(n.KUBE_NODEPORTS, " node port", f"{match} --dport {sp.node_port}", [""])
        if d.external:
            add(NAT, n.KUBE_NODEPORTS, f"-m comment --comment {spn} {match} --dport {sp.node_port} "
                                       f"{_to(target_ip, ports[d.external])}")
        else:
            add(FILTER, n.KUBE_EXTERNAL_SERVICES, f"-m comment --comment {why} -m addrtype --dst-type LOCAL "
                                                  f"{match} --dport {sp.node_port} -j {verdict}")
    if sp.health_check_node_port:
        add(FILTER, n.KUBE_NODEPORTS, f'-m comment --comment "{spn} health check node port" '
                                      f'-m tcp -p tcp --dport {sp.health_check_node_port} -j ACCEPT')
    return Fragment(service=sp, chains=(), dispatch={k: tuple(v) for k, v in rules.items()},
                    context=_context(d, target_ip, ports, local))


def _context(d: Dispatch, target_ip: str | None, ports: Mapping[str, int], local: LocalTraffic | None) -> tuple:
    """Everything besides the ServicePort that its fragment depends on."""
    return (target_ip, ports.get(d.internal), ports.get(d.external), ports.get(d.short_circuit), local)


def render_rules(plan: Plan, ports: Mapping[str, int], previous: Ruleset | None = None) -> Ruleset:
    """The iptables Ruleset sending each ServicePort's traffic to its listener's port (pure).
    `ports` maps every listener key of `plan` to its bound port. Fragments of `previous` whose
    ServicePort and ports are unchanged are reused (so partial restores stay O(change))."""
    missing = [k for k in plan.listeners if k not in ports]
    if missing:
        raise ValueError(f"no port for listeners {missing}")
    old = previous.fragments if previous is not None else {}
    fragments: dict[str, Fragment] = {}
    for key, d in plan.dispatch.items():
        context = _context(d, plan.target_ip, ports, plan.local)
        prev = old.get(key)
        if prev is not None and prev.context == context and prev.service == d.service:
            fragments[key] = prev
        else:
            fragments[key] = render_fragment(d, plan.target_ip, ports, plan.local)
    static: dict[tuple[str, str], list[str]] = {(FILTER, c): [] for c in n.STATIC_FILTER_CHAINS
                                                 if c != n.KUBE_FIREWALL}
    static.update({(NAT, c): [] for c in n.STATIC_NAT_CHAINS})
    static[(FILTER, n.KUBE_FORWARD)].append("-m conntrack --ctstate INVALID -j DROP")
    for key in sorted(fragments):
        for chain_key, rules in fragments[key].dispatch.items():
            static[chain_key].extend(rules)
    if plan.nodeport_ips is None:
        loopback = "" if plan.localhost_nodeports else " ! -d 127.0.0.0/8"
        static[(NAT, n.KUBE_SERVICES)].append(
            f"-m comment --comment {NODEPORTS_COMMENT} -m addrtype --dst-type LOCAL{loopback} -j {n.KUBE_NODEPORTS}")
    else:
        static[(NAT, n.KUBE_SERVICES)].extend(
            f"-m comment --comment {NODEPORTS_COMMENT} -d {ip} -j {n.KUBE_NODEPORTS}" for ip in plan.nodeport_ips)
    return Ruleset(static={k: tuple(v) for k, v in static.items()}, fragments=fragments,
                   jumps=jump_rules(RULE_OPTIONS), options=RULE_OPTIONS, context=("userspace",))
