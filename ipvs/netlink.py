"""Our own encoder for the IPVS generic-netlink family (reference: include/uapi/linux/ip_vs.h).

Why not pyroute2's IPVS: 0.9.7 sends DEL for "update", its from_message() drops the kernel's
timeout/flags/fwd_method, and every call is one round trip through its asyncio core. Here a
change list is encoded into as few send() calls as the socket buffer allows (many requests per
datagram, one ack per datagram), so a full sync of 100k objects costs a few hundred round trips.

The netlink layer (headers, attributes, socket, errors) is kproxy.netlink; this module holds
the IPVS attribute tables and commands.

Guarantees:
- `encode_*` and `parse_*` are pure (bytes in, bytes/values out) and unit-tested on any kernel.
- `IpvsSocket.execute(requests)` sends every request (only the last of each batch asks for
  an ack: the kernel reports the others only when they fail); the first kernel error is raised
  as IpvsError naming the request that failed (the kernel keeps processing the rest of a
  batch: IPVS has no transactions, so a failed apply leaves a partial change and the caller
  must re-read the kernel, which the backend's next full sync does).
- Dumps return VirtualServer / RealServer values with exactly what the kernel reported.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from kproxy.netlink.attrs import BE16, BINARY, STRING, U16, U32, Attr, AttrTable, Scalar
from kproxy.netlink.message import (  # noqa: F401 (re-exported: the flags IPVS callers pass)
    NETLINK_GENERIC, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, encode_attrs, encode_genl, parse_attrs)
from kproxy.netlink.socket import NetlinkError, NetlinkSocket

from .model import RealServer, VirtualServer

# generic netlink's controller (genetlink.h): resolves a family name to its message type
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL = AttrTable("genl ctrl", (Attr("family_id", 1, U16), Attr("family_name", 2, STRING)))

# ip_vs.h
IPVS_GENL_NAME = "IPVS"
IPVS_GENL_VERSION = 1
CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8
CMD_FLUSH = 17
FWD_MASQ = 0

SERVICE = AttrTable("ipvs service", (
    Attr("af", 1, U16), Attr("protocol", 2, U16), Attr("addr", 3, BINARY), Attr("port", 4, BE16),
    Attr("fwmark", 5, U32), Attr("sched_name", 6, STRING), Attr("flags", 7, Scalar("flags/mask", "=II")),
    Attr("timeout", 8, U32), Attr("netmask", 9, BINARY)))  # netmask: be32 (IPv4) or a prefix length
DEST = AttrTable("ipvs dest", (
    Attr("addr", 1, BINARY), Attr("port", 2, BE16), Attr("fwd_method", 3, U32), Attr("weight", 4, U32),
    Attr("u_threshold", 5, U32), Attr("l_threshold", 6, U32), Attr("active_conns", 7, U32),
    Attr("inact_conns", 8, U32), Attr("persist_conns", 9, U32), Attr("addr_family", 11, U16)))
COMMAND = AttrTable("ipvs command", (Attr("service", 1, SERVICE), Attr("dest", 2, DEST)))

CMD_ATTR_SERVICE, CMD_ATTR_DEST = COMMAND.number("service"), COMMAND.number("dest")
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK, SVC_SCHED_NAME, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK = (
    a.number for a in SERVICE.attrs)
DEST_ADDR, DEST_PORT, DEST_FWD_METHOD, DEST_WEIGHT = (DEST.number(n) for n in ("addr", "port", "fwd_method", "weight"))

PROTOCOLS = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP, "SCTP": 132}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}

BATCH_BYTES = 96 * 1024  # below the default netlink send buffer (212992) with room for acks
_HEADERS = 16 + 4  # nlmsghdr + genlmsghdr


class IpvsError(NetlinkError):
    """The kernel refused a request (errno + which request), or IPVS is missing."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(code, reason=message)


# ------------------------------------------------------------------ pure encoding


