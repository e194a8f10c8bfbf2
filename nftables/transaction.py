"""A knftables-style transaction: queue operations on the `ip kproxy` table, then encode them as
one nf_tables batch (BATCH_BEGIN ... BATCH_END) that the kernel applies atomically.

Operations are plain data (Op: kind, object, spec, elements), so a plan can be inspected and
applied to the in-memory table of nftables/fake.py as well as encoded. Every operation has a
one-line description, so an error the kernel reports for a message's sequence number names the
operation that caused it. Encoding uses the Cython encoder when the extension provides it, else
the pure twin (kproxy.nftables.wire); both give the same bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from . import wire as w
from .expr import Rule
from .model import FAMILY, TABLE, VERDICT_CODES, Chain, SetSpec, Verdict, encoder, key_text

try:  # the compiled encoder (kproxy/_fastpath_netlink.pxi); same bytes as the twin
    from kproxy._fastpath import nft_encode_elements as _encode_elements
    from kproxy._fastpath import nft_encode_message as _encode_message
    ENCODER = "cython"
except ImportError:
    _encode_elements = w.encode_elements
    _encode_message = w.encode_message
    ENCODER = "python"

# Op.kind: what an operation does (one nf_tables message each)
ADD_TABLE, DELETE_TABLE = "add table", "delete table"
ADD_CHAIN, FLUSH_CHAIN, DELETE_CHAIN = "add chain", "flush chain", "delete chain"
ADD_RULE = "add rule"
ADD_SET, FLUSH_SET, DELETE_SET = "add set", "flush set", "delete set"
ADD_ELEMENTS, DELETE_ELEMENTS = "add element", "delete element"


@dataclass(frozen=True)
class Op:
    """One queued operation as data: `kind` (above) on `object` (the table, chain or set name).
    `spec`: the Chain of add chain, the Rule of add rule, the SetSpec of add set and of element
    operations. `elements`: (key, value) pairs of an element operation (value None for a
    delete or a plain set). An element operation is one message: longer lists are split."""

    kind: str
    object: str
    spec: Any = None
    elements: tuple = ()
    wire: tuple = field(default=(), compare=False, repr=False)  # element ops: encoded elements
    per_message: int = field(default=w.ELEMENTS_PER_MESSAGE, compare=False, repr=False)

    @property
    def description(self) -> str:
        """One line in nft's words (formatted only when asked: errors, tests)."""
        if self.kind == ADD_RULE:
            return f"add rule {self.object} {self.spec.text}"
        if self.kind in (ADD_TABLE, DELETE_TABLE):
            return f"{self.kind} ip {self.object}"
        if self.kind == ADD_SET:
            return f"add {'map' if self.spec.is_map else 'set'} {self.object}"
        if self.kind in (ADD_ELEMENTS, DELETE_ELEMENTS):
            shown = ", ".join(key_text(self.spec, k) for k, _ in self.elements[:3])
            more = ", ..." if len(self.elements) > 3 else ""
            return f"{'add' if self.kind == ADD_ELEMENTS else 'delete'} element {self.object} {{ {shown}{more} }}"
        return f"{self.kind} {self.object}"


class Descriptions:
    """Sequence number -> description of the operation that sent it (formatted on lookup)."""

    def __init__(self, begin_seq: int) -> None:
        self.begin_seq = begin_seq
        self.ops: dict[int, Op] = {}

    def get(self, seq: int, default: str | None = None) -> str | None:
        if seq == self.begin_seq:
            return "commit of the batch"
        op = self.ops.get(seq)
        return op.description if op is not None else default

    def __getitem__(self, seq: int) -> str:
        text = self.get(seq)
        if text is None:
            raise KeyError(seq)
        return text


