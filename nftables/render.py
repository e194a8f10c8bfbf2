"""Pure rendering of a ProxyState into the nftables Ruleset (kube-proxy's nftables model).

Static chains hook into the kernel and dispatch through maps keyed on the packet, so the cost
per packet does not grow with the number of Services:

  nat-prerouting / nat-output (nat, priority -100) -> services:
      ip daddr . meta l4proto . th dport vmap @service-ips      (cluster, external, LB IPs)
      fib daddr type local ... jump nodeports -> meta l4proto . th dport vmap @service-nodeports
  nat-postrouting (nat, priority 100) -> masquerading (SNAT of packets marked by mark-for-masquerade)
  filter-* (filter, priority -110): new connections to a Service without (local) endpoints
      are rejected / dropped through @no-endpoint-services and @no-endpoint-nodeports;
      LoadBalancer source ranges through @firewall-ips -> firewall-<svc>.
  cluster-ips-check (from filter-forward and filter-output-post-dnat, after DNAT, new
      connections): a packet still addressed to a ClusterIP took no Service port: rejected
      when the address is in @cluster-ips (a port the Service lacks), dropped when it is
      elsewhere in the Service CIDR(s) (an unallocated ClusterIP), as upstream's nftables mode.

Per ServicePort ("<hash>-<ns>/<name>/<proto>/<port name>" = base):
  service-<base>   masquerade off-cluster sources, then
                   dnat ip to numgen random mod N offset FIRST map @endpoints-K  (slot -> address
                   . port; jhash of the client's address and port with endpointSelection maglev;
                   the chain's slots FIRST.. are its range in shared map K, nftables/slots.py)
  local-<base>     the same over local endpoints (traffic policy Local)
  external-<base>  NodePort / external / LB entry (masquerade, Local short-cuts)
  firewall-<base>  LB source ranges
  With sessionAffinity ClientIP the balancing chains instead look the client up in each
  endpoint's affinity set, then pick through the shared verdict map (numgen ... vmap
  @endpoint-chains):
  endpoint-<base>__<ip>/<port>  affinity update, DNAT
  set affinity-<endpoint base>  dynamic, timeout = session affinity timeout
Hairpin (a pod reaching itself through its Service) is masqueraded in nat-postrouting through
the shared set @hairpin ("E . E" for every endpoint address E).

Why data maps: an endpoint change is then element changes in a data map and a plain set, which
the kernel commits without re-validating the table's chain graph; any new jump, goto or DNAT
rule makes it walk every chain reachable from the base chains (measured: 6-8 ms at 10k Services
against under 1 ms for element changes; bench/nftables.py prints both).

IPv6: the state's IPv6 view (kproxy.agent.families) renders the same layout for table `ip6
kproxy`: addresses as ipv6_addr, `ip6 saddr/daddr` matches, ICMPv6 port unreachable rejects,
and no loopback NodePorts (the context's last field is the NftFamily, nftables/family.py).

Guarantee: deterministic; the fragments of ServicePorts that `changes` does not name are the
previous render's (same context), reused as the same objects.
"""
from __future__ import annotations

import hashlib
import ipaddress
from functools import lru_cache
from types import MappingProxyType

from kproxy.agent.addresses import LocalTraffic, local_traffic, nodeport_ips
from kproxy.agent.families import of_family
from kproxy.agent.policy import categorize
from kproxy.agent.state import Changes, Endpoint, ProxyState, ServicePort

from . import expr as x
from . import wire as w
from .family import BY_VERSION, IP, NftFamily
from .gcpause import gc_paused
from .model import Chain, Fragment, Hook, Ruleset, SetSpec, Verdict
from .slots import SlotAllocator, SlotState, fits
from .slots import offset as slot_offset
from .slots import shard as slot_shard
from .slots import shards as slot_shards

SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
FIREWALL_IPS = "firewall-ips"
MARK_MASQ = "mark-for-masquerade"
MASQUERADING = "masquerading"
SERVICES = "services"
NODEPORTS = "nodeports"
REJECT_CHAIN = "reject-chain"
FIREWALL_CHECK = "firewall-check"
SERVICE_ENDPOINTS_CHECK = "service-endpoints-check"
NODEPORT_ENDPOINTS_CHECK = "nodeport-endpoints-check"