def _addr16(ip: str) -> tuple[int, bytes]:
    addr = ipaddress.ip_address(ip)
    raw = addr.packed
    return (socket.AF_INET if addr.version == 4 else socket.AF_INET6), raw + b"\0" * (16 - len(raw))


def service_key(vs: VirtualServer) -> dict[str, Any]:
    """The SERVICE attributes identifying `vs` (af, protocol, addr, port)."""
    af, addr = _addr16(vs.address)
    return {"af": af, "protocol": PROTOCOLS[vs.protocol], "addr": addr, "port": vs.port}


def service_values(vs: VirtualServer) -> dict[str, Any]:
    """The full SERVICE attributes: key plus scheduler, flags, persistence timeout, netmask."""
    values = service_key(vs)
    v4 = values["af"] == socket.AF_INET
    values.update(sched_name=vs.scheduler, flags=(vs.flags, 0xFFFFFFFF), timeout=vs.timeout,
                  netmask=(0xFFFFFFFF).to_bytes(4, "big") if v4 else (128).to_bytes(4, "little"))
    return values


def dest_values(rs: RealServer, full: bool = True) -> dict[str, Any]:
    af, addr = _addr16(rs.address)
    values: dict[str, Any] = {"addr": addr, "port": rs.port}
    if full:
        values.update(fwd_method=FWD_MASQ, weight=rs.weight, u_threshold=0, l_threshold=0, addr_family=af)
    return values


def encode_service_key(vs: VirtualServer) -> bytes:
    return encode_attrs(SERVICE.encode(service_key(vs)))


def encode_service(vs: VirtualServer) -> bytes:
    return encode_attrs(SERVICE.encode(service_values(vs)))


def encode_dest(rs: RealServer, full: bool = True) -> bytes:
    return encode_attrs(DEST.encode(dest_values(rs, full)))


def encode_message(family: int, cmd: int, attrs: bytes, flags: int, seq: int) -> bytes:
    return encode_genl(family, cmd, IPVS_GENL_VERSION, flags, seq, attrs)


@dataclass(frozen=True)
class Request:
    """One IPVS command: `cmd` with the service attribute and, for dest commands, the dest."""

    cmd: int
    service: VirtualServer
    dest: RealServer | None = None

    def attrs(self) -> bytes:
        full_service = self.cmd in (CMD_NEW_SERVICE, CMD_SET_SERVICE)
        values = {"service": service_values(self.service) if full_service else service_key(self.service),
                  "dest": None if self.dest is None else dest_values(self.dest, full=self.cmd != CMD_DEL_DEST)}
        return encode_attrs(COMMAND.encode(values))

    def describe(self) -> str:
        names = {CMD_NEW_SERVICE: "add service", CMD_SET_SERVICE: "edit service", CMD_DEL_SERVICE: "delete service",
                 CMD_NEW_DEST: "add real server", CMD_SET_DEST: "edit real server",
                 CMD_DEL_DEST: "delete real server"}
        text = f"{names.get(self.cmd, self.cmd)} {self.service.describe()}"
        return text + (f" -> {self.dest.address}:{self.dest.port}" if self.dest else "")


# ------------------------------------------------------------------ pure decoding


def _ip(raw: bytes, af: int) -> str:
    return str(ipaddress.ip_address(raw[:4] if af == socket.AF_INET else raw[:16]))


def parse_service(attrs: dict[int, bytes]) -> VirtualServer:
    """The virtual server of a SERVICE nest (split by number: parse_attrs)."""
    v = SERVICE.values(attrs)
    return VirtualServer(
        address=_ip(v["addr"], v["af"]), port=v["port"],
        protocol=PROTOCOL_NAMES.get(v["protocol"], "?"), scheduler=v.get("sched_name", ""),
        flags=v["flags"][0] & ~0x2 if "flags" in v else 0,  # IP_VS_SVC_F_HASHED is the kernel's own bookkeeping
        timeout=v.get("timeout", 0))


@dataclass(frozen=True)
class DestStatus:
    """A real server as the kernel holds it, with its connection counters."""

    server: RealServer
    fwd_method: int
    active: int
    inactive: int