class Transaction:
    """Queue of operations on one table; `encode()` gives the batch bytes."""

    def __init__(self, table: str = TABLE, encode_message: Callable | None = None,
                 encode_elements: Callable | None = None, family: int = FAMILY) -> None:
        self.table = table
        self.family = family  # the table's NFPROTO (ip or ip6 kproxy)
        self.ops: list[Op] = []
        self._message = encode_message or _encode_message
        self._elements = encode_elements or _encode_elements
        self.owner_delta: dict = {}  # plan.ElementOwners changes that hold once this commits

    def __len__(self) -> int:
        return len(self.ops)

    # tables
    def add_table(self) -> None:
        self.ops.append(Op(ADD_TABLE, self.table))

    def delete_table(self) -> None:
        self.ops.append(Op(DELETE_TABLE, self.table))

    # chains
    def add_chain(self, chain: Chain) -> None:
        self.ops.append(Op(ADD_CHAIN, chain.name, chain))

    def flush_chain(self, name: str) -> None:
        self.ops.append(Op(FLUSH_CHAIN, name))

    def delete_chain(self, name: str) -> None:
        self.ops.append(Op(DELETE_CHAIN, name))

    def add_rule(self, chain: str, rule: Rule) -> None:
        self.ops.append(Op(ADD_RULE, chain, rule))

    # sets and maps
    def add_set(self, spec: SetSpec) -> None:
        self.ops.append(Op(ADD_SET, spec.name, spec))

    def flush_set(self, name: str) -> None:
        self.ops.append(Op(FLUSH_SET, name))

    def delete_set(self, name: str) -> None:
        self.ops.append(Op(DELETE_SET, name))

    def add_elements(self, spec: SetSpec, elements: Mapping[tuple, Verdict | None]) -> None:
        self._elements_op(ADD_ELEMENTS, spec, tuple(elements.items()))

    def delete_elements(self, spec: SetSpec, keys: Iterable[tuple]) -> None:
        self._elements_op(DELETE_ELEMENTS, spec, tuple((k, None) for k in keys))

    def _elements_op(self, kind: str, spec: SetSpec, items: tuple) -> None:
        """Queues one Op per message; the elements are encoded here, once."""
        if not items:
            return
        key_bytes = encoder(spec.key)
        if spec.verdict_map:
            raw = [(key_bytes(k), None, None) if v is None else (key_bytes(k), VERDICT_CODES[v[0]], v[1])
                   for k, v in items]
        elif spec.data:
            data_bytes = encoder(spec.data)
            raw = [(key_bytes(k), None, None if v is None else data_bytes(v)) for k, v in items]
        else:
            raw = [(key_bytes(k), None, None) for k, _ in items]
        per = w.elements_per_message(raw)
        for i in range(0, len(raw), per):
            self.ops.append(Op(kind, spec.name, spec, items[i:i + per], tuple(raw[i:i + per]), per))

    # encoding
    def _encode_op(self, op: Op, seq: int, set_id: int) -> list[bytes]:
        """The message(s) of `op` numbered from `seq`; `set_id`: the batch's NFTA_SET_ID count."""
        table = self.table
        kind = op.kind
        if kind == ADD_ELEMENTS or kind == DELETE_ELEMENTS:
            msg_type, flags = (w.MSG_NEWSETELEM, w.NLM_F_CREATE) if kind == ADD_ELEMENTS else (w.MSG_DELSETELEM, 0)
            return self._elements(msg_type, flags, seq, self.family, table, op.object, op.wire, op.per_message)
        if kind == ADD_RULE:
            attrs: tuple = ((w.RULE_TABLE, w.string(table)), (w.RULE_CHAIN, w.string(op.object)),
                            (w.RULE_EXPRESSIONS, op.spec.attrs))
            return [self._message(w.MSG_NEWRULE, w.NLM_F_CREATE | w.NLM_F_APPEND, seq, self.family, attrs)]
        if kind == FLUSH_SET:
            return self._elements(w.MSG_DELSETELEM, 0, seq, self.family, table, op.object, [])
        if kind == ADD_SET:
            return [self._message(w.MSG_NEWSET, w.NLM_F_CREATE, seq, self.family, _set_attrs(table, op.spec, set_id))]
        msg_type, flags, attrs = _ENCODERS[kind](table, op)
        return [self._message(msg_type, flags, seq, self.family, attrs)]

    def encode(self, first_seq: int, genid: int = 0) -> tuple[bytes, "Descriptions", int]:
        """(batch bytes, seq -> operation description, last seq). BATCH_BEGIN has `first_seq`
        (and `genid`: commit only if the kernel's generation is still that), the operations
        follow, BATCH_END carries last seq + 1."""
        parts = [w.encode_batch_marker(w.NFNL_MSG_BATCH_BEGIN, first_seq, genid)]
        described = Descriptions(first_seq)
        seq = first_seq + 1
        set_ids = 0  # NFTA_SET_ID: numbers the sets this batch adds
        for op in self.ops:
            if op.kind == ADD_SET:
                set_ids += 1
            msgs = self._encode_op(op, seq, set_ids)
            parts.extend(msgs)
            for _ in msgs:
                described.ops[seq] = op
                seq += 1
        last = seq - 1
        if len(parts) > 1:  # only the last message asks for an ACK: errors are always reported
            tail = bytearray(parts[-1])
            tail[6] |= w.NLM_F_ACK
            parts[-1] = bytes(tail)
        parts.append(w.encode_batch_marker(w.NFNL_MSG_BATCH_END, seq))
        return b"".join(parts), described, last


