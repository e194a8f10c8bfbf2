"""ipvs/ipset.py encoding without a kernel: message grouping, attribute layout, text form."""
from __future__ import annotations

import struct

from kproxy.ipvs import ipset
from kproxy.ipvs.ipset import ADT_BYTES, Member, SetOp, SetType, encode_ops, ops_text, parse_member
from kproxy.nftables import wire as w


def messages(data: bytes):
    return [(kind, flags, seq, payload) for kind, flags, seq, payload in w.iter_messages(data)]


def test_consecutive_adds_share_one_message_within_the_attribute_limit():
    members = [Member(f"10.0.{i // 256}.{i % 256}", "tcp", 80) for i in range(5000)]
    ops = ([SetOp("create", "S", SetType("hash:ip,port"))] + [SetOp("add", "S", m) for m in members]
           + [SetOp("del", "S", members[0]), SetOp("destroy", "T")])
    out = encode_ops(ops, {"hash:ip,port": 6}, first_seq=10)
    assert [seq for _, seq, _ in out] == list(range(10, 10 + len(out)))
    kinds = [struct.unpack_from("=H", m, 4)[0] for m, _, _ in out]
    assert all(k >> 8 == ipset.NFNL_SUBSYS_IPSET for k in kinds)
    cmds = [k & 0xFF for k in kinds]
    adds = cmds.count(ipset.CMD_ADD)
    assert cmds[0] == ipset.CMD_CREATE and cmds[-2:] == [ipset.CMD_DEL, ipset.CMD_DESTROY]
    assert 1 < adds < 5000  # grouped, and split at the attribute limit
    assert sum(len(g) for m, _, g in out if struct.unpack_from("=H", m, 4)[0] & 0xFF == ipset.CMD_ADD) == 5000
    decoded = []
    for message, _, group in out[1:1 + adds]:
        attrs = w.parse_attrs(message, 20)
        assert len(attrs[ipset.ATTR_ADT]) <= ADT_BYTES
        assert w.decode_string(attrs[ipset.ATTR_SETNAME]) == "S"
        entries = [data for kind, data in w.parse_attrs_list(attrs[ipset.ATTR_ADT]) if kind == ipset.ATTR_DATA]
        assert len(entries) == len(group)
        lines = [struct.unpack("=I", w.parse_attrs(d)[ipset.ATTR_CADT_LINENO])[0] for d in entries]
        assert lines == list(range(1, len(entries) + 1))
        decoded += [parse_member(d) for d in entries]
    assert decoded == members


def test_member_attributes_carry_network_byte_order_flags_and_round_trip():
    m = Member("10.1.2.3", "sctp", 3868, "10.9.8.7", "NodePort default/x:diameter")
    (message, _, _), = encode_ops([SetOp("add", "S", m)], {}, 1)
    adt = w.parse_attrs(message, 20)[ipset.ATTR_ADT]
    (_, data), = w.parse_attrs_list(adt)
    raw_types = []
    offset = 0
    while offset < len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        raw_types.append(kind)
        offset += (length + 3) & ~3
    assert ipset.ATTR_PORT | ipset.NLA_F_NET_BYTEORDER in raw_types  # the kernel refuses a port without it
    assert ipset.ATTR_IP | w.NLA_F_NESTED in raw_types
    assert parse_member(data) == m


def test_ops_text_is_ipset_restore_syntax():
    ops = [SetOp("create", "S", SetType("hash:ip,port", comment=True)),
           SetOp("add", "S", Member("10.0.0.1", "udp", 53, comment="ClusterIP kube-system/dns:dns")),
           SetOp("del", "S", Member("10.0.0.2", "tcp", 80, comment="gone")),
           SetOp("create", "P", SetType("bitmap:port")), SetOp("add", "P", Member(port=30080)),
           SetOp("destroy", "T")]
    assert ops_text(ops) == (
        "create S hash:ip,port family inet hashsize 1024 maxelem 1048576 comment -exist\n"
        'add S 10.0.0.1,udp:53 comment "ClusterIP kube-system/dns:dns" -exist\n'
        "del S 10.0.0.2,tcp:80 -exist\n"
        "create P bitmap:port range 0-65535 -exist\n"
        "add P 30080 -exist\n"
        "destroy T\n")


def test_a_net_member_carries_its_prefix_and_round_trips():
    """hash:ip,port,net (KUBE-IPVS-LB-SOURCE-CIDR): ip2 "address/prefix" is IP2 plus a u8 CIDR2."""
    m = Member("192.0.2.10", "tcp", 80, "203.0.113.0/24")
    (message, _, _), = encode_ops([SetOp("add", "S", m)], {}, 1)
    (_, data), = w.parse_attrs_list(w.parse_attrs(message, 20)[ipset.ATTR_ADT])
    assert w.parse_attrs(data)[ipset.ATTR_CIDR2] == bytes((24,))
    assert parse_member(data) == m
    assert m.text() == "192.0.2.10,tcp:80,203.0.113.0/24"