CLUSTER_IPS_CHECK = "cluster-ips-check"
FILTER_OUTPUT_POST_DNAT = "filter-output-post-dnat"

HAIRPIN = "hairpin"
CLUSTER_IPS = "cluster-ips"
ENDPOINTS = "endpoints"
ENDPOINT_CHAINS = "endpoint-chains"
ADDR_PROTO_PORT = ("ipv4_addr", "inet_proto", "inet_service")
PROTO_PORT = ("inet_proto", "inet_service")
ENDPOINT_VALUE = ("ipv4_addr", "inet_service")


def family_shared_maps(fam: NftFamily) -> dict[str, SetSpec]:
    """The static shared maps of a table of family `fam` (their address fields are its)."""
    addr = fam.addr_type
    addr_proto_port = (addr, "inet_proto", "inet_service")
    # Every element of the dispatch maps counts the new connections that took it (`kproxy rules`).
    return {
        SERVICE_IPS: SetSpec(SERVICE_IPS, addr_proto_port, verdict_map=True, counter=True),
        SERVICE_NODEPORTS: SetSpec(SERVICE_NODEPORTS, PROTO_PORT, verdict_map=True, counter=True),
        NO_ENDPOINT_SERVICES: SetSpec(NO_ENDPOINT_SERVICES, addr_proto_port, verdict_map=True, counter=True),
        NO_ENDPOINT_NODEPORTS: SetSpec(NO_ENDPOINT_NODEPORTS, PROTO_PORT, verdict_map=True, counter=True),
        FIREWALL_IPS: SetSpec(FIREWALL_IPS, addr_proto_port, verdict_map=True, counter=True),
        HAIRPIN: SetSpec(HAIRPIN, (addr, addr)),
        CLUSTER_IPS: SetSpec(CLUSTER_IPS, (addr,)),  # every Service port adds its ClusterIP
        # the balancing chains with session affinity: slot -> endpoint chain (nftables/slots.py)
        ENDPOINT_CHAINS: SetSpec(ENDPOINT_CHAINS, ("mark",), verdict_map=True, counter=True),
    }


SHARED_MAPS = family_shared_maps(IP)
# Shared sets whose elements several Service ports may hold (a pod behind two Services, the
# ClusterIP of a multi-port Service): the kernel keeps one element while any Service port holds
# it (plan.ElementOwners counts them).
REFCOUNTED = frozenset({HAIRPIN, CLUSTER_IPS})


def endpoint_map(first_block: int) -> str:
    """The shared map of endpoints (slot -> address . port) of a range starting at this block."""
    return f"{ENDPOINTS}-{slot_shard(first_block)}"


def shared_maps(slots: SlotState, fam: NftFamily = IP) -> tuple[SetSpec, ...]:
    """The static shared maps and one endpoint map per shard the allocated slots reach."""
    return _shared_maps(slot_shards(slots), fam)


@lru_cache(maxsize=64)
def _shared_maps(shards: int, fam: NftFamily) -> tuple[SetSpec, ...]:
    return tuple(family_shared_maps(fam).values()) + tuple(
        SetSpec(f"{ENDPOINTS}-{k}", ("mark",), data=(fam.addr_type, "inet_service"), counter=True)
        for k in range(shards))


FILTER_PRIORITY = -110  # before DNAT in prerouting/output, so checks see the Service address
NAT_DST_PRIORITY = -100
POST_DNAT_PRIORITY = -90  # output after DNAT: the ClusterIP check sees the rewritten address
NAT_SRC_PRIORITY = 100
MAGLEV_TABLE_SIZE = 251  # prime; per-service map slots in maglev mode
MAGLEV_SEED = 0x6b707278  # "kprx": jhash seed, the same on every node
ENDPOINT_SELECTIONS = ("random", "maglev")


_B32 = "abcdefghijklmnopqrstuvwxyz234567"


