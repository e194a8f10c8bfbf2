"""Pure rendering of a ProxyState into an iptables Ruleset (the kube-proxy iptables model).

`render(state, previous, changes, options)` is deterministic: equal inputs give equal Rulesets, and the
rule text matches what kube-proxy writes for the same Service (chain names, comments, the
probability cascade formatted with 10 decimals). Fragments of ServicePorts that compare equal to
the previous render (under the same node-level context) are reused as the same objects, so
rendering after one Service changed costs O(that Service) plus re-joining the dispatch chains.

Layout (per ServicePort, protocol P, port N):
  nat KUBE-SERVICES   -d <clusterIP> --dport N -> KUBE-SVC- (or KUBE-SVL- for internal Local)
                      -d <externalIP|LB IP> --dport N -> KUBE-EXT- (LB with source ranges: KUBE-FW-)
                      last rule: addrtype LOCAL (or node_port_addresses) -> KUBE-NODEPORTS
  nat KUBE-NODEPORTS  --dport <nodePort> -> KUBE-EXT-
  nat KUBE-EXT-       Cluster policy: mark masq, -> KUBE-SVC-; Local policy: pod traffic and
                      node-local traffic short-circuit to KUBE-SVC-, the rest -> KUBE-SVL-
  nat KUBE-SVC-/SVL-  mark masq for off-cluster sources, affinity checks, probability cascade
  nat KUBE-SEP-       hairpin mark (-s own ip), affinity --set, DNAT
  filter              REJECT (no endpoints) / DROP (no local endpoints) in KUBE-SERVICES and
                      KUBE-EXTERNAL-SERVICES, LB firewall DROP, health-check ACCEPT, KUBE-FORWARD.
"""
from __future__ import annotations

import ipaddress

from kproxy.agent.addresses import local_traffic, nodeport_ips
from kproxy.agent.families import IPV6, of_family
from kproxy.agent.policy import categorize
from kproxy.agent.state import Changes, Endpoint, ProxyState, ServicePort

from . import names as n
from .names import FILTER, NAT
from .ruleset import ChainKey, Fragment, JumpRule, RenderOptions, Ruleset

LARGE_CLUSTER_ENDPOINTS = 1000  # kube-proxy's largeClusterEndpointsThreshold
NODEPORTS_COMMENT = '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"'


def masquerade_mark(bit: int) -> str:
    """The packet mark kproxy uses to ask for SNAT, as iptables-save prints it (e.g. 0x4000)."""
    return hex(1 << bit)


def probability(remaining: int) -> str:
    """kube-proxy's probability text for the rule choosing among `remaining` endpoints."""
    return f"{1.0 / remaining:0.10f}"


def is_large_cluster(state: ProxyState) -> bool:
    """kube-proxy's large-cluster mode: above LARGE_CLUSTER_ENDPOINTS endpoints in total, the
    per-endpoint rules carry no comment (they cost restore time and kernel memory at scale)."""
    total = 0
    for sp in state.services.values():
        total += len(sp.endpoints)
        if total > LARGE_CLUSTER_ENDPOINTS:
            return True
    return False


def render_context(state: ProxyState, options: RenderOptions) -> tuple:
    """Everything outside a ServicePort that its fragment depends on (the state's family last)."""
    return (local_traffic(state), state.masquerade_all, state.masquerade_bit,
            of_family(state.node_ips, state.ip_family), options, is_large_cluster(state), state.node_name,
            state.node_zone, state.ip_family)


# ------------------------------------------------------------------ per-ServicePort fragment


class _Builder:
    """Collects the chains and dispatch rules of one fragment in write order."""

    def __init__(self) -> None:
        self.chains: dict[ChainKey, list[str]] = {}
        self.dispatch: dict[ChainKey, list[str]] = {}

    def chain(self, table: str, name: str) -> list[str]:
        return self.chains.setdefault((table, name), [])

    def add(self, table: str, static_chain: str, rule: str) -> None:
        self.dispatch.setdefault((table, static_chain), []).append(rule)


