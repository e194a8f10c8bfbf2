"""iptables-restore input for a Ruleset (pure functions).

The text is meant for `iptables-restore --noflush`: a declared chain (":NAME - [0:0]") is created
if missing and flushed if present, so only declared chains change; built-in chains are never
declared (their jump rules are ensured separately, see backend.py). A chain to delete is declared
first (flushing it) and then removed with -X, because -X of a chain that still holds rules fails
the whole restore. Tables are written filter first, then nat, each in one COMMIT.

- full_restore(): declares and writes every chain of the ruleset, deletes the given stale
  per-service chains and inserts the given missing jump rules (a full sync: repairs any drift).
- partial_restore(): only chains whose rules differ from `previous`, and deletes chains that
  `previous` had and the new ruleset has not. Returns "" when nothing changed.

`chains_per_commit` (both functions) splits a table's chains into several COMMIT sections of at
most that many chains, each a transaction of its own, ordered so that a chain comes after every
chain of the input it jumps to: each intermediate state references only complete chains, and
stale chains are removed (and jump rules inserted) in the last section. iptables-nft-restore
(1.8.9) needs this: for every command it inserts the command's chain and jump target into a
sorted linked list of the section's chain names (nft-cache.c, cache_chain_list_insert), so one
section costs O(lines x chains): 2,000 Services x 10 endpoints (24k chains, 94k lines) took
minutes of CPU in one section and under a second in sections of 500 chains. iptables-legacy
rewrites the whole table blob on every COMMIT, so it keeps one section per table (None).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from .names import TABLES, is_service_chain, jump_depth
from .ruleset import ChainKey, JumpRule, Rules, Ruleset


def dependency_order(write: list[tuple[str, Rules]]) -> list[tuple[str, Rules]]:
    """`write` reordered so that each chain follows the chains it jumps to (names.jump_depth
    ranks chains by what they may jump to); stable within a rank."""
    return sorted(write, key=lambda item: jump_depth(item[0]))


def _table_text(out: list[str], table: str, write: list[tuple[str, Rules]], delete: Iterable[str],
                insert: Iterable[JumpRule] = (), chains_per_commit: int | None = None) -> None:
    delete = sorted(delete)
    insert = list(insert)
    if chains_per_commit is None or len(write) <= chains_per_commit:
        _section(out, table, write, delete, insert)
        return
    ordered = dependency_order(write)
    for start in range(0, len(ordered), chains_per_commit):
        _section(out, table, ordered[start:start + chains_per_commit], (), ())
    _section(out, table, [], delete, insert)


def _section(out: list[str], table: str, write: list[tuple[str, Rules]], delete: Sequence[str],
             insert: Sequence[JumpRule]) -> None:
    """One COMMIT: declare (create or flush) `write` and `delete`, fill `write`, insert the jump
    rules, then remove `delete`."""
    if not write and not delete and not insert:
        return
    out.append(f"*{table}")
    out.extend(f":{name} - [0:0]" for name, _ in write)
    out.extend(f":{name} - [0:0]" for name in delete)
    for name, rules in write:
        prefix = f"-A {name} "
        out.extend(prefix + rule for rule in rules)
    out.extend(f"-I {jump.chain} 1 {jump.restore_text()}" for jump in insert)
    out.extend(f"-X {name}" for name in delete)
    out.append("COMMIT")


def _render(write: Mapping[str, list[tuple[str, Rules]]], delete: Mapping[str, set[str]],
            insert: Iterable[JumpRule] = (), chains_per_commit: int | None = None) -> str:
    out: list[str] = []
    insert = list(insert)
    for table in TABLES:
        _table_text(out, table, write.get(table, []), delete.get(table, ()),
                    [j for j in insert if j.table == table], chains_per_commit)
    return "\n".join(out) + "\n" if out else ""


def full_restore(ruleset: Ruleset, existing: Mapping[str, Iterable[str]] | None = None,
                 missing_jumps: Iterable[JumpRule] = (), chains_per_commit: int | None = None) -> str:
    """Every chain of `ruleset`, plus -X of the per-service chains in `existing` (table -> chain
    names the kernel holds now) that the ruleset does not own, plus `-I <built-in> 1` of
    `missing_jumps` (after our chains are declared, so their targets exist)."""
    write: dict[str, list[tuple[str, Rules]]] = {t: [] for t in TABLES}
    owned: dict[str, set[str]] = {t: set() for t in TABLES}
    for (table, name), rules in ruleset.chains():
        write[table].append((name, rules))
        owned[table].add(name)
    delete = {t: {c for c in (existing or {}).get(t, ()) if is_service_chain(c) and c not in owned[t]}
              for t in TABLES}
    return _render(write, delete, missing_jumps, chains_per_commit)


def changed_chains(ruleset: Ruleset, previous: Ruleset) -> tuple[list[tuple[ChainKey, Rules]], set[ChainKey]]:
    """(chains to write, chains to delete) turning `previous` into `ruleset`. When `ruleset` was
    rendered from `previous`, only the fragments its render's Changes named are compared, chain
    by chain; otherwise every fragment is."""
    write: list[tuple[ChainKey, Rules]] = []
    for key, rules in ruleset.static.items():
        if previous.static.get(key) != rules:
            write.append((key, rules))
    old_owned: dict[ChainKey, Rules] = {}
    new_owned: dict[ChainKey, Rules] = {}
    keys = ruleset.changed if ruleset.base is previous.token else ruleset.fragments.keys() | previous.fragments.keys()
    for skey in keys:
        new = ruleset.fragments.get(skey)
        old = previous.fragments.get(skey)
        if new == old:
            continue
        if old is not None:
            old_owned.update(old.chains)
        if new is not None:
            new_owned.update(new.chains)
    for key in sorted(new_owned):
        if old_owned.get(key) != new_owned[key]:
            write.append((key, new_owned[key]))
    # Chain names hash the ServicePort name, so a chain never moves between fragments.
    delete = set(old_owned) - set(new_owned)
    return write, delete


def partial_restore(ruleset: Ruleset, previous: Ruleset, chains_per_commit: int | None = None) -> str:
    """Only what changed since `previous` (which the kernel is known to hold); "" if nothing."""
    changes, deletions = changed_chains(ruleset, previous)
    write: dict[str, list[tuple[str, Rules]]] = {t: [] for t in TABLES}
    for (table, name), rules in changes:
        write[table].append((name, rules))
    delete: dict[str, set[str]] = {t: set() for t in TABLES}
    for table, name in deletions:
        delete[table].add(name)
    return _render(write, delete, chains_per_commit=chains_per_commit)