def chain_base(sp: ServicePort) -> str:
    """kube-proxy's servicePortChainNameBase: hash + readable name (stable per ServicePort)."""
    proto = sp.protocol.lower()
    name = f"{sp.namespace}/{sp.name}/{proto}/{sp.port_name}"
    # the first 8 base32 characters of the digest = its first 40 bits, 5 at a time (the
    # standard library's b32encode is pure Python and was a tenth of a 10k-Service render)
    bits = int.from_bytes(hashlib.sha256(name.encode()).digest()[:5], "big")
    return "".join(_B32[(bits >> shift) & 31] for shift in range(35, -1, -5)) + "-" + name


def endpoint_base(base: str, ep: Endpoint) -> str:
    return f"{base}__{ep.ip}/{ep.port}"


def render_context(state: ProxyState, endpoint_selection: str) -> tuple:
    return (local_traffic(state), state.masquerade_all, state.masquerade_bit,
            of_family(state.node_ips, state.ip_family), endpoint_selection, state.node_name, state.node_zone,
            BY_VERSION[state.ip_family])


def local_match(local: LocalTraffic, negate: bool = False, fam: NftFamily = IP) -> x.Stmt:
    """The statement matching (with negate: not matching) traffic from this node's pods."""
    if local.cidr is not None:
        return x.ip_addr("saddr", local.cidr, negate, fam)
    return x.iifname(local.interface or "", local.prefix, negate)


def _balance_slots(endpoints: tuple[Endpoint, ...], selection: str) -> list[int]:
    """Which endpoint (index) each map slot sends to: one slot per endpoint for random, the
    Maglev table for maglev."""
    if selection != "maglev":
        return list(range(len(endpoints)))
    from kproxy import fastpath

    names = [f"{e.ip}:{e.port}".encode() for e in endpoints]
    return list(fastpath.maglev_table(names, [1] * len(names), MAGLEV_TABLE_SIZE,
                                      fastpath.OFFSET_KEY, fastpath.SKIP_KEY))


