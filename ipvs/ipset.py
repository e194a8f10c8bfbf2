"""ipset through nfnetlink (reference: include/uapi/linux/netfilter/ipset/ip_set.h), for the
few set types IPVS mode uses: hash:ip,port, hash:ip,port,ip, hash:ip,port,net (with optional
comments) and bitmap:port.

Why not the `ipset` program: `ipset restore` sends one netlink round trip per member and looks
the protocol name up in /etc/protocols for each line; in the emulated test VM that is 6 ms a
member (1,000 Services: 24 s for the sets alone), and every sync pays a process start. Here a
list of operations becomes a few datagrams: consecutive adds/deletes on one set share one
message (the kernel's IPSET_ATTR_ADT list), and many messages share one send.

Guarantees:
- `encode_ops` is pure (ops in, datagrams out) and deterministic; `ops_text` prints the same
  ops in `ipset restore` syntax (what `kproxy rules` and the tests show).
- Every create, add and delete behaves like `ipset -exist`: creating a set that exists with
  the same type, adding a member that is there or deleting one that is not, is no error.
- `IpsetSocket.execute` raises IpsetError for the first operation the kernel refused, naming
  it. ipset has no transactions: the operations before (and the independent ones after) a
  refused one stay applied; the IPVS backend's next full sync rewrites every set.
- An IpsetSocket talks to the network namespace it was opened in (open it on the thread that
  lives there: kproxy.netns.NetNS.run).
"""
from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass
from typing import Iterator, NamedTuple, Sequence, Union, cast

from kproxy.netlink import message as nl
from kproxy.netlink.attrs import BE16, BE32, IPV4, STRING, U8, U32, Attr, AttrTable
from kproxy.netlink.message import NLA_F_NET_BYTEORDER, NLM_F_ACK, NLM_F_DUMP  # noqa: F401 (NET_BYTEORDER: tests)
from kproxy.netlink.socket import NetlinkError, NetlinkSocket

NFNL_SUBSYS_IPSET = 6
NFPROTO_IPV4 = 2
PROTOCOL = 6  # every kernel since 3.x accepts 6 (newer ones also 7)

CMD_CREATE, CMD_DESTROY, CMD_LIST = 2, 3, 7
CMD_ADD, CMD_DEL, CMD_TYPE = 9, 10, 13

# The attributes (ip_set.h): the IPSET_ATTR_IPADDR nest, the per-entry DATA nest (IPSET_ATTR_*
# of the CADT range) and a command's top level.
IPADDR = AttrTable("ipset ipaddr", (Attr("ipv4", 1, IPV4, net_byteorder=True),))
DATA = AttrTable("ipset data", (
    Attr("ip", 1, IPADDR), Attr("port", 4, BE16, net_byteorder=True), Attr("port_to", 5, BE16, net_byteorder=True),
    Attr("proto", 7, U8), Attr("cadt_flags", 8, BE32, net_byteorder=True), Attr("cadt_lineno", 9, U32),
    Attr("hashsize", 18, BE32, net_byteorder=True), Attr("maxelem", 19, BE32, net_byteorder=True),
    Attr("ip2", 20, IPADDR), Attr("cidr2", 21, U8), Attr("comment", 26, STRING)))
ADT = AttrTable("ipset adt", (Attr("data", 7, DATA),))
COMMAND = AttrTable("ipset command", (
    Attr("protocol", 1, U8), Attr("setname", 2, STRING), Attr("typename", 3, STRING), Attr("revision", 4, U8),
    Attr("family", 5, U8), Attr("flags", 6, BE32), Attr("data", 7, DATA), Attr("adt", 8, ADT),
    Attr("lineno", 9, U32)))

ATTR_SETNAME, ATTR_REVISION, ATTR_DATA, ATTR_ADT, ATTR_LINENO = (
    COMMAND.number(n) for n in ("setname", "revision", "data", "adt", "lineno"))
ATTR_IP, ATTR_PORT, ATTR_PROTO, ATTR_IP2, ATTR_CIDR2, ATTR_COMMENT, ATTR_CADT_LINENO = (
    DATA.number(n) for n in ("ip", "port", "proto", "ip2", "cidr2", "comment", "cadt_lineno"))
ATTR_IPADDR_IPV4 = IPADDR.number("ipv4")
FLAG_LIST_SETNAME = 1 << 1
FLAG_WITH_COMMENT = 1 << 4

IPPROTO = {"tcp": 6, "udp": 17, "sctp": 132}
IPPROTO_NAMES = {v: k for k, v in IPPROTO.items()}
KINDS = ("hash:ip,port", "hash:ip,port,ip", "hash:ip,port,net", "bitmap:port")

