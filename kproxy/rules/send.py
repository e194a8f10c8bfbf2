"""`kproxy rules trace --send`: send the traced packet for real and read what the kernel did.

The first packet of the connection (a TCP SYN, a UDP datagram, an SCTP INIT) is built with
scapy and sent through a raw IP socket from inside the node's namespace, with the probe's
(possibly foreign) source address, so
it crosses the node's nat OUTPUT hook and kproxy's rules. The conntrack entry it creates says
which endpoint the kernel chose (reply source) and whether it was masqueraded (reply
destination is not the original source).
"""
from __future__ import annotations

import re
import socket
import time
from kproxy.agent.protocols import Namespace
from dataclasses import dataclass

from .trace import Probe, TraceReport

_FIELD = re.compile(r"(\w+)=(\S+)")


class SendError(RuntimeError):
    pass


@dataclass(frozen=True)
class Observed:
    """What conntrack recorded for the probe: outcome "ip:port" ("" when no entry: dropped or
    rejected before conntrack confirmed it) and whether the source was rewritten."""

    outcome: str
    masquerade: bool
    entry: str = ""

    def to_dict(self) -> dict:
        return {"outcome": self.outcome, "masquerade": self.masquerade, "conntrack": self.entry}

    def __str__(self) -> str:
        if not self.outcome:
            return "no conntrack entry (dropped or rejected)"
        return f"conntrack chose {self.outcome}, {'masqueraded' if self.masquerade else 'source kept'}"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


def parse_conntrack(line: str, probe: Probe) -> Observed:
    """One `conntrack -L` line -> Observed (the second src/sport pair is the reply's source)."""
    fields = _FIELD.findall(line)
    srcs = [v for k, v in fields if k == "src"]
    dsts = [v for k, v in fields if k == "dst"]
    sports = [v for k, v in fields if k == "sport"]
    if len(srcs) < 2 or len(dsts) < 2:
        raise SendError(f"unexpected conntrack line: {line}")
    port = sports[1] if len(sports) > 1 else str(probe.dport)
    return Observed(f"{srcs[1]}:{port}", dsts[1] != probe.src, line.strip())


def _send(probe: Probe) -> None:
    import logging
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    try:
        from scapy.all import IP, SCTP, TCP, UDP, Raw  # type: ignore
    except ImportError as exc:
        raise SendError(f"scapy is not installed ({exc}); pip install scapy") from None
    if probe.proto == "tcp":
        l4 = TCP(sport=probe.sport, dport=probe.dport, flags="S", seq=1000)
    elif probe.proto == "udp":
        l4 = UDP(sport=probe.sport, dport=probe.dport) / Raw(b"kproxy rules trace\n")
    else:
        from scapy.layers.sctp import SCTPChunkInit
        l4 = SCTP(sport=probe.sport, dport=probe.dport) / SCTPChunkInit(init_tag=1, a_rwnd=65535, n_out_streams=1,
                                                                      n_in_streams=1, init_tsn=1)
    # A raw IP socket, not scapy's send(): scapy's L3 sockets are packet sockets that skip the
    # IP stack, and so netfilter, entirely; the packet must cross nat OUTPUT like a real one.
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.sendto(bytes(IP(src=probe.src, dst=probe.dst) / l4), (probe.dst, 0))


def send_and_observe(netns: Namespace, probe: Probe, wait: float) -> Observed:
    """Sends the probe from `netns` (a kproxy.netns.NetNS) and polls its conntrack entry for up
    to `wait` seconds. The entry is deleted afterwards so that a second probe is not pinned."""
    argv = ["conntrack", "-L", "-p", probe.proto, "--orig-src", probe.src, "--orig-dst", probe.dst,
            "--sport", str(probe.sport), "--dport", str(probe.dport)]
    try:
        netns.run(_send, probe)
    except PermissionError:
        # netfilter dropped or rejected it on the way out (a filter verdict on OUTPUT)
        return Observed("", False, "sendto: EPERM (netfilter dropped or rejected the packet)")
    except OSError as exc:
        raise SendError(f"sending with scapy: {exc.strerror or exc}") from None
    deadline = time.monotonic() + wait
    line = ""
    while time.monotonic() < deadline:
        res = netns.command(argv, check=False)
        line = next((l for l in res.stdout.splitlines() if "src=" in l), "")
        if line:
            break
        time.sleep(0.05)
    if not line:
        return Observed("", False)
    netns.command(["conntrack", "-D"] + argv[2:], check=False)
    return parse_conntrack(line, probe)


def confirm(report: TraceReport, seen: Observed) -> Verdict:
    """Whether what the kernel did is one of the trace's candidates (with the same masquerade)."""
    if not seen.outcome:
        if any(not c.is_endpoint and c.outcome in ("DROP", "REJECT") for c in report.candidates):
            return Verdict(True, "the trace predicts a DROP/REJECT and no connection was made")
        return Verdict(False, "the trace predicts a connection but the kernel made none")
    for c in report.candidates:
        if c.outcome == seen.outcome:
            if c.masquerade != seen.masquerade:
                return Verdict(False, f"{seen.outcome} is a candidate but masquerade is "
                                      f"{seen.masquerade}, trace says {c.masquerade}")
            return Verdict(True, f"{seen.outcome} is a candidate (p={c.probability:.3f})")
    if seen.outcome == f"{report.probe.dst}:{report.probe.dport}" and any(
            c.outcome == "ACCEPT" for c in report.candidates):
        return Verdict(True, "no DNAT, as the trace predicts")
    return Verdict(False, f"the kernel chose {seen.outcome}, not one of "
                          f"{', '.join(c.outcome for c in report.candidates)}")
