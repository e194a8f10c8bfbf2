"""nf_tables netlink wire format: constants from include/uapi/linux/netfilter/nf_tables.h and the
pure-Python message encoder (the twin of kproxy/_fastpath_netlink.pxi).

An attribute tree is a tuple of (type, value) pairs where value is bytes (an encoded scalar)
or another attribute tree (nested; NLA_F_NESTED is set). Encoding is deterministic: the same
messages with the same sequence numbers give the same bytes, and the Cython encoder gives
byte-identical output (tests/unit/test_nft_wire.py).

nf_tables scalars are big-endian on the wire (be32/be64), except register contents (marks,
numgen/hash results, ct state), which are host-endian.
"""
from __future__ import annotations

from typing import Sequence

from kproxy.netlink.message import (  # noqa: F401 (the shared layer; nf_tables callers use these names)
    NETLINK_NETFILTER, NLA_F_NESTED, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_MULTI, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, Attrs, be16, be32, be64, decode_string,
    encode_attrs, encode_nfnl, encode_nlmsg, host32, iter_messages, parse_attrs, parse_attrs_list,
    string)

NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN = 16
NFNL_MSG_BATCH_END = 17
NFPROTO_IPV4 = 2
NFPROTO_IPV6 = 10

# -- message types (enum nf_tables_msg_types)
MSG_NEWTABLE, MSG_GETTABLE, MSG_DELTABLE = 0, 1, 2
MSG_NEWCHAIN, MSG_GETCHAIN, MSG_DELCHAIN = 3, 4, 5
MSG_NEWRULE, MSG_GETRULE, MSG_DELRULE = 6, 7, 8
MSG_NEWSET, MSG_GETSET, MSG_DELSET = 9, 10, 11
MSG_NEWSETELEM, MSG_GETSETELEM, MSG_DELSETELEM = 12, 13, 14
MSG_NEWGEN, MSG_GETGEN = 15, 16
GEN_ID = 1
NFNL_BATCH_GENID = 1
MSG_NAMES = {0: "add table", 1: "get table", 2: "delete table", 3: "add chain", 4: "get chain",
             5: "delete chain", 6: "add rule", 7: "get rule", 8: "flush/delete rule", 9: "add set",
             10: "get set", 11: "delete set", 12: "add element", 13: "get element",
             14: "delete element"}

# -- attributes
TABLE_NAME, TABLE_FLAGS = 1, 2
CHAIN_TABLE, CHAIN_HANDLE, CHAIN_NAME, CHAIN_HOOK, CHAIN_POLICY, CHAIN_USE, CHAIN_TYPE = 1, 2, 3, 4, 5, 6, 7
HOOK_HOOKNUM, HOOK_PRIORITY = 1, 2
RULE_TABLE, RULE_CHAIN, RULE_HANDLE, RULE_EXPRESSIONS = 1, 2, 3, 4
RULE_USERDATA = 7
LIST_ELEM = 1
EXPR_NAME, EXPR_DATA = 1, 2
SET_TABLE, SET_NAME, SET_FLAGS, SET_KEY_TYPE, SET_KEY_LEN, SET_DATA_TYPE, SET_DATA_LEN = 1, 2, 3, 4, 5, 6, 7
SET_POLICY, SET_DESC, SET_ID, SET_TIMEOUT = 8, 9, 10, 11
SET_USERDATA = 13
SET_EXPR = 17
SET_ELEM_KEY, SET_ELEM_DATA = 1, 2
SET_ELEM_LIST_TABLE, SET_ELEM_LIST_SET, SET_ELEM_LIST_ELEMENTS = 1, 2, 3
DATA_VALUE, DATA_VERDICT = 1, 2
VERDICT_CODE, VERDICT_CHAIN = 1, 2

# set flags, data types
SET_F_CONSTANT, SET_F_MAP, SET_F_TIMEOUT, SET_F_DYNAMIC = 0x2, 0x8, 0x10, 0x20  # EVAL = dynamic
DATA_TYPE_VERDICT = 0xFFFFFF00

