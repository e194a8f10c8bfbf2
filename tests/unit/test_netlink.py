"""kproxy/netlink: hex dumps of messages with their decoded form (byte layout as the kernel's
uapi headers define it), declarative attribute tables, message iteration and error payloads."""
from __future__ import annotations

import struct

import pytest

from kproxy.ipvs import ipset
from kproxy.ipvs import netlink as ipvs
from kproxy.ipvs.model import RealServer, VirtualServer
from kproxy.netlink import message as m
from kproxy.netlink.attrs import BE16, STRING, U32, Attr, AttrTable


def hexdump(*lines: str) -> bytes:
    """Bytes from hex written a field per group (spaces and line breaks are for the reader)."""
    return bytes.fromhex("".join(lines).replace(" ", ""))


# genl controller: resolve the family "IPVS" (what IpvsSocket sends first)
GETFAMILY_IPVS = hexdump(
    "20000000 1000 0100 01000000 00000000",  # nlmsghdr: len 32, GENL_ID_CTRL, NLM_F_REQUEST, seq 1, pid 0
    "03 01 0000",                            # genlmsghdr: CTRL_CMD_GETFAMILY, version 1
    "0900 0200 4950565300 000000")           # CTRL_ATTR_FAMILY_NAME "IPVS\0", padded to 4

# IPVS "add real server TCP 10.96.0.10:80 -> 10.244.1.2:8080" (weight 1, masquerade)
NEW_DEST_ATTRS = hexdump(
    "3000 0180",                                             # IPVS_CMD_ATTR_SERVICE, nested
    "0600 0100 0200 0000", "0600 0200 0600 0000",            # af AF_INET, protocol TCP (host u16)
    "1400 0300 0a60000a 000000000000000000000000",           # addr, 16 bytes
    "0600 0400 0050 0000",                                   # port 80, network order
    "4800 0280",                                             # IPVS_CMD_ATTR_DEST, nested
    "1400 0100 0af40102 000000000000000000000000",           # addr
    "0600 0200 1f90 0000",                                   # port 8080
    "0800 0300 00000000", "0800 0400 01000000",              # fwd method MASQ, weight 1
    "0800 0500 00000000", "0800 0600 00000000",              # upper/lower thresholds
    "0600 0b00 0200 0000")                                   # addr family AF_INET

# ipset "create S bitmap:port range 30000-32767" at revision 3
CREATE_BITMAP = hexdump(
    "58000000 0206 0100 05000000 00000000",   # nlmsghdr: (NFNL_SUBSYS_IPSET << 8) | CREATE, seq 5
    "02 00 0000",                             # nfgenmsg: NFPROTO_IPV4
    "0500 0100 06 000000",                    # protocol 6
    "0600 0200 5300 0000",                    # setname "S"
    "1000 0300 6269746d61703a706f727400",     # typename "bitmap:port"
    "0500 0400 03 000000", "0500 0500 02 000000",  # revision 3, family ipv4
    "1400 0780",                              # data, nested
    "0600 0440 7530 0000", "0600 0540 7fff 0000")  # port, port_to: NLA_F_NET_BYTEORDER, be16


def test_genl_getfamily_bytes_and_decoded_form():
    encoded = m.encode_genl(ipvs.GENL_ID_CTRL, ipvs.CTRL_CMD_GETFAMILY, 1, m.NLM_F_REQUEST, 1,
                            ipvs.CTRL.encode({"family_name": "IPVS"}))
    assert encoded == GETFAMILY_IPVS
    (msg,) = m.iter_messages(GETFAMILY_IPVS)
    assert (msg.kind, msg.flags, msg.seq) == (ipvs.GENL_ID_CTRL, m.NLM_F_REQUEST, 1)
    assert m.GENLMSGHDR.unpack_from(msg.payload) == (ipvs.CTRL_CMD_GETFAMILY, 1, 0)
    assert ipvs.CTRL.decode(msg.payload, 4) == {"family_name": "IPVS"}


def test_ipvs_request_bytes_and_decoded_form():
    request = ipvs.Request(ipvs.CMD_NEW_DEST, VirtualServer("10.96.0.10", 80, "TCP", "rr"), RealServer("10.244.1.2", 8080, 1))
    assert request.attrs() == NEW_DEST_ATTRS
    decoded = ipvs.COMMAND.decode(NEW_DEST_ATTRS)
    assert decoded == {
        "service": {"af": 2, "protocol": 6, "addr": bytes([10, 96, 0, 10]) + bytes(12), "port": 80},
        "dest": {"addr": bytes([10, 244, 1, 2]) + bytes(12), "port": 8080, "fwd_method": 0, "weight": 1,
                 "u_threshold": 0, "l_threshold": 0, "addr_family": 2}}


def test_ipset_create_bytes_and_decoded_form():
    kind = ipset.SetType("bitmap:port", port_range=(30000, 32767))
    assert ipset._message(ipset.CMD_CREATE, 5, ipset.create_attrs("S", kind, 3)) == CREATE_BITMAP
    (msg,) = m.iter_messages(CREATE_BITMAP)
    assert msg.kind == ipset.NFNL_SUBSYS_IPSET << 8 | ipset.CMD_CREATE
    assert ipset.COMMAND.decode(msg.payload, 4) == {
        "protocol": 6, "setname": "S", "typename": "bitmap:port", "revision": 3, "family": 2,
        "data": {"port": 30000, "port_to": 32767}}