def render_fragment(service: ServicePort, context: tuple, slots: SlotAllocator | None = None,
                    old_blocks: tuple = ()) -> Fragment:
    """The chains, sets and map elements of one ServicePort. Its balancing chains keep their
    slot ranges from `old_blocks` (the fragment it replaces) while their endpoints fit, take
    new ones from `slots` otherwise, and give back what they no longer use."""
    slots = slots if slots is not None else SlotAllocator()
    previous_blocks = {chain: (first, count) for chain, first, count in old_blocks}
    blocks: list[tuple[str, int, int]] = []

    def place(chain_name: str, nslots: int) -> tuple[int, int]:
        """(first block, first slot) of the chain's range."""
        first, count = previous_blocks.pop(chain_name, (0, 0))
        if not count or not fits(count, nslots):
            if count:
                slots.give(first, count)
            first, count = slots.take(nslots)
        blocks.append((chain_name, first, count))
        return first, slot_offset(first)

    local, masquerade_all, _masq_bit, node_ips, selection, node_name, zone, fam = context
    sp = service
    base = chain_base(sp)
    proto = sp.protocol
    chains: list[Chain] = []
    sets: list[SetSpec] = []
    elements: dict[str, dict[tuple, Verdict | None]] = {}

    def element(map_name: str, key: tuple, verdict: Verdict) -> None:
        elements.setdefault(map_name, {})[key] = verdict

    externally_accessible = sp.has_external
    cluster_eps, local_eps, reachable, has_endpoints, _, _ = categorize(sp, node_name, zone)

    svc_chain, local_chain = f"service-{base}", f"local-{base}"
    ext_chain, fw_chain = f"external-{base}", f"firewall-{base}"
    internal_chain, has_internal = svc_chain, has_endpoints
    if sp.internal_policy_local:
        internal_chain, has_internal = local_chain, bool(local_eps)
    external_policy_chain, has_external = svc_chain, has_endpoints
    if sp.external_policy_local:
        external_policy_chain, has_external = local_chain, bool(local_eps)
    lb_ips = of_family(sp.load_balancer_ips, fam.version)
    source_ranges = of_family(sp.load_balancer_source_ranges, fam.version)
    uses_fw = has_endpoints and bool(lb_ips) and bool(source_ranges)
    no_ep: Verdict = ("goto", REJECT_CHAIN) if not has_endpoints else ("drop", None)
    cluster_ips = of_family(sp.cluster_ips, fam.version)

    # Dispatch elements.
    if cluster_ips:
        elements[CLUSTER_IPS] = {(ip,): None for ip in cluster_ips}
    for ip in cluster_ips:
        if has_internal:
            element(SERVICE_IPS, (ip, proto, sp.port), ("goto", internal_chain))
        else:
            element(NO_ENDPOINT_SERVICES, (ip, proto, sp.port), no_ep)
    for ip in of_family(sp.external_ips, fam.version) + lb_ips:
        if has_endpoints:
            element(SERVICE_IPS, (ip, proto, sp.port), ("goto", ext_chain))
        if not has_external:
            element(NO_ENDPOINT_SERVICES, (ip, proto, sp.port), no_ep)
    for ip in lb_ips:
        if uses_fw:
            element(FIREWALL_IPS, (ip, proto, sp.port), ("goto", fw_chain))
    if sp.node_port:
        if has_endpoints:
            element(SERVICE_NODEPORTS, (proto, sp.node_port), ("goto", ext_chain))
        if not has_external:
            element(NO_ENDPOINT_NODEPORTS, (proto, sp.node_port), no_ep)

    # External entry chain.
    if has_endpoints and externally_accessible:
        rules = []
        if not sp.external_policy_local:
            rules.append(x.rule(x.verdict("jump", MARK_MASQ)))
        else:
            if local:
                rules.append(x.rule(local_match(local, fam=fam), x.verdict("goto", svc_chain)))
            rules.append(x.rule(x.fib_local("saddr"), x.verdict("jump", MARK_MASQ)))
            rules.append(x.rule(x.fib_local("saddr"), x.verdict("goto", svc_chain)))
        if has_external:
            rules.append(x.rule(x.verdict("goto", external_policy_chain)))
        chains.append(Chain(ext_chain, tuple(rules)))

    # LoadBalancer source ranges (filter, before DNAT): allowed sources return, the rest drop.
    if uses_fw:
        rules = [x.rule(x.ip_addr("saddr", cidr, fam=fam), x.verdict("return")) for cidr in source_ranges]
        allow_node = any(ipaddress.ip_address(ip) in ipaddress.ip_network(c, strict=False)
                         for c in source_ranges for ip in node_ips)
        if allow_node:  # the node reaching its own LB VIP arrives with the VIP as source
            rules += [x.rule(x.ip_addr("saddr", ip, fam=fam), x.verdict("return")) for ip in lb_ips]
        rules.append(x.rule(x.verdict("drop")))
        chains.append(Chain(fw_chain, tuple(rules)))

    # Balancing chains and their endpoint maps.
    affinity = sp.session_affinity_timeout
    if affinity is not None:  # per-endpoint chains and affinity sets: only with session affinity
        ep_chain = {e: f"endpoint-{endpoint_base(base, e)}" for e in reachable}
        ep_affinity = {e: f"affinity-{endpoint_base(base, e)}" for e in reachable}

    def balance(chain_name: str, eps: tuple[Endpoint, ...], masquerade_rules: list) -> None:
        rules = list(masquerade_rules)
        picks = _balance_slots(eps, selection)
        block, first = place(chain_name, len(picks))
        if affinity is None:  # endpoints as data: slot -> address . port
            emap = endpoint_map(block)
            if selection == "maglev":
                rules.append(x.rule(x.dnat_jhash_map(len(picks), MAGLEV_SEED, emap, proto, first, fam)))
            else:
                rules.append(x.rule(x.dnat_numgen_map(len(picks), emap, proto, first, fam)))
            addresses = [(e.ip, e.port) for e in eps]
            elements.setdefault(emap, {}).update(((first + slot,), addresses[index])
                                                 for slot, index in enumerate(picks))
        else:  # affinity: a known client goes to its endpoint's chain, a new one is balanced
            rules += [x.rule(x.in_set(ep_affinity[e], fam=fam), x.verdict("goto", ep_chain[e])) for e in eps]
            if selection == "maglev":
                rules.append(x.rule(x.jhash_vmap(len(picks), MAGLEV_SEED, ENDPOINT_CHAINS, first, fam)))
            else:
                rules.append(x.rule(x.numgen_vmap(len(picks), ENDPOINT_CHAINS, first)))
            for slot, index in enumerate(picks):
                element(ENDPOINT_CHAINS, (first + slot,), ("goto", ep_chain[eps[index]]))
        chains.append(Chain(chain_name, tuple(rules)))

    masq_rules = []
    if has_internal:
        for ip in cluster_ips:
            if masquerade_all:
                masq_rules.append(x.rule(x.ip_addr("daddr", ip, fam=fam), x.verdict("jump", MARK_MASQ)))
            elif local:
                masq_rules.append(x.rule(x.ip_addr("daddr", ip, fam=fam), local_match(local, True, fam),
                                         x.verdict("jump", MARK_MASQ)))
    if cluster_eps:
        balance(svc_chain, cluster_eps, masq_rules if internal_chain == svc_chain else [])
    if local_eps:
        balance(local_chain, local_eps, masq_rules if internal_chain == local_chain else [])

    elements.setdefault(HAIRPIN, {}).update(((e.ip, e.ip), None) for e in reachable)
    if affinity is not None:
        for e in reachable:
            sets.append(SetSpec(ep_affinity[e], (fam.addr_type,), timeout=affinity))
            chains.append(Chain(ep_chain[e], (x.rule(x.update_saddr(ep_affinity[e], affinity, fam)),
                                              x.rule(x.dnat(e.ip, e.port, proto, fam)))))

    for first, count in previous_blocks.values():  # chains it no longer has
        slots.give(first, count)
    return Fragment(service=service, chains=tuple(chains), sets=tuple(sets),
                    elements=MappingProxyType({k: MappingProxyType(v) for k, v in elements.items()}),
                    context=context, blocks=tuple(blocks))


