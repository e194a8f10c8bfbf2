"""Our own encoder for the IPVS generic-netlink family (reference: include/uapi/linux/ip_vs.h).

Why not pyroute2's IPVS: 0.9.7 sends DEL for "update", its from_message() drops the kernel's
timeout/flags/fwd_method, and every call is one round trip through its asyncio core. Here a
change list is encoded into as few send() calls as the socket buffer allows (many requests per
datagram, one ack per datagram), so a full sync of 100k objects costs a few hundred round trips.

Guarantees:
- `encode_*` and `parse_*` are pure (bytes in, bytes/values out) and unit-tested on any kernel.
- `IpvsSocket.execute(requests)` sends every request (only the last of each batch asks for
  an ack: the kernel reports the others only when they fail); the first kernel error is raised as IpvsError naming the request that failed (the kernel keeps processing the
  rest of a batch: IPVS has no transactions, so a failed apply leaves a partial change and the
  caller must re-read the kernel, which the backend's next full sync does).
- Dumps return VirtualServer / RealServer values with exactly what the kernel reported.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from typing import Iterator, Sequence

from .model import RealServer, VirtualServer

# netlink
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLMSG_ERROR = 0x2
NLMSG_DONE = 0x3
NLA_F_NESTED = 0x8000
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2

# ip_vs.h
IPVS_GENL_NAME = "IPVS"
IPVS_GENL_VERSION = 1
CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8
CMD_FLUSH = 17
CMD_ATTR_SERVICE, CMD_ATTR_DEST = 1, 2
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK = 1, 2, 3, 4, 5
SVC_SCHED_NAME, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK = 6, 7, 8, 9
DEST_ADDR, DEST_PORT, DEST_FWD_METHOD, DEST_WEIGHT = 1, 2, 3, 4
DEST_U_THRESH, DEST_L_THRESH, DEST_ACTIVECONNS, DEST_INACTCONNS = 5, 6, 7, 8
DEST_ADDR_FAMILY = 11
FWD_MASQ = 0

PROTOCOLS = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP, "SCTP": 132}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}

_NLMSGHDR = struct.Struct("=IHHII")
_GENLHDR = struct.Struct("=BBH")
_NLA = struct.Struct("=HH")
BATCH_BYTES = 96 * 1024  # below the default netlink send buffer (212992) with room for acks


class IpvsError(Exception):
    """The kernel refused a request (errno + which request), or IPVS is missing."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.errno = code


# ------------------------------------------------------------------ pure encoding


def _nla(kind: int, payload: bytes) -> bytes:
    data = _NLA.pack(4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _addr16(ip: str) -> tuple[int, bytes]:
    addr = ipaddress.ip_address(ip)
    raw = addr.packed
    return (socket.AF_INET if addr.version == 4 else socket.AF_INET6), raw + b"\0" * (16 - len(raw))


def encode_service_key(vs: VirtualServer) -> bytes:
    """The nested SERVICE attribute identifying `vs` (af, protocol, addr, port)."""
    af, addr = _addr16(vs.address)
    return (_nla(SVC_AF, struct.pack("=H", af)) + _nla(SVC_PROTOCOL, struct.pack("=H", PROTOCOLS[vs.protocol]))
            + _nla(SVC_ADDR, addr) + _nla(SVC_PORT, struct.pack("!H", vs.port)))


def encode_service(vs: VirtualServer) -> bytes:
    """The full SERVICE attribute: key plus scheduler, flags, persistence timeout, netmask."""
    af, _ = _addr16(vs.address)
    netmask = 0xFFFFFFFF if af == socket.AF_INET else 128
    return (encode_service_key(vs) + _nla(SVC_SCHED_NAME, vs.scheduler.encode() + b"\0")
            + _nla(SVC_FLAGS, struct.pack("=II", vs.flags, 0xFFFFFFFF))
            + _nla(SVC_TIMEOUT, struct.pack("=I", vs.timeout))
            + _nla(SVC_NETMASK, struct.pack("!I", netmask) if af == socket.AF_INET else struct.pack("=I", netmask)))


def encode_dest(rs: RealServer, full: bool = True) -> bytes:
    af, addr = _addr16(rs.address)
    out = _nla(DEST_ADDR, addr) + _nla(DEST_PORT, struct.pack("!H", rs.port))
    if full:
        out += (_nla(DEST_FWD_METHOD, struct.pack("=I", FWD_MASQ)) + _nla(DEST_WEIGHT, struct.pack("=I", rs.weight))
                + _nla(DEST_U_THRESH, struct.pack("=I", 0)) + _nla(DEST_L_THRESH, struct.pack("=I", 0))
                + _nla(DEST_ADDR_FAMILY, struct.pack("=H", af)))
    return out


def encode_message(family: int, cmd: int, attrs: bytes, flags: int, seq: int) -> bytes:
    body = _GENLHDR.pack(cmd, IPVS_GENL_VERSION, 0) + attrs
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), family, flags, seq, 0) + body


