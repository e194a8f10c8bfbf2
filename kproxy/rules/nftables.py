"""The nftables adapter: `nft list table ip kproxy` (the kernel's own dump) -> the shared model.

The rendered Ruleset prints itself in the same syntax (Ruleset.text()), so desired and kernel
go through one parser and compare object by object.

Attribution: per-Service chains, maps and sets are named "<kind>-<hash>-<ns>/<name>/<proto>/<port
name>" (endpoint chains add "__<ip>/<port>"), so the name says which Service port owns them. An
element of a shared map (service-ips, service-nodeports, firewall-ips) belongs to the Service
port whose chain its verdict names; elements whose verdict names no Service (no-endpoint-*:
goto reject-chain / drop) are `shared`, as the kernel does not say whose they are. Objects of a
Service port no shared-map element reaches are `unowned` (stale or hand-made).

Endpoints: each balancing chain (service-<base>, local-<base>) picks among its slots of a shared
map, "numgen random mod N offset FIRST map @endpoints-K" (slot -> ip . port) or, with session
affinity, "... vmap @endpoint-chains" (slot -> goto endpoint-<base>__<ip>/<port>); a slot
belongs to the chain whose range holds it, local- chains name the node's own endpoints, and a
slot no chain picks from is unowned. An endpoint's weight is the number of slots its Service
port's cluster chain (else its local chain) gives it.

Allocation: which slot range and which shard map ("endpoints-K") a chain got depends on the
order the agent allocated them in, so a kernel synced incrementally and a from-scratch render
differ there while every packet meets the same endpoints. Keys leave it out: a slot element is
"<chain> [i] : <value>" (i counted from the chain's first slot, objects marked `allocated`), a
pick rule reads without its offset and shard, and the shard maps' declarations are allocated.

Counters: kproxy's maps carry a counter on every element (the kernel prints "counter packets N
bytes M" inside the element): the dispatch maps' elements count a Service port's new
connections, the balancing maps' elements the connections each endpoint was picked for. Rules
count only with a `counter` statement; where the kernel prints none they are 0.
Trace: nfttrace.NftTracer over the same parsed dump (maglev: the kernel's jhash of the client).
"""
from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from kproxy.agent.families import join_host_port

from .model import EndpointInfo, Frontend, KernelObject, NodeRules, ServiceRules
from .trace import Candidate, Probe, Step, TraceReport

MODE = "nftables"
TABLE = "kproxy"
SERVICE_PREFIXES = ("service-", "local-", "external-", "firewall-", "endpoint-", "affinity-")
ENTRY_MAPS = ("service-ips", "service-nodeports", "firewall-ips")
_COUNTER = re.compile(r"\s*counter packets (\d+) bytes (\d+)")
_ALLOCATION = re.compile(r" offset \d+|(?<=@endpoints)-\d+")  # a pick rule's slot range and shard
_AFFINITY = re.compile(r"^update @affinity-\S+ \{ ip6? saddr timeout (\S+) \}")
_DURATION = re.compile(r"(\d+)(ms|d|h|m|s)")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b")


@dataclass
class NftTable:
    """A parsed `nft list table` text: chains (name -> rule lines, hook line) and sets/maps
    (name -> kind, dynamic flag, element lines)."""

    chains: dict[str, list[str]] = field(default_factory=dict)
    hooks: dict[str, str] = field(default_factory=dict)
    sets: dict[str, tuple[str, bool, list[str]]] = field(default_factory=dict)


def parse_table(text: str) -> NftTable:
    """Parses the text form `nft list table` and Ruleset.text() print (pure)."""
    out = NftTable()
    block: list[str] | None = None
    header = ""
    depth = 0
    for raw in text.splitlines():
        line = raw.split(" # handle ")[0].strip()
        if not line:
            continue
        if block is None:
            m = re.match(r"^(chain|map|set) (\S+) \{$", line)
            if m:
                header, block, depth = line, [], 1
            continue
        depth += line.count("{") - line.count("}")
        if depth <= 0:
            kind, name = header.split()[:2]
            _store(out, kind, name, block)
            block = None
            continue
        block.append(line)
    return out