def test_error_payload_names_the_refused_request():
    # NLMSG_ERROR answering seq 7 with ENOENT, echoing the request's header
    datagram = hexdump("24000000 0200 0001 07000000 00000000", "feffffff",
                       "20000000 1000 0100 07000000 00000000")
    (msg,) = m.iter_messages(datagram)
    assert msg.kind == m.NLMSG_ERROR
    answer = m.parse_error(msg.payload)
    assert (answer.errno, answer.seq) == (2, 7) and answer.echo[:4] == b"\x20\0\0\0"
    assert m.parse_error(struct.pack("=i", 0), seq=9) == m.ErrorAnswer(0, 9, b"")  # an ack without echo


def test_several_messages_in_one_datagram_and_a_truncated_tail():
    one = m.encode_nfnl(10, 1, m.NLM_F_DUMP, 3, 2, ((1, m.string("kproxy")),))
    done = m.encode_nlmsg(m.NLMSG_DONE, m.NLM_F_MULTI, 3, struct.pack("=i", 0))
    got = list(m.iter_messages(one + one + done + done[:10]))
    assert [(x.kind, x.seq) for x in got] == [(10 << 8 | 1, 3), (10 << 8 | 1, 3), (m.NLMSG_DONE, 3)]
    assert m.parse_attrs(got[0].payload, 4) == {1: b"kproxy\0"}
    assert m.with_flags(one, m.NLM_F_ACK)[6] == one[6] | m.NLM_F_ACK and m.with_flags(one, m.NLM_F_ACK)[8:] == one[8:]


def test_attribute_tables_check_themselves_and_skip_what_they_do_not_know():
    with pytest.raises(ValueError, match="used twice"):
        AttrTable("bad", (Attr("a", 1, U32), Attr("b", 1, U32)))
    table = AttrTable("t", (Attr("name", 1, STRING), Attr("port", 2, BE16, net_byteorder=True)))
    with pytest.raises(KeyError, match="t has no attribute 'nope'"):
        table.encode({"nope": None})
    tree = table.encode({"port": 80, "name": "x"})
    assert tree == ((2 | m.NLA_F_NET_BYTEORDER, b"\x00\x50"), (1, b"x\0"))  # the values' order
    data = m.encode_attrs(tree + ((9, b"new kernel"),))
    assert table.decode(data) == {"port": 80, "name": "x"}
    assert table.encode({"name": None}) == ()  # None: left out


# ctnetlink: delete the UDP entry 10.0.0.5:4000 -> 10.96.0.10:53 (named by its original tuple)
CT_DELETE = hexdump(
    "48000000 0201 0100 09000000 00000000",  # nlmsghdr: (NFNL_SUBSYS_CTNETLINK << 8) | CT_DELETE, seq 9
    "02 00 0000",                             # nfgenmsg: AF_INET
    "3400 0180",                              # CTA_TUPLE_ORIG, nested
    "1400 0180", "0800 0100 0a000005", "0800 0200 0a60000a",  # CTA_TUPLE_IP: v4 src, v4 dst
    "1c00 0280", "0500 0100 11 000000",       # CTA_TUPLE_PROTO: protocol 17
    "0600 0200 0fa0 0000", "0600 0300 0035 0000")  # source port 4000, destination port 53 (be16)


def test_conntrack_delete_bytes_and_a_dump_answer_decoded():
    from kproxy.netlink import conntrack as ct

    entry = ct.Entry("ipv4", "udp", ct.Tuple("10.0.0.5", "10.96.0.10", 4000, 53),
                     ct.Tuple("10.244.1.2", "10.0.0.5", 5353, 4000))
    assert ct.delete_message(entry, 9) == CT_DELETE
    # a dump answer carries both tuples, the TCP state and more (status, timeouts: skipped)
    answer = m.NFGENMSG.pack(2, 0, 0) + m.encode_attrs(ct.ENTRY.encode({
        "orig": {"ip": {"v4_src": "10.0.0.5", "v4_dst": "10.96.0.10"},
                 "proto": {"num": 6, "src_port": 4000, "dst_port": 53}},
        "reply": {"ip": {"v4_src": "10.96.0.10", "v4_dst": "10.0.0.5"},
                  "proto": {"num": 6, "src_port": 53, "dst_port": 4000}},
        "status": 8, "protoinfo": {"tcp": {"state": ct.TCP_CONNTRACK_SYN_SENT}}}) + ((7, b"\0\0\0\x78"),))
    assert ct.parse_entry("ipv4", answer) == ct.Entry(
        "ipv4", "tcp", ct.Tuple("10.0.0.5", "10.96.0.10", 4000, 53), ct.Tuple("10.96.0.10", "10.0.0.5", 53, 4000),
        tcp_state=ct.TCP_CONNTRACK_SYN_SENT)
