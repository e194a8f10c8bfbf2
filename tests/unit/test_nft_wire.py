"""The nf_tables message encoder: the pure twin (kproxy.nftables.wire) and the Cython encoder
(kproxy/_fastpath_netlink.pxi) give identical bytes; attributes are well-formed netlink."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from kproxy.nftables import wire as w
from kproxy.nftables.plan import plan_full
from kproxy.nftables.render import render
from kproxy.nftables.transaction import Transaction

try:
    from kproxy._fastpath import nft_encode_elements, nft_encode_message
except ImportError:  # the twin test must not pass silently without the extension
    nft_encode_elements = nft_encode_message = None

needs_extension = pytest.mark.skipif(
    nft_encode_message is None,
    reason="kproxy._fastpath lacks nft_encode_*: build it with `.venv/bin/python setup.py build_ext --inplace`")

scalars = st.binary(max_size=40)
trees = st.recursive(
    st.lists(st.tuples(st.integers(1, 30), scalars), max_size=4).map(tuple),
    lambda children: st.lists(st.tuples(st.integers(1, 30), st.one_of(scalars, children)), max_size=4).map(tuple),
    max_leaves=20)


def state(n: int) -> ProxyState:
    services = {}
    for i in range(n):
        eps = tuple(Endpoint(f"10.244.{i}.{j}", 8080, is_local=j % 2 == 0) for j in range(1, 4))
        sp = ServicePort("default", f"s{i}", "http", "TCP" if i % 2 else "UDP", 80 + i,
                         cluster_ips=(f"10.96.0.{i + 1}",), node_port=30000 + i if i % 3 == 0 else 0,
                         session_affinity_timeout=60 if i % 4 == 0 else None, endpoints=eps)
        services[sp.key] = sp
    return ProxyState("n1", node_ips=("10.200.0.11",), cluster_cidr="10.244.0.0/16", services=services)


@needs_extension
@settings(max_examples=200, deadline=None)
@given(trees, st.integers(0, 14), st.integers(0, 0xFFF), st.integers(0, 2**32 - 1))
def test_cython_message_encoder_is_byte_identical_to_the_twin(attrs, msg_type, flags, seq):
    assert nft_encode_message(msg_type, flags, seq, 2, attrs) == w.encode_message(msg_type, flags, seq, 2, attrs)


@needs_extension
@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=12), st.one_of(st.none(), st.integers(-5, 1)),
                          st.one_of(st.none(), st.text("abc/-_.0123456789", min_size=1, max_size=60)),
                          st.binary(min_size=1, max_size=16)),
                max_size=40),
       st.integers(1, 7))
def test_cython_element_encoder_is_byte_identical_to_the_twin(elements, per_message):
    # verdict elements (code, chain or None), data map elements (None, value) and set elements
    elements = [(k, c, ch) if c is not None else (k, None, data if ch else None) for k, c, ch, data in elements]
    assert nft_encode_elements(12, 0x400, 7, 2, "kproxy", "service-ips", elements, per_message) == \
        w.encode_elements(12, 0x400, 7, 2, "kproxy", "service-ips", elements, per_message)


@needs_extension
def test_a_whole_full_sync_batch_is_identical_with_both_encoders(monkeypatch):
    from kproxy.nftables import transaction

    ruleset = render(state(12))
    batches = []
    for message, elements in ((w.encode_message, w.encode_elements), (nft_encode_message, nft_encode_elements)):
        monkeypatch.setattr(transaction, "_encode_message", message)
        monkeypatch.setattr(transaction, "_encode_elements", elements)
        batches.append(plan_full(ruleset, ["stale"], ["service-ips"]).encode(100)[0])
    assert len(batches[0]) > 10000
    assert batches[0] == batches[1]


@given(trees)
def test_attributes_are_aligned_and_lengths_are_exact(attrs):
    data = w.encode_attrs(attrs)
    assert len(data) % 4 == 0
    assert _walk(data) == attrs


def _walk(data: bytes) -> tuple:
    out = []
    offset = 0
    while offset < len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        body = data[offset + 4:offset + length]
        out.append((kind & 0x3FFF, _walk(body) if kind & w.NLA_F_NESTED else body))
        offset += (length + 3) & ~3
    return tuple(out)


def test_message_header_and_batch_markers():
    msg = w.encode_message(w.MSG_NEWTABLE, w.NLM_F_CREATE, 42, w.NFPROTO_IPV4, ((w.TABLE_NAME, w.string("kproxy")),))
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", msg)
    assert (length, kind, flags, seq, pid) == (len(msg), (10 << 8) | 0, w.NLM_F_REQUEST | w.NLM_F_CREATE, 42, 0)
    assert msg[16:20] == bytes([2, 0, 0, 0])
    assert msg[20:] == struct.pack("=HH", 11, 1) + b"kproxy\0" + b"\0"
    begin = w.encode_batch_marker(w.NFNL_MSG_BATCH_BEGIN, 1)
    assert begin[4:6] == struct.pack("=H", 16) and begin[18:20] == b"\x00\x0a"  # res_id: NFNL_SUBSYS_NFTABLES, be16


def test_an_attribute_over_64k_is_refused():
    with pytest.raises(ValueError, match="limit 65535"):
        w.encode_attrs(((1, ((2, b"x" * 70000),)),))


def test_elements_are_split_so_each_message_stays_under_the_attribute_limit():
    elements = [(struct.pack(">I", i) + b"\x06\0\0\0\0\x50\0\0", w.NFT_GOTO, "service-" + "x" * 100)
                for i in range(2000)]
    per = w.elements_per_message(elements)
    msgs = w.encode_elements(w.MSG_NEWSETELEM, w.NLM_F_CREATE, 1, 2, "kproxy", "service-ips", elements, per)
    assert len(msgs) == -(-2000 // per) and len(msgs) > 4
    assert [struct.unpack_from("=I", m, 8)[0] for m in msgs] == list(range(1, len(msgs) + 1))
    assert sum(len(w.parse_attrs_list(w.parse_attrs(m, 20)[w.SET_ELEM_LIST_ELEMENTS])) for m in msgs) == 2000


def test_only_the_last_message_asks_for_an_ack_and_sequence_numbers_map_to_operations():
    tx = Transaction()
    tx.add_table()
    tx.flush_chain("services")
    data, described, last = tx.encode(10)
    msgs = list(w.iter_messages(data))
    assert [seq for _, _, seq, _ in msgs] == [10, 11, 12, 13]
    assert [bool(flags & w.NLM_F_ACK) for _, flags, _, _ in msgs] == [False, False, True, False]
    assert last == 12 and described[11] == "add table ip kproxy" and described[12] == "flush chain services"


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses(v=4).map(str), st.ip_addresses(v=4).map(str), st.sampled_from(["TCP", "UDP", "SCTP", 6]),
       st.integers(0, 65535), st.integers(0, 2**32 - 1), st.ip_addresses(v=6).map(str),
       st.ip_addresses(v=6).map(str))
def test_the_one_step_layouts_give_the_field_by_field_bytes(a, b, proto, port, mark, a6, b6):
    from kproxy.nftables.model import _FAST, encode_fields
    values = {"ipv4_addr": [a, b], "ipv6_addr": [a6, b6], "inet_proto": [proto], "inet_service": [port],
              "mark": [mark]}
    for types, fast in _FAST.items():
        taken = {k: list(v) for k, v in values.items()}
        value = tuple(taken[t].pop(0) for t in types)
        assert fast(value) == encode_fields(types, value), types
