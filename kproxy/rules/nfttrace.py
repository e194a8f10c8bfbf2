"""A packet tracer over an nftables table as `nft list table` prints it (pure): the path of a
new connection's first packet through kproxy's table, every random branch followed with its
probability (numgen random mod N offset FIRST over the chain's slots of the shared data map
of endpoints, or of the shared verdict map of endpoint chains with session affinity: each slot
is 1/N).

Order, as the hooks run: filter prerouting/output (priority -110, before DNAT) -> firewall-check;
nat (dstnat) -> services; then, for a packet no DNAT took, the no-endpoint checks
(service-endpoints-check, nodeport-endpoints-check) and then, still addressed as it came,
cluster-ips-check (a ClusterIP on a port its Service lacks, or an unallocated address of the
Service CIDR); for a DNATed packet, nat-postrouting's hairpin check (an endpoint reaching
itself is masqueraded). It understands exactly the statements the nftables renderer writes,
maglev's jhash included (nftables/jhash.py computes the kernel's hash: with a source port the
trace names the one endpoint, without one each endpoint's share of the slots); anything else
raises TraceError, so a renderer change the tracer does not model cannot pass silently. A chain
the table lacks (an agent whose syncs have not completed, or a table someone edited) is traced
as an empty chain and listed in `missing`, so the report can say so instead of failing.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable

from kproxy.agent.families import split_host_port
from kproxy.nftables.jhash import client_slot

from .nftables import _COUNTER, PICK, NftTable, _endpoint_of

MARK_MASQ = "mark-for-masquerade"
ADDRESS_FAMILIES = ("ip", "ip6")  # an address match's first word in table ip / ip6 kproxy


class TraceError(ValueError):
    pass


@dataclass(frozen=True)
class Pkt:
    src: str
    dst: str
    dport: int
    proto: str
    sport: int = 0  # 0: any source port (maglev then gives each endpoint its share of slots)
    iif: str = ""  # the interface it came in on ("": generated on the node, or not known)


Path = tuple[tuple[str, int], ...]  # (chain, rule index)
Result = list[tuple[float, bool, str | None, Path]]  # (probability, masquerade, outcome or None, path)
Outcomes = list[tuple[float, bool, str, Path]]  # a packet's fates: every path ends in an outcome


def _in(addr: str, spec: str) -> bool:
    return ipaddress.ip_address(addr) in ipaddress.ip_network(spec, strict=False)


def _merged(results: Result) -> Result:
    """Results with the same outcome, masquerade and path added up (many slots, one endpoint)."""
    out: dict[tuple, float] = {}
    for p, masq, outcome, path in results:
        out[(masq, outcome, path)] = out.get((masq, outcome, path), 0.0) + p
    return [(p, masq, outcome, path) for (masq, outcome, path), p in out.items()]


class NftTracer:
    def __init__(self, table: NftTable, local_addresses: Iterable[str] = ()) -> None:
        self.table = table
        self.local = set(local_addresses)
        self.missing: set[str] = set()  # chains jumped to (or hooks looked for) that the table lacks
        self.maps: dict[str, dict[str, str]] = {}
        self.members: dict[str, set[str]] = {}  # plain sets
        for name, (_, dynamic, elements) in table.sets.items():
            if dynamic:  # affinity sets: the traced new connection's client is in none of them
                continue
            m: dict[str, str] = {}
            members = set()
            for e in elements:
                e = _COUNTER.sub("", e)
                key, sep, verdict = e.rpartition(" : ")
                if sep:
                    m[self._key(key)] = verdict.strip()
                else:
                    members.add(self._key(e))
            self.maps[name] = m
            self.members[name] = members

    @staticmethod
    def _key(text: str) -> str:
        parts = [p.strip() for p in text.split(" . ")]
        return " . ".join(str(int(p, 16)) if p.startswith("0x") else p for p in parts)

    def _local(self, addr: str) -> bool:
        return addr in self.local or _in(addr, "127.0.0.0/8")

    def _fib_local(self, which: str, pkt: Pkt) -> bool:
        return self._local(pkt.src if which == "saddr" else pkt.dst)

    # ---------------------------------------------------------------- one chain

    def run(self, chain: str, pkt: Pkt, masq: bool, path: Path, depth: int = 0) -> Result:
        """Paths from the top of `chain`; outcome None: the chain returned (or ended)."""
        if depth > 16:
            raise TraceError(f"jump depth exceeded at {chain}")
        if chain not in self.table.chains:
            self.missing.add(chain)
            return [(1.0, masq, None, path)]
        return self._from(chain, 0, pkt, masq, path, depth)

    def _from(self, chain: str, start: int, pkt: Pkt, masq: bool, path: Path, depth: int) -> Result:
        rules = self.table.chains[chain]
        for i in range(start, len(rules)):
            words = rules[i].split()
            verdict = self._match(words, pkt)
            if verdict is None:
                continue
            here = path + ((chain, i),)
            return self._verdict(chain, i, verdict, pkt, masq, here, depth)
        return [(1.0, masq, None, path)]

    def _match(self, words: list[str], pkt: Pkt) -> list[str] | None:
        """The rule's action words when its matches hold for `pkt`, else None."""
        i = 0
        while i < len(words):
            w = words[i:]
            if (len(w) > 5 and w[0] in ADDRESS_FAMILIES and w[1:3] == ["saddr", "."] and w[3] == w[0]
                    and w[4] == "daddr" and w[5].startswith("@")):
                if f"{pkt.src} . {pkt.dst}" not in self.members.get(w[5][1:], ()):
                    return None
                i += 6
                continue
            if w[0] in ADDRESS_FAMILIES and len(w) > 2 and w[1] in ("saddr", "daddr"):
                addr = pkt.src if w[1] == "saddr" else pkt.dst
                if w[2] == ".":  # a concatenation: the vmap statement handles it
                    return words[i:]
                neg = w[2] == "!="
                value = w[3] if neg else w[2]
                if value.startswith("@"):
                    ok = addr in self.members.get(value[1:], ())
                else:
                    ok = _in(addr, value)
                if ok == neg:
                    return None
                i += 4 if neg else 3
            elif w[0] == "iifname":  # iifname [!=] "name" or "prefix*"
                neg = len(w) > 2 and w[1] == "!="
                name = (w[2] if neg else w[1]).strip('"')
                ok = pkt.iif.startswith(name[:-1]) if name.endswith("*") else pkt.iif == name
                if ok == neg:
                    return None
                i += 3 if neg else 2
            elif w[:2] == ["fib", "daddr"] or w[:2] == ["fib", "saddr"]:
                if w[2:4] != ["type", "local"]:
                    raise TraceError(f"tracer does not model {' '.join(words)}")
                if not self._fib_local(w[1], pkt):
                    return None
                i += 4
            elif w[:2] == ["meta", "l4proto"] and len(w) > 2 and w[2] != ".":
                if w[2] != pkt.proto:
                    return None
                i += 3
            elif w[:2] == ["ct", "state"]:
                if "new" not in w[2].split(","):
                    return None
                i += 3
            elif w[:2] == ["meta", "mark"]:  # only in the masquerading chain, which runs after routing
                raise TraceError(f"tracer does not model {' '.join(words)}")
            else:
                return words[i:]
        return []

    def _verdict(self, chain: str, index: int, action: list[str], pkt: Pkt, masq: bool, path: Path,
                 depth: int) -> Result:
        text = " ".join(action)
        if not action:
            return self._from(chain, index + 1, pkt, masq, path, depth)
        head = action[0]
        if head in ("goto", "jump"):
            target = action[1]
            if target == MARK_MASQ:
                return self._from(chain, index + 1, pkt, True, path + ((MARK_MASQ, 0),), depth)
            sub = self.run(target, pkt, masq, path, depth + 1)
            if head == "goto":
                return sub
            out: Result = []
            for p, marked, o, pa in sub:
                if o is not None:
                    out.append((p, marked, o, pa))
                else:
                    out += [(p * q, m2, o2, pa2)
                            for q, m2, o2, pa2 in self._from(chain, index + 1, pkt, marked, pa, depth)]
            return out
        if head == "return":
            return [(1.0, masq, None, path)]
        if head in ("drop", "reject", "accept"):
            return [(1.0, masq, head.upper(), path)]
        if head == "update":  # affinity bookkeeping, no verdict
            return self._from(chain, index + 1, pkt, masq, path, depth)
        if head == "dnat" and action[1] == "to":
            return [(1.0, masq, action[2], path)]
        m = PICK.match(text)
        if m:
            return self._pick(m, chain, index, pkt, masq, path, depth)
        m = re.match(r"^ip6? daddr \. meta l4proto \. th dport vmap @(\S+)$", text)
        if m:
            key = f"{pkt.dst} . {pkt.proto} . {pkt.dport}"
            return self._vmap(chain, index, m.group(1), key, pkt, masq, path, depth)
        m = re.match(r"^meta l4proto \. th dport vmap @(\S+)$", text)
        if m:
            return self._vmap(chain, index, m.group(1), f"{pkt.proto} . {pkt.dport}", pkt, masq, path, depth)
        raise TraceError(f"tracer does not model {text!r} in chain {chain}")

    def _pick(self, m: re.Match, chain: str, index: int, pkt: Pkt, masq: bool, path: Path, depth: int) -> Result:
        """A balancing chain's pick (kproxy.rules.nftables.PICK): numgen random gives each of
        the N slots 1/N; maglev's jhash of the client's address and port names one slot when
        the probe has a source port, else each slot is 1/N of the clients. A data map's slot is
        the endpoint, a verdict map's slot is followed. An empty slot is left out (its lookup
        fails and the packet goes on past the rule)."""
        n, first = int(m["n"]), int(m["first"] or 0)
        if m["hash"].startswith("jhash") and pkt.sport:
            slots, weight = [client_slot(pkt.src, pkt.sport, n, int(m["seed"], 0), first)], 1.0
        else:
            slots, weight = list(range(first, first + n)), 1.0 / n
        elements = self.maps.get(m["map"], {})
        out: Result = []
        for value in (elements.get(str(slot)) for slot in slots):
            if value is None:
                continue
            if m["dnat"]:  # a data map: "address . port"
                out.append((weight, masq, _endpoint_of(value), path))
            else:
                out += [(p * weight, mm, o, pa)
                        for p, mm, o, pa in self._apply(chain, index, value, pkt, masq, path, depth)]
        return _merged(out)

    def _vmap(self, chain: str, index: int, name: str, key: str, pkt: Pkt, masq: bool, path: Path,
              depth: int) -> Result:
        verdict = self.maps.get(name, {}).get(self._key(key))
        if verdict is None:  # no element: the rule does not match, the chain goes on
            return self._from(chain, index + 1, pkt, masq, path[:-1], depth)
        return self._apply(chain, index, verdict, pkt, masq, path, depth)

    def _apply(self, chain: str, index: int, verdict: str, pkt: Pkt, masq: bool, path: Path, depth: int) -> Result:
        return self._verdict(chain, index, verdict.split(), pkt, masq, path, depth)

    # ---------------------------------------------------------------- the hooks

    def paths(self, pkt: Pkt) -> Outcomes:
        for _, _, outcome, path in self.run("firewall-check", pkt, False, ()):
            if outcome in ("DROP", "REJECT"):
                return [(1.0, False, outcome, path)]
        out: Outcomes = []
        for p, masq, outcome, path in self.run("services", pkt, False, ()):
            if outcome is None:
                verdict, fpath = self._endpoint_checks(pkt)
                out.append((p, masq, verdict or "ACCEPT", path + fpath))
            elif ":" in outcome and not masq:
                ip, port = split_host_port(outcome)
                hairpin, hpath = self._hairpin(Pkt(pkt.src, ip, int(port), pkt.proto, iif=pkt.iif))
                out.append((p, hairpin, outcome, path + hpath))
            else:
                out.append((p, masq, outcome, path))
        return out

    def _hairpin(self, pkt: Pkt) -> tuple[bool, Path]:
        """Whether nat-postrouting marks the DNATed packet for masquerade (before the
        masquerading chain, which acts on the mark)."""
        for i, rule in enumerate(self.table.chains.get("nat-postrouting", ())):
            words = rule.split()
            action = self._match(words, pkt)
            if action == ["jump", MARK_MASQ]:
                return True, (("nat-postrouting", i), (MARK_MASQ, 0))
        return False, ()

    def _endpoint_checks(self, pkt: Pkt) -> tuple[str | None, Path]:
        for chain in ("service-endpoints-check", "nodeport-endpoints-check", "cluster-ips-check"):
            if chain not in self.table.chains:
                continue
            for _, _, outcome, path in self.run(chain, pkt, False, ()):
                if outcome in ("DROP", "REJECT"):
                    return outcome, path
        return None, ()