def render_fragment(service: ServicePort, context: tuple) -> Fragment:
    """The chains and dispatch rules of one ServicePort (pure)."""
    local, masquerade_all, _masq_bit, node_ips, _options, large, node_name, zone, family = context
    sp = service
    b = _Builder()
    spn = n.service_port_name(sp)
    proto = sp.protocol.lower()
    match_proto = f"-m {proto} -p {proto}"
    mark_masq = n.KUBE_MARK_MASQ

    externally_accessible = sp.has_external
    cluster_eps, local_eps, reachable, has_endpoints, _, _ = categorize(sp, node_name, zone)
    # keyed by id(): the endpoints are the ServicePort's own instances, and hashing a frozen
    # dataclass per lookup is a measurable share of a full render
    addresses = {id(ep): ep.address for ep in reachable}
    name_proto = spn + proto
    sep_names = {key: n.endpoint_chain_name(name_proto, addr) for key, addr in addresses.items()}

    suffix = n.port_proto_hash(sp)
    svc_chain, svl_chain = "KUBE-SVC-" + suffix, "KUBE-SVL-" + suffix
    ext_chain, fw_chain = "KUBE-EXT-" + suffix, "KUBE-FW-" + suffix

    internal_chain, has_internal = svc_chain, has_endpoints
    if sp.internal_policy_local:
        internal_chain, has_internal = svl_chain, bool(local_eps)
    external_policy_chain, has_external = svc_chain, has_endpoints
    if sp.external_policy_local:
        external_policy_chain, has_external = svl_chain, bool(local_eps)
    uses_ext_chain = has_endpoints and externally_accessible
    lb_ips = of_family(sp.load_balancer_ips, family)
    source_ranges = of_family(sp.load_balancer_source_ranges, family)
    uses_fw_chain = has_endpoints and bool(lb_ips) and bool(source_ranges)
    lb_target = fw_chain if uses_fw_chain else ext_chain

    if not has_endpoints:
        internal_filter = external_filter = "REJECT"
        internal_filter_comment = external_filter_comment = f'"{spn} has no endpoints"'
    else:
        internal_filter = "" if has_internal else "DROP"
        external_filter = "" if has_external else "DROP"
        internal_filter_comment = external_filter_comment = f'"{spn} has no local endpoints"'

    cluster_ips = of_family(sp.cluster_ips, family)
    port = sp.port

    # Dispatch: cluster IPs.
    for ip in cluster_ips:
        if has_internal:
            b.add(NAT, n.KUBE_SERVICES, f'-m comment --comment "{spn} cluster IP" {match_proto} '
                                        f'-d {ip} --dport {port} -j {internal_chain}')
        else:
            b.add(FILTER, n.KUBE_SERVICES, f'-m comment --comment {internal_filter_comment} '
                                           f'{match_proto} -d {ip} --dport {port} -j {internal_filter}')
    # Dispatch: external IPs.
    for ip in of_family(sp.external_ips, family):
        if has_endpoints:
            b.add(NAT, n.KUBE_SERVICES, f'-m comment --comment "{spn} external IP" {match_proto} '
                                        f'-d {ip} --dport {port} -j {ext_chain}')
        if not has_external:
            b.add(FILTER, n.KUBE_EXTERNAL_SERVICES, f'-m comment --comment {external_filter_comment} '
                                                    f'{match_proto} -d {ip} --dport {port} -j {external_filter}')
    # Dispatch: load-balancer ingress IPs.
    for ip in lb_ips:
        if has_endpoints:
            b.add(NAT, n.KUBE_SERVICES, f'-m comment --comment "{spn} loadbalancer IP" {match_proto} '
                                        f'-d {ip} --dport {port} -j {lb_target}')
        if uses_fw_chain:
            b.add(FILTER, n.KUBE_PROXY_FIREWALL, f'-m comment --comment "{spn} traffic not accepted by '
                                                 f'{fw_chain}" {match_proto} -d {ip} --dport {port} -j DROP')
    if not has_external:
        for ip in lb_ips:
            b.add(FILTER, n.KUBE_EXTERNAL_SERVICES, f'-m comment --comment {external_filter_comment} '
                                                    f'{match_proto} -d {ip} --dport {port} -j {external_filter}')
    # Dispatch: NodePort.
    if sp.node_port:
        if has_endpoints:
            b.add(NAT, n.KUBE_NODEPORTS, f'-m comment --comment {spn} {match_proto} '
                                         f'--dport {sp.node_port} -j {ext_chain}')
        if not has_external:
            b.add(FILTER, n.KUBE_EXTERNAL_SERVICES, f'-m comment --comment {external_filter_comment} '
                                                    f'-m addrtype --dst-type LOCAL {match_proto} '
                                                    f'--dport {sp.node_port} -j {external_filter}')
    if sp.health_check_node_port:
        b.add(FILTER, n.KUBE_NODEPORTS, f'-m comment --comment "{spn} health check node port" '
                                        f'-m tcp -p tcp --dport {sp.health_check_node_port} -j ACCEPT')

    # Internal traffic: masquerade off-cluster sources (or everything with masquerade_all).
    if has_internal:
        for ip in cluster_ips:
            args = f'-m comment --comment "{spn} cluster IP" {match_proto} -d {ip} --dport {port}'
            if masquerade_all:
                b.chain(NAT, internal_chain).append(f"{args} -j {mark_masq}")
            elif local:
                b.chain(NAT, internal_chain).append(f"{args} {local.iptables_match(negate=True)} -j {mark_masq}")

    # External traffic chain.
    if uses_ext_chain:
        ext = b.chain(NAT, ext_chain)
        if not sp.external_policy_local:
            ext.append(f'-m comment --comment "masquerade traffic for {spn} external destinations" '
                       f'-j {mark_masq}')
        else:
            if local:
                ext.append(f'-m comment --comment "pod traffic for {spn} external destinations" '
                           f'{local.iptables_match()} -j {svc_chain}')
            ext.append(f'-m comment --comment "masquerade LOCAL traffic for {spn} external destinations" '
                       f'-m addrtype --src-type LOCAL -j {mark_masq}')
            ext.append(f'-m comment --comment "route LOCAL traffic for {spn} external destinations" '
                       f'-m addrtype --src-type LOCAL -j {svc_chain}')
        if has_external:
            ext.append(f"-j {external_policy_chain}")

    # Load-balancer source ranges.
    if uses_fw_chain:
        fw = b.chain(NAT, fw_chain)
        args = f'-m comment --comment "{spn} loadbalancer IP"'
        allow_from_node = False
        for cidr in source_ranges:
            fw.append(f"{args} -s {cidr} -j {ext_chain}")
            try:
                net = ipaddress.ip_network(cidr, strict=False)
                allow_from_node |= any(ipaddress.ip_address(ip) in net for ip in node_ips)
            except ValueError:
                pass
        if allow_from_node:  # the node reaching its own LB VIP arrives with the VIP as source
            for ip in lb_ips:
                fw.append(f"{args} -s {ip} -j {ext_chain}")
        fw.append(f'-m comment --comment "other traffic to {spn} will be dropped by KUBE-PROXY-FIREWALL"')

    # Policy chains.
    if cluster_eps:
        _balance(b.chain(NAT, svc_chain), sp, spn, cluster_eps, sep_names, addresses, large)
    if local_eps:
        _balance(b.chain(NAT, svl_chain), sp, spn, local_eps, sep_names, addresses, large)

    # Endpoint chains.
    affinity = sp.session_affinity_timeout is not None
    for ep in reachable:
        sep = sep_names[id(ep)]
        head = "" if large else f"-m comment --comment {spn} "
        rules = b.chain(NAT, sep)
        rules.append(f"{head}-s {ep.ip} -j {mark_masq}")
        recent = f"-m recent --name {sep} --set " if affinity else ""
        rules.append(f"{head}{recent}{match_proto} -j DNAT --to-destination {addresses[id(ep)]}")

    return Fragment(
        service=service,
        chains=tuple((key, tuple(rules)) for key, rules in b.chains.items()),
        dispatch={key: tuple(rules) for key, rules in b.dispatch.items()},
        context=context,
    )