def _store(out: NftTable, kind: str, name: str, lines: list[str]) -> None:
    if kind == "chain":
        rules = []
        for line in lines:
            if line.startswith("type ") and " hook " in line:
                out.hooks[name] = line
            else:
                rules.append(line)
        out.chains[name] = rules
        return
    body = " ".join(lines)
    dynamic = "dynamic" in body or "timeout" in body
    elements: list[str] = []
    m = re.search(r"elements = \{(.*)\}", body)
    if m:
        elements = [e.strip() for e in m.group(1).split(",") if e.strip()]
    out.sets[name] = (kind, dynamic, elements)


def normalise(text: str) -> str:
    """Equal meaning -> equal string: whitespace collapsed, counters dropped, hex numbers as
    decimal (nft prints marks as 0x0000000N, the model as N)."""
    if "counter" in text:  # the substring tests spare 10k-Service tables ~200k regex passes
        text = _COUNTER.sub("", text)
    if "0x" in text:
        text = _HEX.sub(lambda m: str(int(m.group(0), 16)), text)
    return " ".join(text.split())


def _counters(text: str) -> tuple[int, int]:
    m = _COUNTER.search(text) if "counter" in text else None
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


@lru_cache(maxsize=1 << 16)  # the same chain names recur in every element that points at them
def owner_base(name: str) -> str:
    """"<hash>-<ns>/<name>/<proto>/<port>" of a per-Service object name ("" when not one)."""
    for prefix in SERVICE_PREFIXES:
        if name.startswith(prefix):
            base = name[len(prefix):].split("__", 1)[0]
            return base if base.count("/") == 3 and "-" in base else ""
    return ""


def service_of(base: str) -> tuple[str, str, str, str]:
    """(namespace, name, protocol, port name) of a chain base."""
    ns, name, proto, port = base.split("-", 1)[1].split("/")
    return ns, name, proto.upper(), port


def _target(element: str) -> str:
    verdict = element.rsplit(" : ", 1)[-1].split()
    return verdict[1] if len(verdict) == 2 and verdict[0] in ("goto", "jump") else ""


@dataclass
class _Service:
    base: str
    frontends: set = field(default_factory=set)
    objects: list = field(default_factory=list)
    endpoints: dict = field(default_factory=dict)  # "ip:port" -> connections picked for it
    local: set = field(default_factory=set)  # "ip:port" of the node's own endpoints
    slots: dict = field(default_factory=dict)  # (balancing chain, "ip:port") -> slots it holds
    affinity: int | None = None


def _endpoint_of(value: str) -> str:
    """"ip:port" of a balancing map element's value ("10.0.0.1 . 8080" or "goto endpoint-...__ip/port")."""
    words = value.split()
    if len(words) == 3 and words[1] == ".":
        return join_host_port(words[0], words[2])
    if len(words) == 2 and words[1].startswith("endpoint-") and "__" in words[1]:
        ip, _, port = words[1].rsplit("__", 1)[1].rpartition("/")
        return join_host_port(ip, port)
    return ""


# A balancing chain's pick among its slots: "[dnat ip to ](numgen random|jhash ip saddr . P sport)
# mod N [seed S] [offset FIRST] (map|vmap) @MAP" (re.match on a rule's action, re.search on a rule).
PICK = re.compile(r"(?P<dnat>dnat ip6? to )?(?P<hash>numgen random|jhash ip6? saddr \. (?:th|tcp|udp|sctp) sport)"
                  r" mod (?P<n>\d+)(?: seed (?P<seed>\S+))?(?: offset (?P<first>\d+))? v?map @(?P<map>\S+)$")


def slot_owners(table: NftTable) -> dict[tuple[str, int], tuple[str, int]]:
    """(map, slot) -> (the balancing chain whose `... mod N offset FIRST (v)map @MAP` rule picks
    among slots FIRST..FIRST+N-1 of that shared map, FIRST)."""
    out: dict[tuple[str, int], tuple[str, int]] = {}
    for name, rules in table.chains.items():
        if not name.startswith(("service-", "local-")):
            continue
        for rule in rules:
            m = PICK.search(_COUNTER.sub("", rule))
            if m:
                first = int(m["first"] or 0)
                for slot in range(first, first + int(m["n"])):
                    out[(m["map"], slot)] = (name, first)
    return out


def rule_key(chain: str, rule: str) -> str:
    """A rule's diff key: normalised, a balancing chain's pick without its slot range and shard."""
    key = normalise(rule)
    if chain.startswith(("service-", "local-")) and PICK.search(key):
        key = _ALLOCATION.sub("", key)
    return key