# verdicts
NF_DROP, NF_ACCEPT = 0, 1
NFT_CONTINUE, NFT_BREAK, NFT_JUMP, NFT_GOTO, NFT_RETURN = -1, -2, -3, -4, -5

# hooks (enum nf_inet_hooks)
HOOK_PREROUTING, HOOK_INPUT, HOOK_FORWARD, HOOK_OUTPUT, HOOK_POSTROUTING = 0, 1, 2, 3, 4

# Elements per NEWSETELEM/DELSETELEM message: a nested attribute's length is 16 bits, so the
# element list of one message must stay under 64 KiB (a verdict-map element is ~60 bytes with a
# 60-character chain name).
ELEMENTS_PER_MESSAGE = 500

ELEMENT_OVERHEAD = 48  # attribute headers and padding of one verdict-map element


def elements_per_message(elements: Sequence["Element"]) -> int:
    """How many of `elements` fit in one message under the 64 KiB attribute limit."""
    if not elements:
        return ELEMENTS_PER_MESSAGE
    biggest = max(len(key) + (len(extra) + 1 if extra else 0) for key, _code, extra in elements)
    return max(1, min(ELEMENTS_PER_MESSAGE, 60000 // (biggest + ELEMENT_OVERHEAD)))


# ---------------------------------------------------------------- the encoder (pure twin)


def encode_message(msg_type: int, flags: int, seq: int, family: int, attrs: Attrs,
                   subsys: int = NFNL_SUBSYS_NFTABLES) -> bytes:
    """One nfnetlink message (nf_tables unless `subsys` says otherwise, e.g. ipset):
    nlmsghdr + nfgenmsg + attributes."""
    return encode_nfnl(subsys, msg_type, flags, seq, family, attrs)


def encode_batch_marker(msg_type: int, seq: int, genid: int = 0) -> bytes:
    """BATCH_BEGIN / BATCH_END: nfgenmsg with res_id = NFNL_SUBSYS_NFTABLES (big-endian). A
    BATCH_BEGIN with `genid` makes the kernel refuse the batch (ERESTART) unless its ruleset
    generation is still `genid`."""
    body = b"\0\0" + be16(NFNL_SUBSYS_NFTABLES)
    if genid:
        body += encode_attrs(((NFNL_BATCH_GENID, be32(genid)),))
    return encode_nlmsg(msg_type, NLM_F_REQUEST, seq, body)


Element = tuple  # (key: bytes, verdict_code: int | None, extra: str | bytes | None)
# extra: the chain of a jump/goto verdict (code set), or a data map element's value (code None)


def element_attrs(key: bytes, code: int | None, extra: str | bytes | None) -> Attrs:
    attrs: list = [(SET_ELEM_KEY, ((DATA_VALUE, key),))]
    if code is not None:
        verdict: list = [(VERDICT_CODE, be32(code))]
        if extra is not None:
            assert isinstance(extra, str), "a jump or goto element's extra is its chain's name"
            verdict.append((VERDICT_CHAIN, string(extra)))
        attrs.append((SET_ELEM_DATA, ((DATA_VERDICT, tuple(verdict)),)))
    elif extra is not None:
        attrs.append((SET_ELEM_DATA, ((DATA_VALUE, extra),)))
    return tuple(attrs)


def encode_elements(msg_type: int, flags: int, seq: int, family: int, table: str, set_name: str,
                    elements: Sequence[Element], per_message: int = ELEMENTS_PER_MESSAGE) -> list[bytes]:
    """NEWSETELEM/DELSETELEM messages for `elements`, `per_message` per message, numbered from
    `seq` upwards. Empty `elements`: one message without an element list (a DELSETELEM of that
    form flushes the set)."""
    head = ((SET_ELEM_LIST_TABLE, string(table)), (SET_ELEM_LIST_SET, string(set_name)))
    if not elements:
        return [encode_message(msg_type, flags, seq, family, head)]
    out = []
    for i in range(0, len(elements), per_message):
        chunk = tuple((LIST_ELEM, element_attrs(*e)) for e in elements[i:i + per_message])
        out.append(encode_message(msg_type, flags, seq, family, head + ((SET_ELEM_LIST_ELEMENTS, chunk),)))
        seq += 1
    return out