def parse_dest(attrs: dict[int, bytes]) -> DestStatus:
    """The real server of a DEST nest (split by number: parse_attrs)."""
    v = DEST.values(attrs)
    rs = RealServer(_ip(v["addr"], v.get("addr_family", socket.AF_INET)), v["port"], v.get("weight", 0))
    return DestStatus(rs, v.get("fwd_method", 0) & 0x7, v.get("active_conns", 0), v.get("inact_conns", 0))


# ------------------------------------------------------------------ the socket


class IpvsSocket(NetlinkSocket):
    """A generic-netlink socket bound to the IPVS family, in the calling thread's netns."""

    def __init__(self) -> None:
        super().__init__(NETLINK_GENERIC, 8 << 20)
        try:
            self.family = self._resolve_family()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "IpvsSocket":
        return self

    def _resolve_family(self) -> int:
        seq = self.next_seq()
        message = encode_genl(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, NLM_F_REQUEST, seq,
                              CTRL.encode({"family_name": IPVS_GENL_NAME}))
        try:
            for answer in self.request(message, seq):
                return CTRL.decode(answer.payload, 4)["family_id"]
        except NetlinkError as exc:
            raise IpvsError("the kernel has no IPVS generic-netlink family (modprobe ip_vs)", exc.errno) from None
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
                batch.append((self.next_seq(), requests[i], attrs))
                size += _HEADERS + len(attrs)
                i += 1
            last_seq = batch[-1][0]
            self.send(b"".join(
                encode_message(self.family, req.cmd, attrs, NLM_F_REQUEST | (NLM_F_ACK if seq == last_seq else 0), seq)
                for seq, req, attrs in batch))
            trips += 1
            pending = {seq: req for seq, req, _ in batch}
            try:
                refused = self.errors(last_seq, pending)
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    raise IpvsError("the kernel refused so many requests that their errors overflowed "
                                    "the socket buffer", errno.ENOBUFS) from None
                raise
            if refused:
                first = refused[0]
                raise IpvsError(f"{pending[first.seq].describe()}: {os.strerror(first.errno)}", first.errno)
        return trips

    def _dump(self, cmd: int, attrs: bytes) -> Iterator[dict[int, bytes]]:
        """Runs one dump; yields the nested attribute (SERVICE or DEST) of every answer."""
        seq = self.next_seq()
        nested = CMD_ATTR_SERVICE if cmd == CMD_GET_SERVICE else CMD_ATTR_DEST
        try:
            for answer in self.request(encode_message(self.family, cmd, attrs, NLM_F_REQUEST | NLM_F_DUMP, seq), seq):
                top = parse_attrs(answer.payload, 4)
                if nested in top:
                    yield parse_attrs(top[nested])
        except NetlinkError as exc:
            raise IpvsError(f"IPVS dump: {exc.strerror}", exc.errno) from None

    def services(self) -> list[VirtualServer]:
        """Every virtual server the kernel holds (fwmark services are skipped: not ours)."""
        return [parse_service(a) for a in self._dump(CMD_GET_SERVICE, b"") if SVC_ADDR in a]

    def dests(self, vs: VirtualServer) -> list[DestStatus]:
        attrs = encode_attrs(COMMAND.encode({"service": service_key(vs)}))
        return [parse_dest(a) for a in self._dump(CMD_GET_DEST, attrs)]

    def flush(self) -> None:
        """Deletes every virtual server (all of IPVS in this namespace, as kube-proxy's cleanup)."""
        seq = self.next_seq()
        try:
            for _ in self.request(encode_message(self.family, CMD_FLUSH, b"", NLM_F_REQUEST | NLM_F_ACK, seq), seq):
                pass
        except NetlinkError as exc:
            raise IpvsError(f"IPVS flush: {exc.strerror}", exc.errno) from None


def ignore_missing(exc: IpvsError) -> bool:
    """True for errors meaning "already gone" (a concurrent delete or drained real server)."""
    return exc.errno in (errno.ESRCH, errno.ENOENT)

