"""Every real server of every virtual server in one read of /proc/net/ip_vs.

Why: netlink has no dump of all real servers, only one per virtual server, so a full sync at 10k
Services cost 10k round trips (62 s of a 134 s no-change resync in the test VM). The kernel's
text table holds the same facts (address, port, forwarding method, weight, connection counts)
for the whole namespace. The file shows the namespace of the thread that reads it, so the
backend reads /proc/thread-self/net/ip_vs on the namespace's thread.

Format (net/netfilter/ipvs/ip_vs_ctl.c, ip_vs_info_seq_show), after three header lines:
    TCP  0A600001:0050 rr [persistent 10800 FFFFFFFF]      (IPv6: [addr]:PORT)
      -> 0AF40102:1F90      Masq    1      0          0
    FWM  00000001 rr                                          (fwmark services: not ours)
"""
from __future__ import annotations

import ipaddress
import socket

from .model import RealServer, VSKey
from .netlink import DestStatus
from .nfrules import PROTOCOLS

PATH = "/proc/thread-self/net/ip_vs"
# ip_vs_fwd_name: the kernel prints "Masq" for every method it does not name
FORWARD = {"Masq": 0, "Local": 1, "Tunnel": 2, "Route": 3}


class ProcFormatError(ValueError):
    """The text is not the table this module knows (another kernel's format)."""


def _address_port(text: str) -> tuple[str, int]:
    """'0A600001:0050' or '[fd00::1]:0050' -> ('10.96.0.1', 80)."""
    addr, _, port = text.rpartition(":")
    if addr.startswith("["):
        ip = str(ipaddress.IPv6Address(addr[1:-1]))
    else:
        if len(addr) != 8:
            raise ValueError(f"bad address {addr!r}")
        ip = socket.inet_ntoa(bytes.fromhex(addr))
    return ip, int(port, 16)


def parse(text: str) -> dict[VSKey, list[DestStatus]]:
    """Virtual server key -> its real servers as the kernel holds them (fwmark services are
    left out). Raises ProcFormatError on a line it cannot read."""
    out: dict[VSKey, list[DestStatus]] = {}
    current: list[DestStatus] | None = None
    for n, line in enumerate(text.splitlines()):
        if n < 3 or not line.strip():
            continue  # version, and the two column headers
        words = line.split()
        try:
            if words[0] == "->":
                if current is not None:
                    ip, port = _address_port(words[1])
                    current.append(DestStatus(RealServer(ip, port, int(words[3])), FORWARD.get(words[2], 0),
                                              int(words[4]), int(words[5])))
            elif words[0] in PROTOCOLS:
                ip, port = _address_port(words[1])
                current = out[(ip, port, words[0])] = []  # a record read twice: the last copy
            else:  # FWM: skip it and its real servers
                current = None
        except (IndexError, ValueError) as exc:
            raise ProcFormatError(f"/proc/net/ip_vs line {n + 1} {line.strip()!r}: {exc}") from None
    return out


def read() -> dict[VSKey, list[DestStatus]]:
    """The table of the calling thread's namespace. Raises OSError (no IPVS, no procfs) or
    ProcFormatError."""
    with open(PATH) as f:
        return parse(f.read())