def nft_seconds(text: str) -> int:
    """Seconds of a duration as nft prints it ("1m", "3h", "1d2h", "90s")."""
    return int(sum(int(n) * _SECONDS[unit] for n, unit in _DURATION.findall(text)))


def _slot(element: str) -> int | None:
    key = _COUNTER.sub("", element).rsplit(" : ", 1)[0].strip()
    try:
        return int(key, 0)
    except ValueError:
        return None


def build(table: NftTable, node: str, detail: dict | None = None) -> NodeRules:
    """The model of one parsed table (see the module doc)."""
    services: dict[str, _Service] = {}
    shared: list[KernelObject] = []
    owned: dict[str, list[KernelObject]] = {}  # base -> objects in per-service containers
    orphans: list[KernelObject] = []  # shared-map slots no balancing chain picks from
    owners = slot_owners(table)

    def svc(base: str) -> _Service:
        return services.setdefault(base, _Service(base))

    for name, (kind, dynamic, elements) in sorted(table.sets.items()):
        base = owner_base(name)
        holder = owned.setdefault(base, []) if base else shared
        holder.append(KernelObject(kind, "nft", name, key=name, allocated=name.startswith("endpoints-")))
        if dynamic:
            continue  # filled by packets (session affinity), not by kproxy
        for element in elements:
            packets, nbytes = _counters(element)
            target = _target(element)
            target_base = owner_base(target)
            obj = KernelObject(f"{kind}-element", f"nft/{name}", _COUNTER.sub("", element), packets, nbytes,
                               normalise(element), entry=name in ENTRY_MAPS and bool(target_base))
            if name == "endpoint-chains" or name.startswith("endpoints-"):  # a balancing chain's slot
                slot = _slot(element)
                chain, first = owners.get((name, slot), ("", 0)) if slot is not None else ("", 0)
                value = _COUNTER.sub("", element).rsplit(" : ", 1)[-1]
                address = _endpoint_of(value)
                if slot is None or not chain or not address:
                    orphans.append(obj)
                    continue
                s = svc(owner_base(chain))
                s.endpoints[address] = s.endpoints.get(address, 0) + packets
                s.slots[(chain, address)] = s.slots.get((chain, address), 0) + 1
                if chain.startswith("local-"):
                    s.local.add(address)
                owned.setdefault(owner_base(chain), []).append(replace(  # the slot in one notation (nft: hex)
                    obj, text=f"{slot} : {value}", key=normalise(f"{chain} [{slot - first}] : {value}"),
                    allocated=True))
                continue
            if name in ENTRY_MAPS and target_base:
                s = svc(target_base)
                s.objects.append(obj)
                s.frontends.add(_frontend(name, element, target, service_of(target_base)[2]))
            else:
                holder.append(obj)
    for name, rules in sorted(table.chains.items()):
        base = owner_base(name)
        holder = owned.setdefault(base, []) if base else shared
        holder.append(KernelObject("chain", "nft", name, key=name))
        for rule in rules:
            packets, nbytes = _counters(rule)
            holder.append(KernelObject("rule", f"nft/{name}", _COUNTER.sub("", rule), packets, nbytes,
                                       rule_key(name, rule)))
            m = _AFFINITY.match(rule) if base and name.startswith("endpoint-") else None
            if m:
                svc(base).affinity = nft_seconds(m.group(1))
        if name.startswith("endpoint-") and base:
            ip, _, port = name.rsplit("__", 1)[1].rpartition("/")
            svc(base).endpoints.setdefault(join_host_port(ip, port), 0)
    unowned: list[KernelObject] = []
    out = []
    for base in sorted(services, key=lambda b: service_of(b)[:2] + (service_of(b)[3],)):
        s = services[base]
        if not s.frontends:  # nothing enters it: its objects are leftovers
            unowned.extend(owned.get(base, []))
            continue
        ns, name, proto, port = service_of(base)
        # an LB IP is in service-ips (-> external-) and, with source ranges, in firewall-ips
        lb = {(f.ip, f.port) for f in s.frontends if f.kind == "loadBalancerIP"}
        s.frontends = {f for f in s.frontends if not (f.kind == "externalIP" and (f.ip, f.port) in lb)}
        endpoints = tuple(EndpointInfo(addr, local=True if addr in s.local else None, packets=packets,
                                       weight=_weight(s, base, addr))
                          for addr, packets in sorted(s.endpoints.items()))
        out.append(ServiceRules(ns, name, port, proto, tuple(sorted(s.frontends)), endpoints,
                                tuple(s.objects + owned.get(base, [])), s.affinity))
    for base, objs in owned.items():
        if base not in services:
            unowned.extend(objs)
    unowned.extend(orphans)
    return NodeRules(MODE, node, tuple(out), tuple(shared), tuple(unowned), dict(detail or {}))


