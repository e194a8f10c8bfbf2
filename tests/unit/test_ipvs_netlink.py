"""Our IPVS generic-netlink encoding against the layout of include/uapi/linux/ip_vs.h."""
from __future__ import annotations

import socket
import struct

from kproxy.ipvs import netlink as nl
from kproxy.netlink.message import iter_messages
from kproxy.ipvs.model import RealServer, VirtualServer


def test_service_attribute_layout():
    vs = VirtualServer("10.96.0.10", 80, "TCP", "rr", 1, 600)
    attrs = nl.parse_attrs(nl.encode_service(vs))
    assert attrs[nl.SVC_AF] == struct.pack("=H", socket.AF_INET)
    assert attrs[nl.SVC_PROTOCOL] == struct.pack("=H", socket.IPPROTO_TCP)
    assert attrs[nl.SVC_ADDR] == socket.inet_aton("10.96.0.10") + b"\0" * 12
    assert attrs[nl.SVC_PORT] == b"\x00\x50"  # network order
    assert attrs[nl.SVC_SCHED_NAME] == b"rr\0"
    assert attrs[nl.SVC_FLAGS] == struct.pack("=II", 1, 0xFFFFFFFF)
    assert attrs[nl.SVC_TIMEOUT] == struct.pack("=I", 600)
    assert attrs[nl.SVC_NETMASK] == b"\xff\xff\xff\xff"
    assert nl.parse_service(attrs) == vs


def test_key_only_for_delete_and_dest_round_trip():
    vs = VirtualServer("10.96.0.10", 53, "UDP")
    req = nl.Request(nl.CMD_DEL_SERVICE, vs)
    top = nl.parse_attrs(req.attrs())
    assert set(nl.parse_attrs(top[nl.CMD_ATTR_SERVICE])) == {nl.SVC_AF, nl.SVC_PROTOCOL, nl.SVC_ADDR, nl.SVC_PORT}
    rs = RealServer("10.244.1.2", 5353, 3)
    top = nl.parse_attrs(nl.Request(nl.CMD_NEW_DEST, vs, rs).attrs())
    dest = nl.parse_attrs(top[nl.CMD_ATTR_DEST])
    assert dest[nl.DEST_FWD_METHOD] == struct.pack("=I", nl.FWD_MASQ)
    parsed = nl.parse_dest(dest)
    assert parsed.server == rs and parsed.fwd_method == nl.FWD_MASQ and parsed.active == 0
    # a delete names the real server only
    top = nl.parse_attrs(nl.Request(nl.CMD_DEL_DEST, vs, rs).attrs())
    assert set(nl.parse_attrs(top[nl.CMD_ATTR_DEST])) == {nl.DEST_ADDR, nl.DEST_PORT}


def test_message_header_and_iteration():
    msg = nl.encode_message(42, nl.CMD_NEW_SERVICE, b"", nl.NLM_F_REQUEST | nl.NLM_F_ACK, 7)
    two = msg + nl.encode_message(42, nl.CMD_DEL_SERVICE, b"\x08\x00\x01\x00abcd", nl.NLM_F_REQUEST, 8)
    got = [(kind, flags, seq) for kind, flags, seq, _payload in iter_messages(two)]
    assert got == [(42, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 7), (42, nl.NLM_F_REQUEST, 8)]
    assert msg[16:18] == bytes([nl.CMD_NEW_SERVICE, nl.IPVS_GENL_VERSION])


def test_kernel_flags_hashed_bit_is_ignored_and_describe():
    attrs = nl.parse_attrs(nl.encode_service(VirtualServer("10.0.0.1", 1, "SCTP", "mh", 0x18)))
    attrs[nl.SVC_FLAGS] = struct.pack("=II", 0x18 | 0x2, 0xFFFFFFFF)
    assert nl.parse_service(attrs).flags == 0x18
    req = nl.Request(nl.CMD_NEW_DEST, VirtualServer("10.0.0.1", 1, "SCTP"), RealServer("10.1.1.1", 2))
    assert req.describe() == "add real server SCTP 10.0.0.1:1 -> 10.1.1.1:2"
