"""A knftables-style transaction: queue operations on the `ip kproxy` table, then encode them as
one nf_tables batch (BATCH_BEGIN ... BATCH_END) that the kernel applies atomically.

Every queued operation keeps a one-line description, so an error the kernel reports for a
message's sequence number names the operation that caused it. Encoding uses the Cython encoder
when the extension provides it, else the pure twin (kproxy.nftables.wire); both give the same
bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from . import wire as w
from .expr import Rule, expr_attrs
from .model import FAMILY, TABLE, VERDICT_CODES, Chain, SetSpec, Verdict, encoder, key_text

try:  # the compiled encoder (kproxy/_fastpath_netlink.pxi); same bytes as the twin
    from kproxy._fastpath import nft_encode_elements as _encode_elements  # type: ignore[attr-defined]
    from kproxy._fastpath import nft_encode_message as _encode_message  # type: ignore[attr-defined]
    ENCODER = "cython"
except ImportError:
    _encode_elements = w.encode_elements
    _encode_message = w.encode_message
    ENCODER = "python"


@dataclass(frozen=True)
class Op:
    """One queued operation: builds its messages from a first sequence number. Its description
    is formatted only when asked for (error messages, tests), not on the sync path."""

    describe: Callable[[], str]
    messages: int  # how many messages it encodes to
    build: Callable[[int], list[bytes]]

    @property
    def description(self) -> str:
        return self.describe()


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
                 encode_elements: Callable | None = None) -> None:
        self.table = table
        self.ops: list[Op] = []
        self._set_ids = 0
        self._message = encode_message or _encode_message
        self._elements = encode_elements or _encode_elements
        self.owner_delta: dict = {}  # plan.ElementOwners changes that hold once this commits

    def __len__(self) -> int:
        return len(self.ops)

    def _add(self, description, msg_type: int, attrs: tuple, flags: int = w.NLM_F_CREATE) -> None:
        """Queues one message; `description` is a str or a callable returning one."""
        enc = self._message
        describe = description if callable(description) else (lambda: description)
        self.ops.append(Op(describe, 1, lambda seq: [enc(msg_type, flags, seq, FAMILY, attrs)]))

    def _t(self) -> tuple:
        return (w.TABLE_NAME, w.string(self.table))

    # tables
    def add_table(self) -> None:
        self._add(f"add table ip {self.table}", w.MSG_NEWTABLE, (self._t(),))

    def delete_table(self) -> None:
        self._add(f"delete table ip {self.table}", w.MSG_DELTABLE, (self._t(),), 0)

    # chains
    def add_chain(self, chain: Chain) -> None:
        attrs = [(w.CHAIN_TABLE, w.string(self.table)), (w.CHAIN_NAME, w.string(chain.name))]
        if chain.hook is not None:
            attrs.append((w.CHAIN_HOOK, ((w.HOOK_HOOKNUM, w.be32(chain.hook.hooknum)),
                                         (w.HOOK_PRIORITY, w.be32(chain.hook.priority)))))
            attrs.append((w.CHAIN_POLICY, w.be32(w.NF_ACCEPT)))
            attrs.append((w.CHAIN_TYPE, w.string(chain.hook.type)))
        self._add(f"add chain {chain.name}", w.MSG_NEWCHAIN, tuple(attrs))

    def flush_chain(self, name: str) -> None:
        self._add(f"flush chain {name}", w.MSG_DELRULE,
                  ((w.RULE_TABLE, w.string(self.table)), (w.RULE_CHAIN, w.string(name))), 0)

    def delete_chain(self, name: str) -> None:
        self._add(f"delete chain {name}", w.MSG_DELCHAIN,
                  ((w.CHAIN_TABLE, w.string(self.table)), (w.CHAIN_NAME, w.string(name))), 0)

    def add_rule(self, chain: str, rule: Rule) -> None:
        self._add(lambda: f"add rule {chain} {rule.text}", w.MSG_NEWRULE,
                  ((w.RULE_TABLE, w.string(self.table)), (w.RULE_CHAIN, w.string(chain)),
                   (w.RULE_EXPRESSIONS, rule.attrs)), w.NLM_F_CREATE | w.NLM_F_APPEND)

    # sets and maps
    def add_set(self, spec: SetSpec) -> None:
        self._set_ids += 1
        set_id = self._set_ids
        attrs = [(w.SET_TABLE, w.string(self.table)), (w.SET_NAME, w.string(spec.name)),
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
        self._add(f"add {'map' if spec.is_map else 'set'} {spec.name}", w.MSG_NEWSET, tuple(attrs))

    def flush_set(self, name: str) -> None:
        enc = self._elements
        table = self.table
        self.ops.append(Op(lambda: f"flush set {name}", 1,
                           lambda seq: enc(w.MSG_DELSETELEM, 0, seq, FAMILY, table, name, [])))

    def delete_set(self, name: str) -> None:
        self._add(f"delete set {name}", w.MSG_DELSET,
                  ((w.SET_TABLE, w.string(self.table)), (w.SET_NAME, w.string(name))), 0)

    def add_elements(self, spec: SetSpec, elements: Mapping[tuple, Verdict]) -> None:
        self._elements_op("add", w.MSG_NEWSETELEM, w.NLM_F_CREATE, spec, elements.items())

    def delete_elements(self, spec: SetSpec, keys: Iterable[tuple]) -> None:
        self._elements_op("delete", w.MSG_DELSETELEM, 0, spec, ((k, None) for k in keys))

    def _elements_op(self, verb: str, msg_type: int, flags: int, spec: SetSpec, items: Iterable) -> None:
        items = list(items)
        if not items:
            return
        keys = [key for key, _ in items]
        key_bytes = encoder(spec.key)
        if spec.verdict_map:
            raw = [(key_bytes(k), None, None) if v is None else (key_bytes(k), VERDICT_CODES[v[0]], v[1])
                   for k, v in items]
        elif spec.data:
            data_bytes = encoder(spec.data)
            raw = [(key_bytes(k), None, None if v is None else data_bytes(v)) for k, v in items]
        else:
            raw = [(key_bytes(k), None, None) for k in keys]
        per = w.elements_per_message(raw)
        enc = self._elements
        table = self.table
        for i in range(0, len(raw), per):
            chunk = raw[i:i + per]
            def describe(i: int = i, more: bool = len(chunk) > 3) -> str:
                shown = ", ".join(key_text(spec, k) for k in keys[i:i + 3]) + (", ..." if more else "")
                return f"{verb} element {spec.name} {{ {shown} }}"
            self.ops.append(Op(describe, 1,
                               lambda seq, chunk=chunk: enc(msg_type, flags, seq, FAMILY, table, spec.name,
                                                             chunk, per)))

    # encoding
    def encode(self, first_seq: int, genid: int = 0) -> tuple[bytes, "Descriptions", int]:
        """(batch bytes, seq -> operation description, last seq). BATCH_BEGIN has `first_seq`
        (and `genid`: commit only if the kernel's generation is still that), the operations
        follow, BATCH_END carries last seq + 1."""
        parts = [w.encode_batch_marker(w.NFNL_MSG_BATCH_BEGIN, first_seq, genid)]
        described = Descriptions(first_seq)
        seq = first_seq + 1
        for op in self.ops:
            msgs = op.build(seq)
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