def _balance(rules: list[str], sp: ServicePort, spn: str, endpoints: tuple[Endpoint, ...],
             sep_names: dict[int, str], addresses: dict[int, str], large: bool) -> None:
    """Affinity checks, then the probability cascade 1/n, 1/(n-1), ..., last rule unconditional:
    every endpoint is chosen with probability 1/n."""
    def comment(ep: Endpoint) -> str:
        return "" if large else f'-m comment --comment "{spn} -> {addresses[id(ep)]}" '

    if sp.session_affinity_timeout is not None:
        for ep in endpoints:
            sep = sep_names[id(ep)]
            rules.append(f"{comment(ep)}-m recent --name {sep} "
                         f"--rcheck --seconds {sp.session_affinity_timeout} --reap -j {sep}")
    count = len(endpoints)
    for i, ep in enumerate(endpoints):
        sep = sep_names[id(ep)]
        stat = (f"-m statistic --mode random --probability {probability(count - i)} "
                if i < count - 1 else "")
        rules.append(f"{comment(ep)}{stat}-j {sep}")


# ------------------------------------------------------------------ static chains and jumps


def jump_rules(options: RenderOptions) -> tuple[JumpRule, ...]:
    """The entry rules from built-in chains (kube-proxy's iptablesJumpChains)."""
    new = ("-m", "conntrack", "--ctstate", "NEW")
    jumps = [
        JumpRule(FILTER, "INPUT", n.KUBE_EXTERNAL_SERVICES, "kubernetes externally-visible service portals", new),
        JumpRule(FILTER, "FORWARD", n.KUBE_EXTERNAL_SERVICES, "kubernetes externally-visible service portals", new),
        JumpRule(FILTER, "INPUT", n.KUBE_NODEPORTS, "kubernetes health check service ports"),
        JumpRule(FILTER, "FORWARD", n.KUBE_SERVICES, "kubernetes service portals", new),
        JumpRule(FILTER, "OUTPUT", n.KUBE_SERVICES, "kubernetes service portals", new),
        JumpRule(FILTER, "FORWARD", n.KUBE_FORWARD, "kubernetes forwarding rules"),
        JumpRule(FILTER, "INPUT", n.KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", new),
        JumpRule(FILTER, "OUTPUT", n.KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", new),
        JumpRule(FILTER, "FORWARD", n.KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", new),
        JumpRule(NAT, "OUTPUT", n.KUBE_SERVICES, "kubernetes service portals"),
        JumpRule(NAT, "PREROUTING", n.KUBE_SERVICES, "kubernetes service portals"),
        JumpRule(NAT, "POSTROUTING", n.KUBE_POSTROUTING, "kubernetes postrouting rules"),
    ]
    if options.localhost_nodeports:
        jumps += [JumpRule(FILTER, "INPUT", n.KUBE_FIREWALL, ""),
                  JumpRule(FILTER, "OUTPUT", n.KUBE_FIREWALL, "")]
    return tuple(jumps)


def _static_head(state: ProxyState, options: RenderOptions) -> dict[ChainKey, list[str]]:
    mark = masquerade_mark(state.masquerade_bit)
    masquerade = "-j MASQUERADE --random-fully" if options.random_fully else "-j MASQUERADE"
    chains: dict[ChainKey, list[str]] = {(FILTER, c): [] for c in n.STATIC_FILTER_CHAINS}
    chains.update({(NAT, c): [] for c in n.STATIC_NAT_CHAINS})
    chains[(FILTER, n.KUBE_FORWARD)] += [
        "-m conntrack --ctstate INVALID -j DROP",
        f'-m comment --comment "kubernetes forwarding rules" -m mark --mark {mark}/{mark} -j ACCEPT',
        '-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack '
        '--ctstate RELATED,ESTABLISHED -j ACCEPT',
    ]
    if options.localhost_nodeports:
        # route_localnet makes 127.0.0.0/8 routable; refuse such packets from outside (CVE-2020-8558).
        chains[(FILTER, n.KUBE_FIREWALL)].append(
            '-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 '
            '-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP')
    else:
        del chains[(FILTER, n.KUBE_FIREWALL)]
    chains[(NAT, n.KUBE_POSTROUTING)] += [
        f"-m mark ! --mark {mark}/{mark} -j RETURN",
        f"-j MARK --xor-mark {mark}",
        f'-m comment --comment "kubernetes service traffic requiring SNAT" {masquerade}',
    ]
    chains[(NAT, n.KUBE_MARK_MASQ)].append(f"-j MARK --or-mark {mark}")
    for table in (FILTER, NAT):
        chains[(table, n.KUBE_PROXY_CANARY)] = [n.CANARY_RULE]
    return chains


def _nodeports_tail(state: ProxyState, options: RenderOptions) -> list[str]:
    ips = nodeport_ips(state, include_loopback=True)
    if ips is None:
        dest = "-m addrtype --dst-type LOCAL"
        if state.ip_family == IPV6:  # NodePorts never work on ::1 (upstream's iptables proxier)
            dest += " ! -d ::1/128"
        elif not options.localhost_nodeports:
            dest += " ! -d 127.0.0.0/8"
        return [f"-m comment --comment {NODEPORTS_COMMENT} {dest} -j {n.KUBE_NODEPORTS}"]
    return [f"-m comment --comment {NODEPORTS_COMMENT} -d {ip} -j {n.KUBE_NODEPORTS}"
            for ip in ips if options.localhost_nodeports or not ip.startswith("127.")]


def render(state: ProxyState, previous: Ruleset | None = None, changes: Changes | None = None,
           options: RenderOptions | None = None) -> Ruleset:
    """The complete Ruleset for `state` (pure, deterministic). With `previous` (the Ruleset
    rendered from the state before) and `changes` (what changed since that state), the fragments
    of the ServicePorts `changes` does not name are `previous`'s (same objects) when the context
    is the same; without them, or with full changes, every fragment is rendered."""
    options = options or RenderOptions()
    context = render_context(state, options)
    partial = previous is not None and changes is not None and not changes.full and previous.context == context
    reusable = previous.fragments if partial and previous is not None else {}
    rendered = changes.services if partial and changes is not None else frozenset(state.services)
    fragments: dict[str, Fragment] = {}
    for key in sorted(state.services):
        old = reusable.get(key)
        fragments[key] = old if old is not None and key not in rendered else \
            render_fragment(state.services[key], context)

    static = _static_head(state, options)
    for frag in fragments.values():
        for chain_key, rules in frag.dispatch.items():
            static[chain_key].extend(rules)
    static[(NAT, n.KUBE_SERVICES)].extend(_nodeports_tail(state, options))
    return Ruleset(
        static={key: tuple(rules) for key, rules in static.items()},
        fragments=fragments,
        jumps=jump_rules(options),
        options=options,
        context=context,
        base=previous.token if partial and previous is not None else None,
        changed=rendered,
    )
