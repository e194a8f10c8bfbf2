"""The `kproxy rules` adapter for ipvs mode: IpvsBackend.inspect() (or a rendered IpvsRuleset)
-> the shared model (kproxy.rules.model). Pure.

Which Service port a virtual server serves is read from the kernel itself: the backend keeps a
"<frontend kind> <ns/name:port>" comment per virtual server in the KUBE-IPVS-OWNERS ipset.
Virtual servers without such a comment are `unowned` (hand-made or stale). Endpoints are the
real servers with weight > 0 (with that weight); a weight-0 real server is draining (graceful
termination) and is listed as an object, not as an endpoint. Keys are the same text for a rendered and a read-back
object, so `kproxy rules diff` compares like with like. The kernel's IPVS counters are not read
(packets 0): the dump here carries connection counts, which go into the real server's text.

Registration: the ipvs ModeSpec in kproxy/modes.py names ("kproxy.ipvs.rules_adapter", "IpvsAdapter").
"""
from __future__ import annotations

import ipaddress
from typing import Any, Iterable, Sequence

from kproxy.rules.model import EndpointInfo, Frontend, KernelObject, NodeRules, ServiceRules
from kproxy.rules.trace import Candidate, Probe, Step, TraceReport

from . import nfrules
from .model import IP_VS_SVC_F_PERSISTENT, RealServer, VirtualServer

MODE = "ipvs"
CONTAINER = "ipvs"


def virtual_server_text(vs: VirtualServer) -> str:
    """As `ipvsadm -Ln` prints it (scheduler, persistence)."""
    text = f"{vs.protocol} {vs.address}:{vs.port} {vs.scheduler}"
    if vs.flags & IP_VS_SVC_F_PERSISTENT:
        text += f" persistent {vs.timeout}"
    return text


def _objects(vs: VirtualServer, reals: Iterable[tuple[RealServer, str]]) -> list[KernelObject]:
    head = virtual_server_text(vs)
    out = [KernelObject("virtual-server", CONTAINER, head, key=head, entry=True)]
    for real, extra in reals:
        key = f"-> {real.address}:{real.port} Masq {real.weight}"
        out.append(KernelObject("real-server", f"{vs.protocol} {vs.address}:{vs.port}", key + extra, key=key))
    return out


def source_allowed(src: str, allowed: Sequence[str]) -> bool:
    """Whether `src` is in one of the CIDRs or addresses a firewalled LB IP accepts."""
    try:
        address = ipaddress.ip_address(src)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(a, strict=False) for a in allowed)


def _split_key(key: str) -> tuple[str, str, str]:
    ns, _, rest = key.partition("/")
    name, _, port_name = rest.partition(":")
    return ns, name, port_name


def _build(items: Iterable[tuple[VirtualServer, list[tuple[RealServer, str]], tuple[str, str] | None]],
           node: str) -> NodeRules:
    by_key: dict[str, dict] = {}
    unowned: list[KernelObject] = []
    for vs, reals, owner in sorted(items, key=lambda i: i[0].key):
        objects = _objects(vs, reals)
        if owner is None:
            unowned.extend(objects)
            continue
        kind, sp_key = owner
        group = by_key.setdefault(sp_key, {"protocol": vs.protocol, "frontends": set(), "endpoints": {},
                                           "objects": [], "affinity": None})
        group["frontends"].add(Frontend(kind, vs.address, vs.port, vs.protocol))
        group["endpoints"].update((f"{r.address}:{r.port}", r.weight) for r, _ in reals if r.weight > 0)
        group["objects"].extend(objects)
        if vs.flags & IP_VS_SVC_F_PERSISTENT:
            group["affinity"] = vs.timeout
    services = tuple(
        ServiceRules(*_split_key(key), g["protocol"], tuple(sorted(g["frontends"])),
                     tuple(EndpointInfo(a, weight=w) for a, w in sorted(g["endpoints"].items())), tuple(g["objects"]),
                     g["affinity"])
        for key, g in sorted(by_key.items()))
    return NodeRules(MODE, node, services, (), tuple(unowned), detail={"device": "kube-ipvs0"})


class IpvsAdapter:
    mode = MODE

    def from_inspection(self, inspection: Any, node: str) -> NodeRules:
        items = []
        for ks in inspection.services:
            reals = [(d.server, f" ActiveConn {d.active} InActConn {d.inactive}") for d in ks.dests]
            items.append((ks.server, reals, inspection.owners.get(ks.server.key)))
        return _build(items, node)

    def from_ruleset(self, ruleset: Any, node: str) -> NodeRules:
        items = [(e.server, [(r, "") for r in e.reals], (e.kind, e.owner)) for e in ruleset.services.values()]
        return _build(items, node)

    def trace(self, inspection: Any, probe: Probe, local_addresses: Sequence[str]) -> TraceReport:
        """The virtual server the packet's destination hits and its real servers with the share
        of new connections each gets (weight / total weight; exact for rr/wrr, the long-run
        share for the other schedulers). No virtual server: ACCEPT (IPVS lets it pass). A
        firewalled LB IP (loadBalancerSourceRanges) drops a source it does not accept."""
        proto = probe.proto.upper()
        ks = next((k for k in inspection.services
                   if (k.server.address, k.server.port, k.server.protocol) == (probe.dst, probe.dport, proto)), None)
        if ks is None:
            return TraceReport(MODE, probe, "", None, (Candidate("ACCEPT", 1.0, False),),
                               note="no IPVS virtual server for this destination")
        kind, sp_key = inspection.owners.get(ks.server.key, ("clusterIP", ""))
        frontend = Frontend(kind, ks.server.address, ks.server.port, proto)
        head = Step(CONTAINER, 0, virtual_server_text(ks.server))
        allowed = getattr(inspection, "allowed_sources", {}).get(ks.server.key)
        if allowed is not None and not source_allowed(probe.src, allowed):
            fw = Step(nfrules.FILTER_SOURCE_RANGES, 0, f"-j DROP (accepts {', '.join(allowed)})")
            return TraceReport(MODE, probe, sp_key, frontend, (Candidate("DROP", 1.0, False, (fw,)),),
                               note="source outside loadBalancerSourceRanges: filter KUBE-IPVS-SOURCE-RANGES drops")
        live = [d.server for d in ks.dests if d.server.weight > 0]
        if not live:
            if ks.server.key in getattr(inspection, "dropped", ()):
                verdict, why = "DROP", "its Local policy leaves no endpoint on this node: filter KUBE-IPVS-FILTER drops"
            else:
                verdict, why = "REJECT", "filter KUBE-IPVS-FILTER rejects"
            return TraceReport(MODE, probe, sp_key, frontend, (Candidate(verdict, 1.0, False, (head,)),),
                               note=f"virtual server without real servers: {why}")
        total = sum(r.weight for r in live)
        candidates = tuple(sorted(
            (Candidate(f"{r.address}:{r.port}", r.weight / total, False,
                       (head, Step(f"{proto} {ks.server.address}:{ks.server.port}", i, f"-> {r.address}:{r.port}")))
             for i, r in enumerate(live)), key=lambda c: (-c.probability, c.outcome)))
        return TraceReport(MODE, probe, sp_key, frontend, candidates,
                           note="masquerade is decided by nat KUBE-IPVS-SERVICES (not traced)")
