"""The node's local addresses (IPv4 and IPv6), read from the kernel in the agent's namespace,
and followed.

NodePorts are served on the addresses of the node's interfaces (kube-proxy reads them from the
kernel too), not on the Node object's status.addresses. Addresses on kproxy's own dummy device
(kube-ipvs0, where ipvs mode binds Service IPs) are not node addresses and are left out, and so
are IPv6 link-local addresses (fe80::/10: scoped to one link, no NodePort is reached there).

How changes are followed: a rtnetlink socket subscribed to RTMGRP_IPV4_IFADDR, opened on the
namespace's thread (a socket stays in the namespace it was created in) and read by the asyncio
loop (add_reader). Any burst of address events leads to one fresh dump; the callback is called
only when the set of addresses differs. Subscribing before the first dump means no change
between the two is missed. Both families (RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR): each
backend pass takes its own family's (kproxy.agent.families).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ipaddress
import struct
from typing import Callable, Iterator

from kproxy.agent.protocols import Namespace

log = logging.getLogger(__name__)

NETLINK_ROUTE = 0
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
RTM_NEWADDR, RTM_GETADDR = 20, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL = 1, 2, 3
EXCLUDED_DEVICES = ("kube-ipvs0",)  # kproxy's dummy device for Service IPs (ipvs mode)

_NLMSGHDR = struct.Struct("=IHHII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTATTR = struct.Struct("=HH")


def _align(n: int) -> int:
    return (n + 3) & ~3


def dump_request(seq: int, family: int = socket.AF_UNSPEC) -> bytes:
    """An RTM_GETADDR dump request for the addresses of `family` (AF_UNSPEC: every family)."""
    body = _IFADDRMSG.pack(family, 0, 0, 0, 0)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def _messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            return
        yield mtype, data[offset + _NLMSGHDR.size:offset + length]
        offset += _align(length)


def parse_address(payload: bytes) -> tuple[int, str, str] | None:
    """(interface index, label, address) of one RTM_NEWADDR payload; None unless IPv4 or a
    non-link-local IPv6 address. The label is the device name (or its alias, "eth0:1"); IPv6
    addresses carry none (""). The address is IFA_LOCAL, else IFA_ADDRESS."""
    if len(payload) < _IFADDRMSG.size:
        return None
    family, _prefix, _flags, _scope, index = _IFADDRMSG.unpack_from(payload)
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    attrs: dict[int, bytes] = {}
    offset = _IFADDRMSG.size
    while offset + _RTATTR.size <= len(payload):
        length, kind = _RTATTR.unpack_from(payload, offset)
        if length < _RTATTR.size:
            break
        attrs[kind & 0x3FFF] = payload[offset + _RTATTR.size:offset + length]
        offset += _align(length)
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    if raw is None or len(raw) != (4 if family == socket.AF_INET else 16):
        return None
    address = ipaddress.ip_address(raw)
    if address.is_link_local and address.version == 6:
        return None
    label = attrs.get(IFA_LABEL, b"").split(b"\0", 1)[0].decode(errors="replace")
    return index, label, str(address)


def node_addresses(entries: list[tuple[str, str]]) -> tuple[str, ...]:
    """The node's addresses among (device label, address) pairs: sorted (IPv4 first), unique,
    without those on an excluded device."""
    kept = {ip for label, ip in entries if label.split(":", 1)[0] not in EXCLUDED_DEVICES}
    return tuple(sorted(kept, key=lambda ip: (":" in ip, ipaddress.ip_address(ip).packed)))


def read_local_ipv4() -> tuple[str, ...]:
    """The IPv4 addresses of this thread's namespace (one netlink dump)."""
    return tuple(ip for ip in read_local_ips() if ":" not in ip)


def _device(index: int, label: str) -> str:
    """An address's device label; an IPv6 address has none, so its interface's name."""
    if label:
        return label
    try:
        return socket.if_indextoname(index)
    except OSError:  # the interface went away meanwhile
        return ""


def read_local_ips() -> tuple[str, ...]:
    """The IPv4 and IPv6 addresses of this thread's namespace (one netlink dump)."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        sock.send(dump_request(1))
        entries: list[tuple[str, str]] = []
        while True:
            for mtype, payload in _messages(sock.recv(1 << 16)):
                if mtype == NLMSG_DONE:
                    return node_addresses(entries)
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
                    if code:
                        raise OSError(code, f"reading addresses: {errno.errorcode.get(code, code)}")
                    continue
                if mtype == RTM_NEWADDR:
                    entry = parse_address(payload)
                    if entry is not None:
                        entries.append((_device(entry[0], entry[1]), entry[2]))


def _subscribe() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    try:
        sock.bind((0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class LocalAddressWatcher:
    """Keeps `addresses` equal to the namespace's addresses (both families) and calls on_change(addresses)
    on the event loop whenever they change. start() returns after the first read."""

    def __init__(self, netns: Namespace, on_change: Callable[[tuple[str, ...]], None]) -> None:
        self.netns = netns
        self.on_change = on_change
        self.addresses: tuple[str, ...] = ()
        self._sock: socket.socket | None = None
        self._dirty = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> tuple[str, ...]:
        self._sock = await self.netns.arun(_subscribe)
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._on_readable)
        await self._refresh()
        self._task = asyncio.create_task(self._loop(), name="local-addresses")
        return self.addresses

    def _on_readable(self) -> None:
        assert self._sock is not None
        try:
            while self._sock.recv(1 << 16):
                pass
        except BlockingIOError:
            pass
        except OSError as exc:  # ENOBUFS: events were lost; a fresh dump covers them
            log.debug("address events: %s", exc)
        self._dirty.set()

    async def _refresh(self) -> None:
        addresses = await self.netns.arun(read_local_ips)
        if addresses != self.addresses:
            log.info("node addresses: %s", ", ".join(addresses) or "none")
            self.addresses = addresses
            self.on_change(addresses)

    async def _loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._refresh()
            except OSError as exc:
                log.warning("reading the node's addresses failed (kept the last ones): %s", exc)

    async def stop(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