def _weight(s: _Service, base: str, address: str) -> int | None:
    """The slots the Service port's cluster chain gives the endpoint, else its local chain's."""
    for chain in (f"service-{base}", f"local-{base}"):
        if (chain, address) in s.slots:
            return s.slots[(chain, address)]
    return None


def _frontend(map_name: str, element: str, target: str, proto: str) -> Frontend:
    key = [p.strip() for p in _COUNTER.sub("", element).rsplit(" : ", 1)[0].split(" . ")]
    if map_name == "service-nodeports":
        return Frontend("nodePort", "", int(key[1]), proto)
    kind = "clusterIP" if target.startswith(("service-", "local-")) else (
        "loadBalancerIP" if target.startswith("firewall-") or map_name == "firewall-ips" else "externalIP")
    return Frontend(kind, key[0], int(key[2]), proto)


@dataclass(frozen=True)
class Dump:
    """What read() takes from the kernel: the table's text (empty when the table is absent)."""

    text: str


class NftablesAdapter:
    """kproxy.rules.adapter.ModeAdapter for mode "nftables"."""

    mode = MODE

    def read(self, backend: Any) -> Dump:
        from kproxy.agent.backend import ApplyError
        family = "ip6" if getattr(backend, "family", 4) == 6 else "ip"  # the backend's table
        res = backend.netns.command(["nft", "list", "table", family, TABLE], check=False)
        if res.returncode != 0:
            if "No such file or directory" in res.stderr:
                return Dump("")
            raise ApplyError(f"nft list table {family} {TABLE}: {res.stderr.strip()}")
        return Dump(res.stdout)

    def from_inspection(self, dump: Dump, node: str) -> NodeRules:
        return build(parse_table(dump.text), node)

    def from_ruleset(self, ruleset: Any, node: str) -> NodeRules:
        return build(parse_table(ruleset.text()), node)

    def trace(self, dump: Any, probe: Probe, local_addresses: Sequence[str]) -> TraceReport:
        from .nfttrace import NftTracer, Pkt
        table = parse_table(dump.text)
        model = build(table, "")
        tracer = NftTracer(table, local_addresses)
        merged: dict[str, list] = {}
        for p, masq, outcome, path in tracer.paths(Pkt(probe.src, probe.dst, probe.dport, probe.proto, probe.sport)):
            entry = merged.setdefault(outcome, [0.0, False, path, 0.0])
            entry[0] += p
            entry[1] = entry[1] or masq
            if p > entry[3]:
                entry[2], entry[3] = path, p
        candidates, service = [], ""
        for outcome, (p, masq, path, _) in merged.items():
            steps = tuple(Step(f"nft/{c}", i, table.chains[c][i]) for c, i in path)
            candidates.append(Candidate(outcome, p, masq, steps))
            for c, _ in path:
                base = owner_base(c)
                if base and not service:
                    ns, name, _, port = service_of(base)
                    service = f"{ns}/{name}:{port}"
        candidates.sort(key=lambda c: (-c.probability, c.outcome))
        frontend = None
        svc = model.service(service) if service else None
        local = set(local_addresses) | {"127.0.0.1"}
        for f in svc.frontends if svc is not None else ():
            if f.port == probe.dport and f.protocol.lower() == probe.proto and (
                    f.ip == probe.dst or (f.kind == "nodePort" and probe.dst in local)):
                frontend = f
        note = ""
        if not service:
            note = ("no Service rule matched: the packet passes kproxy's rules unchanged"
                    if [c.outcome for c in candidates] == ["ACCEPT"] else
                    "the no-endpoint maps decide this packet; nftables mode does not name their Service")
        if tracer.missing:
            lacks = (f"the table lacks chain(s) {', '.join(sorted(tracer.missing))} (rules not fully programmed); "
                     f"traced as if they were empty")
            note = f"{lacks}; {note}" if note else lacks
        return TraceReport(MODE, probe, service, frontend, tuple(candidates), note)