def cluster_ips_check(service_cidrs: tuple[str, ...], fam: NftFamily = IP) -> tuple:
    """The rules of cluster-ips-check: a port the ClusterIP's Service lacks is rejected, an
    unallocated address of the family's Service CIDRs dropped."""
    return (x.rule(x.in_set(CLUSTER_IPS, "daddr", fam), x.reject(fam)),
            *(x.rule(x.ip_addr("daddr", cidr, fam=fam), x.verdict("drop"))
              for cidr in of_family(service_cidrs, fam.version)))


def static_chains(state: ProxyState) -> list[Chain]:
    mark = 1 << state.masquerade_bit
    new = x.ct_state_new()
    fam = BY_VERSION[state.ip_family]
    np_ips = nodeport_ips(state)
    if np_ips is None:
        to_nodeports = [x.rule(x.fib_local("daddr"), x.ip_addr("daddr", fam.loopback, negate=True, fam=fam),
                               x.verdict("jump", NODEPORTS))]
        nodeport_check = [x.rule(x.fib_local("daddr"), x.vmap_proto_port(NO_ENDPOINT_NODEPORTS))]
    else:
        to_nodeports = [x.rule(x.ip_addr("daddr", ip, fam=fam), x.verdict("jump", NODEPORTS)) for ip in np_ips]
        nodeport_check = [x.rule(x.ip_addr("daddr", ip, fam=fam), x.vmap_proto_port(NO_ENDPOINT_NODEPORTS))
                          for ip in np_ips]
    return [
        Chain("filter-prerouting", (x.rule(new, x.verdict("jump", FIREWALL_CHECK)),),
              Hook("filter", w.HOOK_PREROUTING, FILTER_PRIORITY)),
        Chain("filter-input", (x.rule(new, x.verdict("jump", NODEPORT_ENDPOINTS_CHECK)),
                               x.rule(new, x.verdict("jump", SERVICE_ENDPOINTS_CHECK))),
              Hook("filter", w.HOOK_INPUT, FILTER_PRIORITY)),
        Chain("filter-forward", (x.rule(new, x.verdict("jump", SERVICE_ENDPOINTS_CHECK)),
                                 x.rule(new, x.verdict("jump", CLUSTER_IPS_CHECK))),
              Hook("filter", w.HOOK_FORWARD, FILTER_PRIORITY)),
        Chain("filter-output", (x.rule(new, x.verdict("jump", SERVICE_ENDPOINTS_CHECK)),
                                x.rule(new, x.verdict("jump", FIREWALL_CHECK))),
              Hook("filter", w.HOOK_OUTPUT, FILTER_PRIORITY)),
        Chain(FILTER_OUTPUT_POST_DNAT, (x.rule(new, x.verdict("jump", CLUSTER_IPS_CHECK)),),
              Hook("filter", w.HOOK_OUTPUT, POST_DNAT_PRIORITY)),
        Chain(CLUSTER_IPS_CHECK, cluster_ips_check(state.service_cidrs, fam)),
        Chain(FIREWALL_CHECK, (x.rule(x.vmap_addr_proto_port(FIREWALL_IPS, fam)),)),
        Chain(SERVICE_ENDPOINTS_CHECK, (x.rule(x.vmap_addr_proto_port(NO_ENDPOINT_SERVICES, fam)),)),
        Chain(NODEPORT_ENDPOINTS_CHECK, tuple(nodeport_check)),
        Chain(REJECT_CHAIN, (x.rule(x.reject(fam)),)),
        Chain(MARK_MASQ, (x.rule(x.mark_or(mark)),)),
        Chain(MASQUERADING, (x.rule(x.mark_clear(mark), x.verdict("return")),
                             x.rule(x.mark_xor(mark)),
                             x.rule(x.masquerade_fully_random()))),
        Chain(SERVICES, (x.rule(x.vmap_addr_proto_port(SERVICE_IPS, fam)), *to_nodeports)),
        Chain(NODEPORTS, (x.rule(x.vmap_proto_port(SERVICE_NODEPORTS)),)),
        Chain("nat-prerouting", (x.rule(x.verdict("jump", SERVICES)),),
              Hook("nat", w.HOOK_PREROUTING, NAT_DST_PRIORITY)),
        Chain("nat-output", (x.rule(x.verdict("jump", SERVICES)),),
              Hook("nat", w.HOOK_OUTPUT, NAT_DST_PRIORITY)),
        Chain("nat-postrouting", (x.rule(x.addr_pair_in_set(HAIRPIN, fam), x.verdict("jump", MARK_MASQ)),
                                  x.rule(x.verdict("jump", MASQUERADING))),
              Hook("nat", w.HOOK_POSTROUTING, NAT_SRC_PRIORITY)),
    ]


