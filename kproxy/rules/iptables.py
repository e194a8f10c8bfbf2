"""The iptables adapter: iptables-save -c (or a rendered Ruleset) -> the shared model.

Which Service port owns what is read from the rules themselves, as the kernel holds them:
- a rule in a dispatch chain (nat KUBE-SERVICES / KUBE-NODEPORTS, filter KUBE-SERVICES /
  KUBE-EXTERNAL-SERVICES / KUBE-NODEPORTS / KUBE-PROXY-FIREWALL) whose comment starts with a
  ServicePortName ("ns/name" or "ns/name:port") belongs to that Service port, and so does every
  per-service chain (KUBE-SVC/SVL/EXT/FW/SEP-) reachable from it by jumps;
- endpoints are the DNAT destinations of its KUBE-SEP- chains (local: reachable from KUBE-SVL-);
- per-service chains nothing reaches are `unowned` (stale leftovers or hand-made), every other
  rule (static chains, jumps from built-in chains) is `shared`.

KernelObject keys are normalised rule texts: iptables-save reorders matches, adds /32 and
default options, and prints MARK --or-mark as --set-xmark; normalise_rule() undoes that, so a
rendered rule and the same rule read back from the kernel get the same key.
"""
from __future__ import annotations

import ipaddress
import re
from collections import deque
from typing import Any, Iterable, Mapping, Sequence

from kproxy.iptables import names as n
from kproxy.iptables.names import FILTER, NAT
from kproxy.iptables.trace import Packet, TraceError, Tracer

from .model import EndpointInfo, Frontend, KernelObject, NodeRules, ServiceRules
from .trace import Candidate, Probe, Step, TraceReport

MODE = "iptables"
DISPATCH = ((NAT, n.KUBE_SERVICES), (NAT, n.KUBE_NODEPORTS), (FILTER, n.KUBE_SERVICES),
            (FILTER, n.KUBE_EXTERNAL_SERVICES), (FILTER, n.KUBE_NODEPORTS), (FILTER, n.KUBE_PROXY_FIREWALL))
# (text, packets, bytes) of one rule
RawRule = tuple[str, int, int]

_DEFAULTS = {("--mask", "255.255.255.255"), ("--rsource",), ("--reject-with", "icmp-port-unreachable")}
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')


def split_rule(text: str) -> list[str]:
    """The words of a rule as iptables reads them (double-quoted words unquoted). What shlex
    would give for iptables-save text, several times faster (this runs once per rule)."""
    if '"' not in text:
        return text.split()
    return [q.replace('\\"', '"') if q is not None and w == "" else w for q, w in
            ((m.group(1), m.group(2) or "") for m in _TOKEN.finditer(text))]


# ------------------------------------------------------------------ rule text


def _units(words: list[str]) -> list[tuple[str, ...]]:
    """Options with their values ("!" kept in front of the option it negates)."""
    units: list[tuple[str, ...]] = []
    i, negate = 0, False
    while i < len(words):
        w = words[i]
        if w == "!":
            negate = True
            i += 1
            continue
        j = i + 1
        while j < len(words) and not words[j].startswith("-") and words[j] != "!":
            j += 1
        unit = (("!",) if negate else ()) + tuple(words[i:j])
        units.append(unit)
        negate = False
        i = j
    return units


def normalise_rule(text: str, words: list[str] | None = None) -> str:
    """A canonical form of one rule: equal meaning -> equal string (see module doc). `words`:
    split_rule(text), when the caller has it already."""
    words = split_rule(text) if words is None else words
    if "-j" in words:
        k = words.index("-j")
        match_words, target_words = words[:k], words[k + 1:]
    else:
        match_words, target_words = words, []
    matches = []
    for unit in _units(match_words):
        core = unit[1:] if unit[0] == "!" else unit
        if core[0] == "-m" or tuple(core) in _DEFAULTS:
            continue
        if core[0] in ("-s", "-d", "--source", "--destination") and len(core) == 2:
            core = (core[0], _strip32(core[1]))
        elif core[0] == "--probability":
            core = (core[0], f"{float(core[1]):.6f}")
        matches.append(" ".join((("!",) if unit[0] == "!" else ()) + tuple(core)))
    target = target_words[:1]
    args = []
    for unit in _units(target_words[1:]):
        if tuple(unit) in _DEFAULTS:
            continue
        if unit[0] == "--or-mark":
            unit = ("--set-xmark", f"{unit[1]}/{unit[1]}")
        elif unit[0] == "--xor-mark":
            unit = ("--set-xmark", f"{unit[1]}/0x0")
        args.append(" ".join(unit))
    return " ".join(sorted(matches)) + (" -j " + " ".join(target + args) if target else "")


def _option(words: list[str], *names: str) -> str:
    for i, w in enumerate(words[:-1]):
        if w in names:
            return words[i + 1]
    return ""


def _comment(words: list[str]) -> str:
    return _option(words, "--comment")


def _target(words: list[str]) -> str:
    return _option(words, "-j", "--jump", "-g", "--goto")


