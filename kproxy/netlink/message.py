"""Netlink messages and attributes as bytes: the headers (nlmsghdr, nfgenmsg, genlmsghdr), the
attribute encoder and decoders, message iteration and error payloads. Pure functions; the
socket that sends them is kproxy.netlink.socket (reference: include/uapi/linux/netlink.h,
netfilter/nfnetlink.h, genetlink.h).

An attribute tree is a tuple of (type, value) pairs where value is bytes (an encoded scalar)
or another attribute tree (nested: NLA_F_NESTED is set). Encoding is deterministic. The
nf_tables hot path has a Cython twin of `encode_attrs` (kproxy/_fastpath_netlink.pxi).
"""
from __future__ import annotations

import struct
from functools import lru_cache
from typing import Iterator, NamedTuple

Attrs = tuple  # tuple[tuple[int, Union[bytes, "Attrs"]], ...]

# -- protocols (socket(AF_NETLINK, SOCK_RAW, protocol))
NETLINK_NETFILTER = 12
NETLINK_GENERIC = 16

# -- message types every family shares, and header flags
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800

# -- attribute type flags (the low 14 bits are the type)
NLA_F_NESTED = 0x8000
NLA_F_NET_BYTEORDER = 0x4000
NLA_TYPE_MASK = 0x3FFF

NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, seq, pid
NFGENMSG = struct.Struct("=BBH")  # family, version, res_id (big-endian where it matters)
GENLMSGHDR = struct.Struct("=BBH")  # cmd, version, reserved
_NLA = struct.Struct("=HH")
_ERRNO = struct.Struct("=i")
ERROR_ORIG_SEQ = 4 + 8  # struct nlmsgerr: int error, then the request's nlmsghdr (seq at +8)


# ---------------------------------------------------------------- scalars


@lru_cache(maxsize=65536)
def be32(value: int) -> bytes:
    return struct.pack(">i" if value < 0 else ">I", value)


def be64(value: int) -> bytes:
    return struct.pack(">Q", value)


def be16(value: int) -> bytes:
    return struct.pack(">H", value)


def host16(value: int) -> bytes:
    return struct.pack("=H", value & 0xFFFF)


def host32(value: int) -> bytes:
    return struct.pack("=I", value & 0xFFFFFFFF)


def string(text: str) -> bytes:
    return text.encode() + b"\0"


def decode_string(value: bytes) -> str:
    return bytes(value).split(b"\0", 1)[0].decode()


# ---------------------------------------------------------------- encoding


def encode_attrs(attrs: Attrs) -> bytes:
    """The netlink attributes of `attrs`, each padded to 4 bytes."""
    out = bytearray()
    _put_attrs(out, attrs)
    return bytes(out)


def _put_attrs(out: bytearray, attrs: Attrs) -> None:
    for kind, value in attrs:
        start = len(out)
        if isinstance(value, (bytes, bytearray)):
            length = 4 + len(value)
            flag = 0
            out += b"\0\0\0\0"
            out += value
        else:
            out += b"\0\0\0\0"
            _put_attrs(out, value)
            length = len(out) - start
            flag = NLA_F_NESTED
        if length > 0xFFFF:
            raise ValueError(f"netlink attribute {kind} is {length} bytes (limit 65535)")
        _NLA.pack_into(out, start, length, kind | flag)
        out += b"\0" * (-length % 4)


def encode_nlmsg(msg_type: int, flags: int, seq: int, body: bytes) -> bytes:
    """One netlink message: nlmsghdr (pid 0: the kernel) + `body` (family header + attributes)."""
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), msg_type, flags, seq, 0) + body


def encode_nfnl(subsys: int, msg_type: int, flags: int, seq: int, family: int, attrs: Attrs) -> bytes:
    """One nfnetlink request (nf_tables, ipset, ctnetlink...): nlmsghdr + nfgenmsg + attributes.
    NLM_F_REQUEST is always set."""
    return encode_nlmsg((subsys << 8) | msg_type, NLM_F_REQUEST | flags, seq,
                        NFGENMSG.pack(family, 0, 0) + encode_attrs(attrs))


def encode_genl(family_id: int, cmd: int, version: int, flags: int, seq: int, attrs: Attrs | bytes) -> bytes:
    """One generic-netlink message: nlmsghdr + genlmsghdr + attributes (a tree, or already
    encoded bytes)."""
    body = attrs if isinstance(attrs, (bytes, bytearray)) else encode_attrs(attrs)
    return encode_nlmsg(family_id, flags, seq, GENLMSGHDR.pack(cmd, version, 0) + body)


def with_flags(message: bytes, flags: int) -> bytes:
    """`message` with `flags` added to its nlmsghdr (e.g. NLM_F_ACK on the last of a batch)."""
    head = bytearray(message[:8])
    head[6:8] = struct.pack("=H", struct.unpack_from("=H", head, 6)[0] | flags)
    return bytes(head) + message[8:]


# ---------------------------------------------------------------- decoding


class Message(NamedTuple):
    """One netlink message of a datagram: header fields and the payload after nlmsghdr."""

    kind: int
    flags: int
    seq: int
    payload: bytes


def iter_messages(data: bytes) -> Iterator[Message]:
    """Each netlink message in one datagram (a truncated tail is ignored)."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, flags, seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size:
            break
        yield Message(kind, flags, seq, data[offset + NLMSGHDR.size:offset + length])
        offset += (length + 3) & ~3


def parse_attrs(data: bytes, offset: int = 0, end: int | None = None) -> dict[int, bytes]:
    """Attributes of one level: type (without flags) -> raw value (a repeated type keeps the
    last; see parse_attrs_list)."""
    end = len(data) if end is None else end
    out: dict[int, bytes] = {}
    while offset + 4 <= end:
        length, kind = _NLA.unpack_from(data, offset)
        if length < 4:
            break
        out[kind & NLA_TYPE_MASK] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def parse_attrs_list(data: bytes, offset: int = 0) -> list[tuple[int, bytes]]:
    """Every attribute of one level in order (a dict would merge repeated LIST_ELEMs)."""
    out = []
    while offset + 4 <= len(data):
        length, kind = _NLA.unpack_from(data, offset)
        if length < 4:
            break
        out.append((kind & NLA_TYPE_MASK, data[offset + 4:offset + length]))
        offset += (length + 3) & ~3
    return out


class ErrorAnswer(NamedTuple):
    """An NLMSG_ERROR payload: errno (0 = an ack), the sequence number of the request it
    answers, and what the kernel echoed of that request (its header and, without
    NETLINK_CAP_ACK, its body)."""

    errno: int
    seq: int
    echo: bytes


def parse_error(payload: bytes, seq: int = 0) -> ErrorAnswer:
    """The NLMSG_ERROR payload; `seq` (the error message's own) when no request is echoed."""
    code = -_ERRNO.unpack_from(payload)[0]
    if len(payload) >= ERROR_ORIG_SEQ + 4:
        seq = struct.unpack_from("=I", payload, ERROR_ORIG_SEQ)[0]
    return ErrorAnswer(code, seq, payload[4:])