def render(state: ProxyState, previous: Ruleset | None = None, changes: Changes | None = None,
           endpoint_selection: str = "random") -> Ruleset:
    """The complete Ruleset for `state` (pure, deterministic). With `previous` (the Ruleset
    rendered from the state before) and `changes` (what changed since that state, as the
    tracker says), only the ServicePorts named in `changes` are rendered again; the other
    fragments are `previous`'s. Without them, or when `changes` is full or the render context
    differs, everything is rendered."""
    if endpoint_selection not in ENDPOINT_SELECTIONS:
        raise ValueError(f"endpoint selection {endpoint_selection!r}: want random or maglev")
    with gc_paused():
        return _render(state, previous, changes, endpoint_selection)


def _render(state: ProxyState, previous: Ruleset | None, changes: Changes | None,
            endpoint_selection: str) -> Ruleset:
    context = render_context(state, endpoint_selection)
    services = state.services
    if previous is None or changes is None or changes.full or previous.context != context:
        prior = None
        fragments: dict[str, Fragment] = {}  # a dict: fast .get
        slots = SlotAllocator()
        changed, gone = sorted(services), []
    else:  # at 10k Services, one changed Service renders in about 2 ms
        prior = previous
        fragments = previous.fragments.copy()  # .copy() of a MappingProxyType's dict: 20x dict()
        slots = SlotAllocator(previous.slots)
        changed = sorted(k for k in changes.services if k in services)
        gone = sorted(k for k in changes.services if k not in services and k in fragments)
    for key in gone:  # freed slots first, then the changed ones in a fixed order
        for _, first, count in fragments.pop(key).blocks:
            slots.give(first, count)
    for key in changed:
        old = fragments.get(key)
        fragments[key] = render_fragment(services[key], context, slots, old.blocks if old is not None else ())
    slot_state = slots.state()
    fam = context[-1]
    return Ruleset(static=tuple(static_chains(state)), shared_maps=shared_maps(slot_state, fam),
                   fragments=MappingProxyType(fragments), context=context, slots=slot_state,
                   base=prior.token if prior else None, changed=frozenset(changed + gone), family=fam)
