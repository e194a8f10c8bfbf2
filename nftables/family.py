"""The address family of a kproxy table: what differs between `ip kproxy` and `ip6 kproxy`
(pure constants). Everything else in the table's layout is the same for both families."""
from __future__ import annotations

import socket
from dataclasses import dataclass

from . import wire as w


@dataclass(frozen=True)
class NftFamily:
    version: int  # 4 | 6
    name: str  # the nft family keyword and address prefix: "ip" | "ip6"
    nfproto: int
    addr_type: str  # nft's datatype of an address: ipv4_addr | ipv6_addr
    addr_len: int  # bytes of an address (its 32-bit registers: addr_len // 4)
    saddr_offset: int  # network-header offsets of the source and destination addresses
    daddr_offset: int
    loopback: str  # NodePorts never listen here (IPv4: unless route_localnet; IPv6: never)
    port_unreachable: int  # the ICMP (ICMPv6) code `reject` answers with
    socket_family: int

    @property
    def addr_regs(self) -> int:
        return self.addr_len // 4

    def pack(self, address: str) -> bytes:
        return socket.inet_pton(self.socket_family, address)


IP = NftFamily(4, "ip", w.NFPROTO_IPV4, "ipv4_addr", 4, 12, 16, "127.0.0.0/8", 3, socket.AF_INET)
IP6 = NftFamily(6, "ip6", w.NFPROTO_IPV6, "ipv6_addr", 16, 8, 24, "::1", 4, socket.AF_INET6)
BY_VERSION = {4: IP, 6: IP6}