# One ADT list is one netlink attribute (at most 65535 bytes); one send stays well inside the
# socket buffer (nlsocket.MIN_BUFFER).
ADT_BYTES = 60000
SEND_BYTES = 1 << 20

ERRORS = {
    4097: "protocol error", 4098: "set type not supported by the kernel", 4099: "too many sets",
    4100: "set is in use", 4101: "second set does not exist", 4102: "set types differ",
    4103: "set exists with a different type or options", 4104: "invalid CIDR", 4105: "invalid netmask",
    4106: "invalid family", 4107: "timeout not supported by the set", 4108: "set is referenced by a rule",
    4109: "invalid IPv4 address", 4110: "invalid IPv6 address", 4111: "counters not supported by the set",
    4112: "comments not supported by the set", 4352: "hash is full", 4353: "null-valued element",
    4354: "invalid protocol", 4355: "protocol missing",
}


class IpsetError(NetlinkError):
    """The kernel refused an operation (errno, and which operation), or ipset is missing."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(code, reason=message)


@dataclass(frozen=True)
class SetType:
    kind: str  # one of KINDS
    hashsize: int = 1024
    maxelem: int = 1048576
    comment: bool = False
    port_range: tuple[int, int] = (0, 65535)  # bitmap:port only

    def text(self) -> str:
        if self.kind == "bitmap:port":
            return f"bitmap:port range {self.port_range[0]}-{self.port_range[1]}"
        return (f"{self.kind} family inet hashsize {self.hashsize} maxelem {self.maxelem}"
                + (" comment" if self.comment else ""))


class Member(NamedTuple):
    """A set member: bitmap:port uses `port` only; hash:ip,port ip/proto/port; hash:ip,port,ip
    adds ip2; hash:ip,port,net adds ip2 as "address/prefix". `comment` only in sets created with
    comments. A tuple, not a dataclass: a full sync hashes and compares 120k of them at 10k
    Services, and tuples do that in C."""

    ip: str = ""
    proto: str = ""  # tcp | udp | sctp
    port: int = 0
    ip2: str = ""
    comment: str = ""

    def text(self) -> str:
        if not self.ip:
            return str(self.port)
        out = f"{self.ip},{self.proto}:{self.port}" + (f",{self.ip2}" if self.ip2 else "")
        return out + (f' comment "{self.comment}"' if self.comment else "")

    def key(self) -> "Member":
        """The member without its comment (what identifies it in the set)."""
        return Member(self.ip, self.proto, self.port, self.ip2) if self.comment else self


@dataclass(frozen=True)
class SetOp:
    cmd: str  # create | add | del | destroy
    set: str
    arg: Union[SetType, Member, None] = None  # create: SetType, add/del: Member

    def set_type(self) -> SetType:
        """A create's argument."""
        return cast(SetType, self.arg)

    def member(self) -> Member:
        """An add's or a del's argument."""
        return cast(Member, self.arg)

    def text(self) -> str:
        if self.cmd == "create":
            return f"create {self.set} {self.set_type().text()} -exist"
        if self.cmd in ("add", "del"):
            member = self.member() if self.cmd == "add" else self.member().key()
            return f"{self.cmd} {self.set} {member.text()} -exist"
        return f"{self.cmd} {self.set}"


def ops_text(ops: Sequence[SetOp]) -> str:
    """The ops in `ipset restore` syntax, one line each ("" for none)."""
    return "".join(op.text() + "\n" for op in ops)


# ------------------------------------------------------------------ pure encoding


# member_attrs runs once per member of a full sync (120k at 10k Services): it builds the DATA
# tree with the table's wire types directly instead of through DATA.encode.
_PORT = DATA.by_name["port"].wire_type
_IPV4 = IPADDR.by_name["ipv4"].wire_type


def _ipv4(kind: int, ip: str) -> tuple[int, tuple]:
    return (kind, ((_IPV4, socket.inet_aton(ip)),))


def member_attrs(m: Member) -> tuple:
    """The DATA attributes of one member."""
    if not m.ip:
        return ((_PORT, nl.be16(m.port)),)
    attrs = [_ipv4(ATTR_IP, m.ip), (_PORT, nl.be16(m.port)), (ATTR_PROTO, bytes((IPPROTO[m.proto],)))]
    if m.ip2:
        address, _, prefix = m.ip2.partition("/")
        attrs.append(_ipv4(ATTR_IP2, address))
        if prefix:  # hash:ip,port,net (a u8, host order like every CIDR attribute)
            attrs.append((ATTR_CIDR2, bytes((int(prefix),))))
    if m.comment:
        attrs.append((ATTR_COMMENT, nl.string(m.comment)))
    return tuple(attrs)


