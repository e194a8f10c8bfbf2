"""An in-memory nf_tables table that applies Transactions the way the kernel does (in the manner
of knftables' fake): operations in order, references checked, and the whole transaction refused
on the first error, leaving the table as it was. Tests use it to check plans without a kernel.

What it checks (the kernel's answers in parentheses):
- a rule, flush or delete names an existing chain; an element operation or flush an existing
  set (ENOENT);
- a rule's jump/goto targets and @set lookups exist; a verdict-map element's chain exists
  (ENOENT);
- a deleted chain is empty and nothing jumps to it; a deleted set is not used by a rule (EBUSY);
- a set re-added under its name declares the same kind (EEXIST); an added element whose key is
  there with another value, and a deleted element that is not there, are refused (EEXIST,
  ENOENT).
"""
from __future__ import annotations

import copy
import errno
import os
from dataclasses import dataclass, field

from . import wire as w
from .expr import DYNSET_SET_NAME, IMMEDIATE_DATA, LOOKUP_SET, Rule
from .model import Chain, SetSpec, Verdict
from .plan import same_kind
from .transaction import (ADD_CHAIN, ADD_ELEMENTS, ADD_RULE, ADD_SET, ADD_TABLE, DELETE_CHAIN, DELETE_ELEMENTS,
                          DELETE_SET, DELETE_TABLE, FLUSH_CHAIN, FLUSH_SET, Op, Transaction)


class FakeError(Exception):
    """The fake refused an operation: `errno` and the operation, as the kernel would."""

    def __init__(self, code: int, op: Op, why: str) -> None:
        super().__init__(f"{op.description}: {os.strerror(code)} ({why})")
        self.errno = code
        self.op = op


def references(rule: Rule) -> tuple[set[str], set[str]]:
    """(chains, sets) a rule refers to, read from its expressions as the kernel resolves them."""
    chains: set[str] = set()
    sets: set[str] = set()
    for name, attrs in rule.exprs:
        values = dict(attrs)
        if name == "lookup":
            sets.add(w.decode_string(values[LOOKUP_SET]))
        elif name == "dynset":
            sets.add(w.decode_string(values[DYNSET_SET_NAME]))
        elif name == "immediate":
            data = dict(values[IMMEDIATE_DATA])
            if w.DATA_VERDICT in data:
                verdict = dict(data[w.DATA_VERDICT])
                if w.VERDICT_CHAIN in verdict:
                    chains.add(w.decode_string(verdict[w.VERDICT_CHAIN]))
    return chains, sets


@dataclass
class FakeTable:
    """One table's chains (name -> rules), sets (name -> SetSpec) and elements (set name ->
    key -> value; value None for a plain set)."""

    exists: bool = False
    chains: dict[str, list[Rule]] = field(default_factory=dict)
    hooks: dict[str, Chain] = field(default_factory=dict)
    sets: dict[str, SetSpec] = field(default_factory=dict)
    elements: dict[str, dict[tuple, Verdict | None]] = field(default_factory=dict)

    def state(self) -> tuple:
        """Everything the table holds, comparable with ==."""
        return (self.exists, {n: tuple(r) for n, r in self.chains.items()},
                {n: c.hook for n, c in self.hooks.items()}, dict(self.sets),
                {n: dict(e) for n, e in self.elements.items() if not self.sets[n].dynamic})

    def apply(self, tx: Transaction) -> None:
        """Applies every operation of `tx` or, on the first refused one, none (FakeError)."""
        work = copy.deepcopy(self)
        for op in tx.ops:
            work._apply(op)
        self.__dict__.update(work.__dict__)

    # ---------------------------------------------------------------- one operation

    def _apply(self, op: Op) -> None:
        if op.kind == ADD_TABLE:
            self.exists = True
            return
        if not self.exists:
            raise FakeError(errno.ENOENT, op, "no table")
        if op.kind == DELETE_TABLE:
            self.__dict__.update(FakeTable().__dict__)
        elif op.kind == ADD_CHAIN:
            self.chains.setdefault(op.object, [])
            self.hooks[op.object] = op.spec
        elif op.kind == ADD_RULE:
            self._chain(op)
            chains, sets = references(op.spec)
            for missing in sorted(chains - self.chains.keys()):
                raise FakeError(errno.ENOENT, op, f"jump to missing chain {missing}")
            for missing in sorted(sets - self.sets.keys()):
                raise FakeError(errno.ENOENT, op, f"lookup in missing set {missing}")
            self.chains[op.object].append(op.spec)
        elif op.kind == FLUSH_CHAIN:
            self._chain(op).clear()
        elif op.kind == DELETE_CHAIN:
            if self._chain(op):
                raise FakeError(errno.EBUSY, op, "chain has rules")
            users = self._chain_users(op.object)
            if users:
                raise FakeError(errno.EBUSY, op, f"still the target of {users[0]}")
            del self.chains[op.object], self.hooks[op.object]
        elif op.kind == ADD_SET:
            old = self.sets.get(op.object)
            if old is not None and not same_kind(old, op.spec):
                raise FakeError(errno.EEXIST, op, "exists as another kind")
            self.sets[op.object] = op.spec
            self.elements.setdefault(op.object, {})
        elif op.kind == FLUSH_SET:
            self._set(op).clear()
        elif op.kind == DELETE_SET:
            self._set(op)
            users = [c for c, rules in self.chains.items() if any(op.object in references(r)[1] for r in rules)]
            if users:
                raise FakeError(errno.EBUSY, op, f"used by a rule of chain {users[0]}")
            del self.sets[op.object], self.elements[op.object]
        elif op.kind == ADD_ELEMENTS:
            elements = self._set(op)
            for key, value in op.elements:
                if value is not None and self.sets[op.object].verdict_map and value[1] is not None \
                        and value[1] not in self.chains:
                    raise FakeError(errno.ENOENT, op, f"verdict to missing chain {value[1]}")
                if key in elements and elements[key] != value:
                    raise FakeError(errno.EEXIST, op, f"element {key} exists with another value")
                elements[key] = value
        elif op.kind == DELETE_ELEMENTS:
            elements = self._set(op)
            for key, _ in op.elements:
                if key not in elements:
                    raise FakeError(errno.ENOENT, op, f"no element {key}")
                del elements[key]
        else:
            raise FakeError(errno.EOPNOTSUPP, op, "unknown operation")

    def _chain(self, op: Op) -> list[Rule]:
        if op.object not in self.chains:
            raise FakeError(errno.ENOENT, op, f"no chain {op.object}")
        return self.chains[op.object]

    def _set(self, op: Op) -> dict:
        if op.object not in self.sets:
            raise FakeError(errno.ENOENT, op, f"no set {op.object}")
        return self.elements[op.object]

    def _chain_users(self, name: str) -> list[str]:
        """What jumps to chain `name`: rules (by chain) and verdict-map elements (by map)."""
        users = [f"a rule of chain {c}" for c, rules in self.chains.items()
                 if any(name in references(r)[0] for r in rules)]
        users += [f"an element of map {s}" for s, spec in self.sets.items() if spec.verdict_map
                  and any(v is not None and v[1] == name for v in self.elements[s].values())]
        return users
