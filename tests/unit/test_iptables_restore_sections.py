"""Restore text split into COMMIT sections of at most N chains (iptables-nft): the same chains
and rules as one section, and every section only jumps to chains that an earlier section (or
itself) wrote, so each committed step is a complete ruleset fragment."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

import pytest

from bench.iptables_sync import change_one_endpoint, make_state
from kproxy.agent.state import changes_between
from kproxy.iptables.names import is_owned_chain
from kproxy.iptables.render import render
from kproxy.iptables.restore import dependency_order, full_restore, partial_restore


def sections(text: str) -> list[tuple[str, list[str]]]:
    """(table, lines between *table and COMMIT) per COMMIT section."""
    out, table, lines = [], None, []
    for line in text.splitlines():
        if line.startswith("*"):
            table, lines = line[1:], []
        elif line == "COMMIT":
            out.append((table, lines))
        else:
            lines.append(line)
    return out


def lines_by_table(text: str) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for table, lines in sections(text):
        out.setdefault(table, Counter()).update(lines)
    return out


@pytest.mark.parametrize("per_commit", [1, 7, 50])
def test_sections_hold_the_same_lines_and_jump_only_to_written_chains(per_commit):
    ruleset = render(make_state(30, 3))
    stale = {"nat": ["KUBE-SVC-STALESTALESTALE1"], "filter": []}
    whole = full_restore(ruleset, stale)
    split = full_restore(ruleset, stale, chains_per_commit=per_commit)
    assert lines_by_table(split) == lines_by_table(whole)
    assert len(sections(split)) > len(sections(whole))
    written: dict[str, set[str]] = {"filter": set(), "nat": set()}
    for table, lines in sections(split):
        declared = {l[1:].split()[0] for l in lines if l.startswith(":")}
        fills = [l for l in lines if l.startswith("-A ")]
        if fills:
            assert len(declared) <= per_commit
        written[table] |= declared
        for line in fills:
            m = re.search(r" -[jg] (\S+)", line)
            if m and is_owned_chain(table, m.group(1)):
                assert m.group(1) in written[table], f"{line!r} jumps to a chain not yet written"
    # stale chains go, and jump rules come, only once everything is written
    for _table, lines in sections(split):
        if any(l.startswith(("-X", "-I")) for l in lines):
            assert not any(l.startswith("-A ") for l in lines)


def test_a_partial_restore_is_sectioned_the_same_way():
    state = make_state(30, 3)
    before = render(state)
    after = render(change_one_endpoint(state), before, changes_between(state, change_one_endpoint(state)))
    assert lines_by_table(partial_restore(after, before, chains_per_commit=2)) == \
        lines_by_table(partial_restore(after, before))


def test_dependency_order_puts_every_jump_target_first():
    state = make_state(40, 3)
    services = dict(state.services)
    for key in list(services)[:10]:  # Local policies (KUBE-SVL-), LB firewalls (KUBE-FW-)
        sp = services[key]
        services[key] = replace(sp, load_balancer_ips=("192.0.2.9",), load_balancer_source_ranges=("10.0.0.0/8",),
                                external_policy_local=True, internal_policy_local=True)
    ruleset = render(replace(state, services=services))
    for table in ("filter", "nat"):
        write = [(name, rules) for (t, name), rules in ruleset.chains() if t == table]
        seen: set[str] = set()
        for name, rules in dependency_order(write):
            for rule in rules:
                m = re.search(r" ?-j (KUBE-\S+)", rule)
                if m:
                    assert m.group(1) in seen, f"{name} jumps to {m.group(1)} before it is written"
            seen.add(name)