def create_attrs(name: str, kind: SetType, revision: int) -> tuple:
    data: dict[str, int | None]  # None: left out
    if kind.kind == "bitmap:port":
        data = {"port": kind.port_range[0], "port_to": kind.port_range[1]}
    else:
        data = {"hashsize": kind.hashsize, "maxelem": kind.maxelem,
                "cadt_flags": FLAG_WITH_COMMENT if kind.comment else None}
    return COMMAND.encode({"protocol": PROTOCOL, "setname": name, "typename": kind.kind, "revision": revision,
                           "family": NFPROTO_IPV4, "data": data})


def _message(cmd: int, seq: int, attrs: tuple, flags: int = 0) -> bytes:
    return nl.encode_nfnl(NFNL_SUBSYS_IPSET, cmd, flags, seq, NFPROTO_IPV4, attrs)


def _head(name: str) -> tuple:
    return COMMAND.encode({"protocol": PROTOCOL, "setname": name})


def encode_ops(ops: Sequence[SetOp], revisions: dict[str, int], first_seq: int) -> list[tuple[bytes, int, list[SetOp]]]:
    """(message, seq, the ops it carries) for each netlink message, numbered from `first_seq`.
    Consecutive adds (or deletes) to one set share a message, as an ADT list of at most
    ADT_BYTES. `revisions`: the revision to create each set kind with. No message asks for an
    ack (the sender adds NLM_F_ACK to the last one of a send)."""
    out: list[tuple[bytes, int, list[SetOp]]] = []
    seq = first_seq
    i = 0
    while i < len(ops):
        op = ops[i]
        if op.cmd in ("add", "del"):
            group: list[SetOp] = []
            entries: list[tuple] = []
            size = 0
            while i < len(ops) and ops[i].cmd == op.cmd and ops[i].set == op.set:
                member = ops[i].member() if op.cmd == "add" else ops[i].member().key()
                # the kernel names a refused entry by its line number (1-based, per message)
                data = (ATTR_DATA, member_attrs(member) + ((ATTR_CADT_LINENO, nl.host32(len(entries) + 1)),))
                grows = len(nl.encode_attrs((data,)))
                if entries and size + grows > ADT_BYTES:
                    break
                entries.append(data)
                group.append(ops[i])
                size += grows
                i += 1
            cmd = CMD_ADD if op.cmd == "add" else CMD_DEL
            attrs = _head(op.set) + ((ATTR_LINENO, nl.host32(0)), (ATTR_ADT, tuple(entries)))
            out.append((_message(cmd, seq, attrs), seq, group))
        else:
            if op.cmd == "create":
                attrs = create_attrs(op.set, op.set_type(), revisions[op.set_type().kind])
                cmd = CMD_CREATE
            elif op.cmd == "destroy":
                attrs = _head(op.set)
                cmd = CMD_DESTROY
            else:
                raise ValueError(f"unknown ipset operation {op.cmd!r}")
            out.append((_message(cmd, seq, attrs), seq, [op]))
            i += 1
        seq += 1
    return out


# ------------------------------------------------------------------ decoding


def parse_member(data: bytes) -> Member:
    """One DATA nest of a LIST answer."""
    attrs = nl.parse_attrs(data)
    port = struct.unpack(">H", attrs[ATTR_PORT])[0] if ATTR_PORT in attrs else 0

    def ip(kind: int) -> str:
        raw = attrs.get(kind)
        if raw is None:
            return ""
        # the usual nest holds one IPv4 attribute (8 bytes): read it without a second parse
        if len(raw) == 8 and struct.unpack_from("=H", raw, 2)[0] & 0x3FFF == ATTR_IPADDR_IPV4:
            return socket.inet_ntoa(raw[4:8])
        return socket.inet_ntoa(nl.parse_attrs(raw)[ATTR_IPADDR_IPV4])

    proto = IPPROTO_NAMES.get(attrs[ATTR_PROTO][0], str(attrs[ATTR_PROTO][0])) if ATTR_PROTO in attrs else ""
    comment = nl.decode_string(attrs[ATTR_COMMENT]) if ATTR_COMMENT in attrs else ""
    ip2 = ip(ATTR_IP2)
    if ip2 and ATTR_CIDR2 in attrs:
        ip2 += f"/{attrs[ATTR_CIDR2][0]}"
    return Member(ip(ATTR_IP), proto, port, ip2, comment)