@dataclass(frozen=True)
class Request:
    """One IPVS command: `cmd` with the service attribute and, for dest commands, the dest."""

    cmd: int
    service: VirtualServer
    dest: RealServer | None = None

    def attrs(self) -> bytes:
        full_service = self.cmd in (CMD_NEW_SERVICE, CMD_SET_SERVICE)
        svc = encode_service(self.service) if full_service else encode_service_key(self.service)
        out = _nla(CMD_ATTR_SERVICE | NLA_F_NESTED, svc)
        if self.dest is not None:
            out += _nla(CMD_ATTR_DEST | NLA_F_NESTED, encode_dest(self.dest, full=self.cmd != CMD_DEL_DEST))
        return out

    def describe(self) -> str:
        names = {CMD_NEW_SERVICE: "add service", CMD_SET_SERVICE: "edit service", CMD_DEL_SERVICE: "delete service",
                 CMD_NEW_DEST: "add real server", CMD_SET_DEST: "edit real server",
                 CMD_DEL_DEST: "delete real server"}
        text = f"{names.get(self.cmd, self.cmd)} {self.service.describe()}"
        return text + (f" -> {self.dest.address}:{self.dest.port}" if self.dest else "")


# ------------------------------------------------------------------ pure decoding


def parse_attrs(data: bytes, offset: int = 0, end: int | None = None) -> dict[int, bytes]:
    end = len(data) if end is None else end
    out: dict[int, bytes] = {}
    while offset + 4 <= end:
        length, kind = _NLA.unpack_from(data, offset)
        if length < 4:
            break
        out[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def _ip(raw: bytes, af: int) -> str:
    return str(ipaddress.ip_address(raw[:4] if af == socket.AF_INET else raw[:16]))


def parse_service(attrs: dict[int, bytes]) -> VirtualServer:
    af = struct.unpack("=H", attrs[SVC_AF])[0]
    flags = struct.unpack("=II", attrs[SVC_FLAGS])[0] if SVC_FLAGS in attrs else 0
    return VirtualServer(
        address=_ip(attrs[SVC_ADDR], af), port=struct.unpack("!H", attrs[SVC_PORT])[0],
        protocol=PROTOCOL_NAMES.get(struct.unpack("=H", attrs[SVC_PROTOCOL])[0], "?"),
        scheduler=attrs.get(SVC_SCHED_NAME, b"").rstrip(b"\0").decode(),
        flags=flags & ~0x2,  # IP_VS_SVC_F_HASHED is the kernel's own bookkeeping
        timeout=struct.unpack("=I", attrs[SVC_TIMEOUT])[0] if SVC_TIMEOUT in attrs else 0)


@dataclass(frozen=True)
class DestStatus:
    """A real server as the kernel holds it, with its connection counters."""

    server: RealServer
    fwd_method: int
    active: int
    inactive: int


def parse_dest(attrs: dict[int, bytes]) -> DestStatus:
    af = struct.unpack("=H", attrs[DEST_ADDR_FAMILY])[0] if DEST_ADDR_FAMILY in attrs else socket.AF_INET
    u32 = lambda k: struct.unpack("=I", attrs[k])[0] if k in attrs else 0  # noqa: E731
    rs = RealServer(_ip(attrs[DEST_ADDR], af), struct.unpack("!H", attrs[DEST_PORT])[0], u32(DEST_WEIGHT))
    return DestStatus(rs, u32(DEST_FWD_METHOD) & 0x7, u32(DEST_ACTIVECONNS), u32(DEST_INACTCONNS))


def iter_messages(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(type, flags, seq, offset of payload, end) for each netlink message in `data`."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        yield kind, flags, seq, offset + _NLMSGHDR.size, offset + length
        offset += (length + 3) & ~3


# ------------------------------------------------------------------ the socket


class IpvsSocket:
    """A generic-netlink socket bound to the IPVS family, in the calling thread's netns."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)  # NETLINK_GENERIC
        try:
            for force, plain, size in ((33, socket.SO_RCVBUF, 8 << 20), (32, socket.SO_SNDBUF, 1 << 20)):
                try:  # SO_RCVBUFFORCE / SO_SNDBUFFORCE (root): beyond net.core.[rw]mem_max
                    self.sock.setsockopt(socket.SOL_SOCKET, force, size)
                except OSError:
                    self.sock.setsockopt(socket.SOL_SOCKET, plain, size)
            self.sock.bind((0, 0))
            self._seq = 0
            self.family = self._resolve_family()
        except BaseException:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "IpvsSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def _recv(self) -> bytes:
        return self.sock.recv(1 << 20)

    def _resolve_family(self) -> int:
        seq = self._next_seq()
        body = _GENLHDR.pack(CTRL_CMD_GETFAMILY, 1, 0) + _nla(CTRL_ATTR_FAMILY_NAME, IPVS_GENL_NAME.encode() + b"\0")
        self.sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), GENL_ID_CTRL, NLM_F_REQUEST, seq, 0) + body)
        data = self._recv()
        for kind, _flags, _seq, start, end in iter_messages(data):
            if kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, start)[0]
                raise IpvsError("the kernel has no IPVS generic-netlink family (modprobe ip_vs)", code)
            attrs = parse_attrs(data, start + _GENLHDR.size, end)
            return struct.unpack("=H", attrs[CTRL_ATTR_FAMILY_ID][:2])[0]
        raise IpvsError("no answer resolving the IPVS netlink family")

    # -------------------------------------------------------------- commands

    def execute(self, requests: Sequence[Request]) -> int:
        """Sends `requests` in batches and returns how many sends it took. Only the last
        request of a batch asks for an ack (the kernel answers every other request only when
        it fails), so a batch costs one send and, normally, one small read. Raises IpvsError
        naming the first refused request, after the whole batch was answered."""
        trips = 0
        i = 0
        while i < len(requests):
            batch: list[tuple[int, Request, bytes]] = []
            size = 0
            while i < len(requests) and size < BATCH_BYTES:
                attrs = requests[i].attrs()
                batch.append((self._next_seq(), requests[i], attrs))
                size += _NLMSGHDR.size + _GENLHDR.size + len(attrs)
                i += 1
            last_seq = batch[-1][0]
            self.sock.send(b"".join(
                encode_message(self.family, req.cmd, attrs, NLM_F_REQUEST | (NLM_F_ACK if seq == last_seq else 0), seq)
                for seq, req, attrs in batch))
            trips += 1
            self._read_answers({seq: req for seq, req, _ in batch}, last_seq)
        return trips

    def _read_answers(self, pending: dict[int, Request], last_seq: int) -> None:
        """Reads error messages until the ack of `last_seq`; raises the first failure."""
        failure: IpvsError | None = None
        while True:
            try:
                answer = self._recv()
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    raise IpvsError("the kernel refused so many requests that their errors overflowed "
                                    "the socket buffer", errno.ENOBUFS) from None
                raise
            for kind, _flags, seq, start, _end in iter_messages(answer):
                if kind != NLMSG_ERROR or seq not in pending:
                    continue
                code = -struct.unpack_from("=i", answer, start)[0]
                if code and failure is None:
                    failure = IpvsError(f"{pending[seq].describe()}: {os.strerror(code)}", code)
                if seq == last_seq:
                    if failure is not None:
                        raise failure
                    return

    def _dump(self, cmd: int, attrs: bytes) -> Iterator[dict[int, bytes]]:
        """Runs one dump; yields the nested attribute (SERVICE or DEST) of every answer."""
        seq = self._next_seq()
        self.sock.send(encode_message(self.family, cmd, attrs, NLM_F_REQUEST | NLM_F_DUMP, seq))
        nested = CMD_ATTR_SERVICE if cmd == CMD_GET_SERVICE else CMD_ATTR_DEST
        while True:
            data = self._recv()
            for kind, _flags, mseq, start, end in iter_messages(data):
                if mseq != seq:
                    continue
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, start)[0]
                    if code:
                        raise IpvsError(f"IPVS dump: {os.strerror(code)}", code)
                    return
                top = parse_attrs(data, start + _GENLHDR.size, end)
                if nested in top:
                    yield parse_attrs(top[nested])

    def services(self) -> list[VirtualServer]:
        """Every virtual server the kernel holds (fwmark services are skipped: not ours)."""
        return [parse_service(a) for a in self._dump(CMD_GET_SERVICE, b"") if SVC_ADDR in a]

    def dests(self, vs: VirtualServer) -> list[DestStatus]:
        attrs = _nla(CMD_ATTR_SERVICE | NLA_F_NESTED, encode_service_key(vs))
        return [parse_dest(a) for a in self._dump(CMD_GET_DEST, attrs)]

    def flush(self) -> None:
        """Deletes every virtual server (all of IPVS in this namespace, as kube-proxy's cleanup)."""
        seq = self._next_seq()
        self.sock.send(encode_message(self.family, CMD_FLUSH, b"", NLM_F_REQUEST | NLM_F_ACK, seq))
        while True:
            data = self._recv()
            for kind, _flags, mseq, start, _end in iter_messages(data):
                if kind == NLMSG_ERROR and mseq == seq:
                    code = -struct.unpack_from("=i", data, start)[0]
                    if code:
                        raise IpvsError(f"IPVS flush: {os.strerror(code)}", code)
                    return


def ignore_missing(exc: IpvsError) -> bool:
    """True for errors meaning "already gone" (a concurrent delete or drained real server)."""
    return exc.errno in (errno.ESRCH, errno.ENOENT)

