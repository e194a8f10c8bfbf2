"""The mode-independent answer to "where does this packet go?".

A Probe is the first packet of a new connection; a TraceReport says which Service port and
frontend caught it, the candidate outcomes (an endpoint "ip:port", or REJECT / DROP / ACCEPT
when no rule of ours decided) with their probability, whether each is masqueraded, and the
kernel objects the packet passes on the way (its path).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from kproxy.agent.families import split_host_port

from .model import Frontend

PROTOCOLS = ("tcp", "udp", "sctp")


class ProbeError(ValueError):
    """A --src/--dst/--proto value that does not describe a packet."""


@dataclass(frozen=True)
class Probe:
    proto: str
    src: str
    sport: int  # 0: any
    dst: str
    dport: int

    @classmethod
    def parse(cls, proto: str, src: str, dst: str) -> "Probe":
        """From the CLI's strings: --proto tcp --src IP[:PORT] --dst IP:PORT (IPv6 as [IP]:PORT,
        or a bare IPv6 address for --src)."""
        proto = (proto or "").lower()
        if proto not in PROTOCOLS:
            raise ProbeError(f"--proto must be one of {', '.join(PROTOCOLS)}, not {proto!r}")
        sip, sport = _address(src, "--src", port_required=False)
        dip, dport = _address(dst, "--dst", port_required=True)
        return cls(proto, sip, sport, dip, dport)


def _address(text: str, flag: str, port_required: bool) -> tuple[str, int]:
    host, port = split_host_port(text or "")
    try:
        ip = str(ipaddress.ip_address(host))
    except ValueError:
        raise ProbeError(f"{flag}: {text!r} is not IPADDRESS{':PORT' if port_required else '[:PORT]'} "
                         "(IPv6: [IPADDRESS]:PORT)") from None
    if not port:
        if port_required:
            raise ProbeError(f"{flag}: {text!r} needs a port (IP:PORT, [IPv6]:PORT)")
        return ip, 0
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ProbeError(f"{flag}: port {port!r} is not in 1-65535")
    return ip, int(port)


@dataclass(frozen=True)
class Step:
    """One kernel object on the path ("nat/KUBE-SVC-X" rule 3, with its text)."""

    container: str
    index: int
    text: str

    def to_dict(self) -> dict:
        return {"container": self.container, "index": self.index, "text": self.text}


@dataclass(frozen=True)
class Candidate:
    outcome: str  # "ip:port" | "REJECT" | "DROP" | "ACCEPT"
    probability: float
    masquerade: bool
    path: tuple[Step, ...] = ()

    @property
    def is_endpoint(self) -> bool:
        return ":" in self.outcome

    def to_dict(self) -> dict:
        return {"outcome": self.outcome, "probability": self.probability, "masquerade": self.masquerade,
                "path": [s.to_dict() for s in self.path]}


@dataclass(frozen=True)
class TraceReport:
    mode: str
    probe: Probe
    service: str  # ServicePort key, "" when no Service caught the packet
    frontend: Frontend | None
    candidates: tuple[Candidate, ...]  # most probable first
    note: str = ""

    @property
    def endpoints(self) -> set[str]:
        return {c.outcome for c in self.candidates if c.is_endpoint}

    def to_dict(self) -> dict:
        p = self.probe
        return {"apiVersion": "kproxy.io/v1alpha1", "kind": "TraceReport", "mode": self.mode,
                "packet": {"protocol": p.proto, "src": p.src, "srcPort": p.sport, "dst": p.dst, "dstPort": p.dport},
                "service": self.service, "frontend": self.frontend.to_dict() if self.frontend else None,
                "candidates": [c.to_dict() for c in self.candidates], "note": self.note}