def _refused_line(echo: bytes) -> int:
    """The LINENO the kernel wrote into its copy (`echo`: nlmsghdr, nfgenmsg, attributes) of a
    refused ADT message (0 if none)."""
    if len(echo) <= 16 + 4:
        return 0
    raw = nl.parse_attrs(echo, 16 + 4).get(ATTR_LINENO)
    return struct.unpack("=I", raw)[0] if raw and len(raw) == 4 else 0


def error_text(code: int) -> str:
    return ERRORS.get(code) or (os.strerror(code) if code < 4096 else f"ipset error {code}")


# ------------------------------------------------------------------ the socket


class IpsetSocket(NetlinkSocket):
    def __init__(self) -> None:
        try:
            super().__init__(nl.NETLINK_NETFILTER, cap_ack=True)
        except OSError as exc:
            raise IpsetError(f"netfilter netlink socket: {exc.strerror or exc}", exc.errno or 0) from None
        self._revisions: dict[str, int] = {}

    def __enter__(self) -> "IpsetSocket":
        return self

    def _request(self, cmd: int, attrs: tuple, flags: int = 0) -> Iterator[dict[int, bytes]]:
        """One request; the top-level attributes of each answer (dumps: NLM_F_DUMP). A missing
        set answers nothing (ENOENT)."""
        seq = self.next_seq()
        try:
            for answer in self.request(_message(cmd, seq, attrs, flags | NLM_F_ACK), seq, missing_ok=True):
                yield nl.parse_attrs(answer.payload, 4)
        except OSError as exc:
            code = exc.errno or errno.EIO  # an OSError raised without an errno
            raise IpsetError(error_text(code), code) from None

    def revision(self, kind: str) -> int:
        """The newest revision of set type `kind` this kernel has (asked once per socket)."""
        if kind not in self._revisions:
            attrs = COMMAND.encode({"protocol": PROTOCOL, "typename": kind, "family": NFPROTO_IPV4})
            try:
                answers = list(self._request(CMD_TYPE, attrs))
            except IpsetError as exc:
                raise IpsetError(f"ipset type {kind}: {exc} (module ip_set_{kind.replace(':', '_').replace(',', '')}?)",
                                 exc.errno) from None
            if not answers or ATTR_REVISION not in answers[0]:
                raise IpsetError(f"ipset type {kind}: the kernel sent no revision", errno.EPROTO)
            self._revisions[kind] = answers[0][ATTR_REVISION][0]
        return self._revisions[kind]

    def execute(self, ops: Sequence[SetOp]) -> int:
        """Applies `ops` in order; returns the number of sends. Raises IpsetError naming the
        first refused operation (after every message of that send was answered)."""
        revisions = {op.set_type().kind: self.revision(op.set_type().kind) for op in ops if op.cmd == "create"}
        messages = encode_ops(ops, revisions, self.next_seq(0))
        self.next_seq(len(messages))
        try:
            return self._send(messages)
        except OSError as exc:  # a timeout waiting for the kernel's answer
            raise IpsetError(f"ipset: {exc.strerror or exc}", exc.errno or 0) from None

    def _send(self, messages: list[tuple[bytes, int, list[SetOp]]]) -> int:
        sends = 0
        start = 0
        while start < len(messages):
            end, size = start, 0
            while end < len(messages) and (end == start or size + len(messages[end][0]) <= SEND_BYTES):
                size += len(messages[end][0])
                end += 1
            batch = messages[start:end]
            last, last_seq, _ = batch[-1]
            self.send(b"".join(m for m, _, _ in batch[:-1]) + nl.with_flags(last, NLM_F_ACK))
            sends += 1
            refused = self.errors(last_seq, {s for _, s, _ in batch})
            if refused:
                group = next(g for _, s, g in batch if s == refused[0].seq)
                line = _refused_line(refused[0].echo)
                what = group[line - 1 if 0 < line <= len(group) else 0].text()
                raise IpsetError(f"ipset {what}: {error_text(refused[0].errno)}", refused[0].errno)
            start = end
        return sends

    def names(self) -> list[str]:
        """Every set of this namespace."""
        attrs = COMMAND.encode({"protocol": PROTOCOL, "flags": FLAG_LIST_SETNAME})
        out = []
        for answer in self._request(CMD_LIST, attrs, NLM_F_DUMP):
            if ATTR_SETNAME in answer:
                name = nl.decode_string(answer[ATTR_SETNAME])
                if name not in out:
                    out.append(name)
        return out

    def members(self, name: str) -> list[Member]:
        """The members of set `name` ([] when it does not exist)."""
        out = []
        for answer in self._request(CMD_LIST, _head(name), NLM_F_DUMP):
            for kind, data in nl.parse_attrs_list(answer.get(ATTR_ADT, b"")):
                if kind == ATTR_DATA:
                    out.append(parse_member(data))
        return sorted(out)