def service_port_name(comment: str) -> str:
    """The ServicePortName a dispatch rule's comment starts with ("" when none)."""
    first = comment.split(" ", 1)[0]
    return first if "/" in first and not first.startswith("/") else ""


def _key(spn: str) -> str:
    """ServicePortName ("ns/name" or "ns/name:port") -> ServicePort.key ("ns/name:port")."""
    return spn if ":" in spn else spn + ":"


def _strip32(ip: str) -> str:
    """An address without the host prefix iptables-save adds (/32; /128 for ip6tables-save)."""
    if ip.endswith("/32") and ":" not in ip:
        return ip[:-3]
    return ip[:-4] if ip.endswith("/128") and ":" in ip else ip


# ------------------------------------------------------------------ model building


class _Service:
    def __init__(self, key: str, protocol: str) -> None:
        self.key, self.protocol = key, protocol
        self.frontends: set[Frontend] = set()
        self.chains: set[tuple[str, str]] = set()
        self.objects: list[KernelObject] = []


def _obj(table: str, chain: str, rule: RawRule, entry: bool = False, words: list[str] | None = None) -> KernelObject:
    text, packets, nbytes = rule
    return KernelObject("rule", f"{table}/{chain}", text, packets, nbytes, normalise_rule(text, words), entry)


def _chain_obj(table: str, chain: str) -> KernelObject:
    return KernelObject("chain", table, chain, key=chain)


def _frontend(table: str, chain: str, words: list[str], comment: str, proto: str) -> Frontend | None:
    dst, dport = _strip32(_option(words, "-d", "--destination")), _option(words, "--dport")
    if not dport:
        return None
    port = int(dport)
    if table == FILTER and chain == n.KUBE_NODEPORTS:
        return Frontend("healthCheckNodePort", "", port, "TCP")
    if table == NAT and chain == n.KUBE_NODEPORTS or (not dst and _option(words, "--dst-type") == "LOCAL"):
        return Frontend("nodePort", "", port, proto)
    if " cluster IP" in comment or (table == FILTER and chain == n.KUBE_SERVICES):
        return Frontend("clusterIP", dst, port, proto)
    if " loadbalancer IP" in comment or chain == n.KUBE_PROXY_FIREWALL:
        return Frontend("loadBalancerIP", dst, port, proto)
    return Frontend("externalIP", dst, port, proto)


def build(chains: Mapping[tuple[str, str], Sequence[RawRule]], jumps: Iterable[tuple[str, str, RawRule]],
          node: str, detail: dict | None = None) -> NodeRules:
    """The model of one iptables ruleset (rendered or read back); see the module doc."""
    services: dict[str, _Service] = {}
    shared: list[KernelObject] = []
    owner: dict[tuple[str, str], str] = {}  # per-service chain -> ServicePort key
    split: dict[str, list[str]] = {}  # rule text -> words: every rule is split once

    def words_of(text: str) -> list[str]:
        words = split.get(text)
        if words is None:
            words = split[text] = split_rule(text)
        return words

    for table, chain, rule in jumps:
        shared.append(_obj(table, chain, rule))
    for table, chain in DISPATCH:
        for rule in chains.get((table, chain), ()):
            words = words_of(rule[0])
            spn = service_port_name(_comment(words))
            if not spn:
                shared.append(_obj(table, chain, rule, words=words))
                continue
            proto = (_option(words, "-p", "--protocol") or "tcp").upper()
            svc = services.setdefault(_key(spn), _Service(_key(spn), proto))
            # nat dispatch rules see each new connection once; filter ones only when they decide
            svc.objects.append(_obj(table, chain, rule, entry=True, words=words))
            front = _frontend(table, chain, words, _comment(words), proto)
            if front is not None:
                svc.frontends.add(front)
            target = _target(words)
            if n.is_service_chain(target):
                owner.setdefault((table, target), svc.key)
    # per-service chains: follow jumps from the dispatch rules (breadth first, stable order)
    queue = deque(sorted(owner))
    local_chains: set[tuple[str, str]] = set()
    while queue:
        table, chain = queue.popleft()
        svc = services[owner[(table, chain)]]
        svc.chains.add((table, chain))
        for rule in chains.get((table, chain), ()):
            target = _target(words_of(rule[0]))
            if n.is_service_chain(target) and (table, target) not in owner and (table, target) in chains:
                owner[(table, target)] = svc.key
                queue.append((table, target))
            if chain.startswith("KUBE-SVL-") and target.startswith("KUBE-SEP-"):
                local_chains.add((table, target))
    unowned: list[KernelObject] = []
    for (table, chain), rules in sorted(chains.items()):
        if (table, chain) in DISPATCH:
            continue
        key = owner.get((table, chain))
        if key is None and n.is_service_chain(chain):
            unowned.append(_chain_obj(table, chain))
            unowned.extend(_obj(table, chain, r, words=words_of(r[0])) for r in rules)
            continue
        objs = [_obj(table, chain, r, words=words_of(r[0])) for r in rules]
        if key is None:  # a static chain
            shared.append(_chain_obj(table, chain))
            shared.extend(objs)
        else:
            services[key].objects.append(_chain_obj(table, chain))
            services[key].objects.extend(objs)
    out = []
    for key in sorted(services):
        svc = services[key]
        endpoints = {}
        affinity = None
        for table, chain in sorted(svc.chains):
            if not chain.startswith("KUBE-SEP-"):
                if affinity is None:  # a ClientIP check: "-m recent ... --rcheck --seconds N"
                    affinity = next((int(s) for r in chains.get((table, chain), ())
                                     if (s := _option(words_of(r[0]), "--seconds")).isdigit()), None)
                continue
            for rule in chains.get((table, chain), ()):
                words = words_of(rule[0])
                if _target(words) == "DNAT":
                    addr = _option(words, "--to-destination")
                    local = True if (table, chain) in local_chains else None
                    endpoints[addr] = EndpointInfo(addr, local=local, packets=rule[1])
        ns, _, rest = key.partition("/")
        name, _, port_name = rest.partition(":")
        out.append(ServiceRules(ns, name, port_name, svc.protocol, tuple(sorted(svc.frontends)),
                                tuple(endpoints[a] for a in sorted(endpoints)), tuple(svc.objects), affinity))
    return NodeRules(MODE, node, tuple(out), tuple(shared), tuple(unowned), dict(detail or {}))