def _set_attrs(table: str, spec: SetSpec, set_id: int) -> tuple:
    attrs: list[tuple[int, Any]] = [(w.SET_TABLE, w.string(table)), (w.SET_NAME, w.string(spec.name)),
             (w.SET_FLAGS, w.be32(spec.flags)), (w.SET_KEY_TYPE, w.be32(spec.key_type)),
             (w.SET_KEY_LEN, w.be32(spec.key_len))]
    if spec.verdict_map:
        attrs.append((w.SET_DATA_TYPE, w.be32(w.DATA_TYPE_VERDICT)))
        attrs.append((w.SET_DATA_LEN, w.be32(16)))
    elif spec.data:
        attrs.append((w.SET_DATA_TYPE, w.be32(spec.data_type)))
        attrs.append((w.SET_DATA_LEN, w.be32(spec.data_len)))
    attrs.append((w.SET_ID, w.be32(set_id)))
    if spec.timeout is not None:
        attrs.append((w.SET_TIMEOUT, w.be64(spec.timeout * 1000)))
    if spec.key == ("mark",):  # nft's userdata TLV: key byte order host-endian (for listing)
        attrs.append((w.SET_USERDATA, bytes([0, 4]) + w.host32(1)))
    if spec.counter:  # each element gets its own counter (the set's expression template)
        attrs.append((w.SET_EXPR, ((w.EXPR_NAME, w.string("counter")),)))
    return tuple(attrs)


def _chain_attrs(table: str, op: Op) -> tuple[int, int, tuple]:
    chain: Chain = op.spec
    attrs: list[tuple[int, Any]] = [(w.CHAIN_TABLE, w.string(table)), (w.CHAIN_NAME, w.string(chain.name))]
    if chain.hook is not None:
        attrs.append((w.CHAIN_HOOK, ((w.HOOK_HOOKNUM, w.be32(chain.hook.hooknum)),
                                     (w.HOOK_PRIORITY, w.be32(chain.hook.priority)))))
        attrs.append((w.CHAIN_POLICY, w.be32(w.NF_ACCEPT)))
        attrs.append((w.CHAIN_TYPE, w.string(chain.hook.type)))
    return w.MSG_NEWCHAIN, w.NLM_F_CREATE, tuple(attrs)


# kind -> (table, op) -> (message type, flags, attributes) of the single-message operations
_ENCODERS: dict[str, Callable[[str, Op], tuple[int, int, tuple]]] = {
    ADD_TABLE: lambda table, op: (w.MSG_NEWTABLE, w.NLM_F_CREATE, ((w.TABLE_NAME, w.string(op.object)),)),
    DELETE_TABLE: lambda table, op: (w.MSG_DELTABLE, 0, ((w.TABLE_NAME, w.string(op.object)),)),
    ADD_CHAIN: _chain_attrs,
    FLUSH_CHAIN: lambda table, op: (w.MSG_DELRULE, 0, ((w.RULE_TABLE, w.string(table)),
                                                       (w.RULE_CHAIN, w.string(op.object)))),
    DELETE_CHAIN: lambda table, op: (w.MSG_DELCHAIN, 0, ((w.CHAIN_TABLE, w.string(table)),
                                                         (w.CHAIN_NAME, w.string(op.object)))),
    DELETE_SET: lambda table, op: (w.MSG_DELSET, 0, ((w.SET_TABLE, w.string(table)),
                                                     (w.SET_NAME, w.string(op.object)))),
}
