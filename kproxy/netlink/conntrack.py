"""ctnetlink: list and delete connection-tracking entries (reference:
include/uapi/linux/netfilter/nfnetlink_conntrack.h), for kproxy/agent/conntrack.py's cleanup.

One dump per address family lists the entries (filtered by protocol here); deletions of many
entries share one datagram with one ack, as the IPVS client does. Entries are values (Entry);
deciding which to delete is the caller's pure logic.
"""
from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import Optional, Sequence

from .attrs import BE16, BE32, IPV4, IPV6, U8, Attr, AttrTable
from .message import NETLINK_NETFILTER, NLM_F_ACK, NLM_F_DUMP, encode_nfnl, with_flags
from .socket import NetlinkError, NetlinkSocket

NFNL_SUBSYS_CTNETLINK = 1
MSG_CT_NEW, MSG_CT_GET, MSG_CT_DELETE = 0, 1, 2
TCP_CONNTRACK_SYN_SENT = 1  # enum tcp_conntrack
FAMILIES = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "sctp": 132}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}
SEND_BYTES = 64 * 1024

IP = AttrTable("ct ip", (Attr("v4_src", 1, IPV4), Attr("v4_dst", 2, IPV4), Attr("v6_src", 3, IPV6),
                         Attr("v6_dst", 4, IPV6)))
PROTO = AttrTable("ct proto", (Attr("num", 1, U8), Attr("src_port", 2, BE16), Attr("dst_port", 3, BE16)))
TUPLE = AttrTable("ct tuple", (Attr("ip", 1, IP), Attr("proto", 2, PROTO), Attr("zone", 3, BE16)))
PROTOINFO_TCP = AttrTable("ct protoinfo tcp", (Attr("state", 1, U8),))
PROTOINFO = AttrTable("ct protoinfo", (Attr("tcp", 1, PROTOINFO_TCP),))
ENTRY = AttrTable("ct entry", (Attr("orig", 1, TUPLE), Attr("reply", 2, TUPLE), Attr("status", 3, BE32),
                               Attr("protoinfo", 4, PROTOINFO), Attr("zone", 18, BE16)))


@dataclass(frozen=True)
class Tuple:
    src: str
    dst: str
    sport: int
    dport: int


@dataclass(frozen=True)
class Entry:
    """One conntrack entry: its original and reply tuples; tcp_state for TCP (enum tcp_conntrack)."""

    family: str  # ipv4 | ipv6
    protocol: str  # tcp | udp | sctp
    orig: Tuple
    reply: Tuple
    tcp_state: Optional[int] = None
    zone: int = 0


def _tuple(values: dict, v6: bool) -> Tuple:
    ip, proto = values["ip"], values["proto"]
    prefix = "v6_" if v6 else "v4_"
    return Tuple(ip[prefix + "src"], ip[prefix + "dst"], proto.get("src_port", 0), proto.get("dst_port", 0))


def parse_entry(family: str, payload: bytes) -> Entry | None:
    """The entry of one dump answer (after nfgenmsg); None for one of another protocol kind
    (icmp, gre...) or one without both tuples."""
    values = ENTRY.decode(payload, 4)
    try:
        protocol = PROTOCOL_NAMES[values["orig"]["proto"]["num"]]
        v6 = family == "ipv6"
        orig, reply = _tuple(values["orig"], v6), _tuple(values["reply"], v6)
    except KeyError:
        return None
    state = values.get("protoinfo", {}).get("tcp", {}).get("state")
    return Entry(family, protocol, orig, reply, state, values.get("zone", 0))


def _tuple_values(family: str, protocol: str, t: Tuple) -> dict:
    prefix = "v6_" if family == "ipv6" else "v4_"
    return {"ip": {prefix + "src": t.src, prefix + "dst": t.dst},
            "proto": {"num": PROTOCOLS[protocol], "src_port": t.sport, "dst_port": t.dport}}


def delete_message(entry: Entry, seq: int) -> bytes:
    """IPCTNL_MSG_CT_DELETE of `entry`, named by its original tuple (and zone)."""
    values = {"orig": _tuple_values(entry.family, entry.protocol, entry.orig), "zone": entry.zone or None}
    return encode_nfnl(NFNL_SUBSYS_CTNETLINK, MSG_CT_DELETE, 0, seq, FAMILIES[entry.family], ENTRY.encode(values))


class ConntrackSocket(NetlinkSocket):
    """ctnetlink in the calling thread's network namespace."""

    def __init__(self) -> None:
        super().__init__(NETLINK_NETFILTER, 8 << 20)

    def __enter__(self) -> "ConntrackSocket":
        return self

    def entries(self, family: str, protocol: str) -> list[Entry]:
        """Every entry of `family` and `protocol` (one dump of the family's table)."""
        seq = self.next_seq()
        request = encode_nfnl(NFNL_SUBSYS_CTNETLINK, MSG_CT_GET, NLM_F_DUMP, seq, FAMILIES[family], ())
        out = []
        for answer in self.request(request, seq, f"list {family} conntrack entries"):
            entry = parse_entry(family, answer.payload)
            if entry is not None and entry.protocol == protocol:
                out.append(entry)
        return out

    def delete(self, entries: Sequence[Entry]) -> int:
        """Deletes `entries`; returns how many the kernel deleted (one already gone, ENOENT, is
        not counted and not an error). Raises NetlinkError for any other refusal."""
        deleted = 0
        i = 0
        while i < len(entries):
            first = self.seq
            chunk: list[bytes] = []
            size = 0
            while i < len(entries) and (not chunk or size < SEND_BYTES):
                chunk.append(delete_message(entries[i], self.next_seq()))
                size += len(chunk[-1])
                i += 1
            last = first + len(chunk) - 1
            chunk[-1] = with_flags(chunk[-1], NLM_F_ACK)
            self.send(b"".join(chunk))
            refused = self.errors(last, range(first, last + 1))
            others = [e for e in refused if e.errno != errno.ENOENT]
            if others:
                raise NetlinkError(others[0].errno, "delete conntrack entry", others[0].seq)
            deleted += len(chunk) - len(refused)
        return deleted