def kernel_chains(inspection: Any) -> dict[tuple[str, str], list[RawRule]]:
    """An Inspection's chains as raw rules with counters."""
    return {(t, c): [(r.text, r.packets, r.bytes) for r in rules]
            for t, chains in inspection.view.chains.items() for c, rules in chains.items()}


# ------------------------------------------------------------------ trace with the rule path


def _is_local(ip: str, local: Sequence[str]) -> bool:
    return ip in local or ipaddress.ip_address(ip) in ipaddress.ip_network("127.0.0.0/8")


def trace_chains(chains: Mapping[tuple[str, str], Sequence[str]], probe: Probe, local_addresses: Sequence[str],
                 model: NodeRules) -> TraceReport:
    """Traces `probe` through `chains` ((table, chain) -> rule texts); `model` supplies the
    Service port and frontend the path enters."""
    tracer = Tracer(chains, local_addresses)
    merged: dict[str, list] = {}
    for p, masq, outcome, path in tracer.paths(Packet(probe.src, probe.dst, probe.dport, probe.proto)):
        entry = merged.setdefault(outcome, [0.0, False, path, 0.0])
        entry[0] += p
        entry[1] = entry[1] or masq
        if p > entry[3]:  # show the most probable path to this outcome
            entry[2], entry[3] = path, p
    candidates = []
    service = ""
    for outcome, (p, masq, path, _) in merged.items():
        steps = tuple(Step(f"{t}/{c}", i, chains[(t, c)][i]) for t, c, i in path)
        candidates.append(Candidate(outcome, p, masq, steps))
        for step in steps:
            spn = service_port_name(_comment(split_rule(step.text)))
            if spn and not service and step.container.split("/", 1)[1] in (n.KUBE_SERVICES, n.KUBE_NODEPORTS,
                                                                           n.KUBE_EXTERNAL_SERVICES):
                service = _key(spn)
    candidates.sort(key=lambda c: (-c.probability, c.outcome))
    frontend = None
    svc = model.service(service) if service else None
    if svc is not None:
        for f in svc.frontends:
            if f.port == probe.dport and (f.ip == probe.dst or (not f.ip and f.kind == "nodePort"
                                                               and _is_local(probe.dst, local_addresses))):
                frontend = f
                break
    note = "" if service else "no Service rule matched: the packet passes kproxy's rules unchanged"
    return TraceReport(MODE, probe, service, frontend, tuple(candidates), note)


class IptablesAdapter:
    """kproxy.rules.adapter.ModeAdapter for mode "iptables"."""

    mode = MODE

    def from_inspection(self, inspection: Any, node: str) -> NodeRules:
        jumps = [(t, c, (r.text, r.packets, r.bytes)) for t, c, r in inspection.view.jumps]
        return build(kernel_chains(inspection), jumps, node, {"variant": inspection.variant})

    def from_ruleset(self, ruleset: Any, node: str) -> NodeRules:
        chains = {key: [(text, 0, 0) for text in rules] for key, rules in ruleset.chains()}
        jumps = [(j.table, j.chain, (j.restore_text(), 0, 0)) for j in ruleset.jumps]
        return build(chains, jumps, node)

    def trace(self, inspection: Any, probe: Probe, local_addresses: Sequence[str]) -> TraceReport:
        chains = {key: tuple(text for text, _, _ in rules) for key, rules in kernel_chains(inspection).items()}
        try:
            return trace_chains(chains, probe, local_addresses, self.from_inspection(inspection, ""))
        except TraceError as exc:
            raise ValueError(f"cannot trace the kernel's rules: {exc}") from None
