"""Golden files of the nftables mode: the ruleset text for the fixed Services of
tests/golden/iptables_services.py (random and Maglev selection), the operations of one partial
sync, and a hex dump of the encoded batch for one Service, which must decode back (through
pyroute2's nf_tables message classes) into the objects we meant.
KPROXY_UPDATE_GOLDEN=1 rewrites the files (review the diff before committing)."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from pyroute2.netlink.nfnetlink.nftsocket import (
    nft_chain_msg,
    nft_rule_msg,
    nft_set_elem_list_msg,
    nft_set_msg,
    nft_table_msg,
)

from kproxy.agent.families import IPV4, IPV6, family_view
from kproxy.agent.state import changes_between
from kproxy.nftables import wire as w
from kproxy.nftables.plan import plan_full, plan_partial
from kproxy.nftables.render import render
from tests.golden import iptables_services as fx

GOLDEN_DIR = Path(__file__).parent


def check(name: str, text: str) -> None:
    path = GOLDEN_DIR / name
    if os.environ.get("KPROXY_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with KPROXY_UPDATE_GOLDEN=1"
    assert text == path.read_text()


@pytest.mark.parametrize("selection", ["random", "maglev"])
def test_ruleset_text_matches_golden(selection):
    check(f"services-{selection}.nft", render(fx.state(), endpoint_selection=selection).text())


@pytest.mark.parametrize("selection", ["random", "maglev"])
def test_ipv6_table_of_the_dual_stack_services_matches_golden(selection):
    check(f"services-ipv6-{selection}.nft",
          render(family_view(fx.dual_stack_state(), IPV6), endpoint_selection=selection).text())


def test_the_ipv4_table_of_dual_stack_services_is_the_ipv4_only_render():
    assert render(family_view(fx.dual_stack_state(), IPV4)).text() == render(fx.state()).text()


@pytest.mark.parametrize("mode, interface", [("BridgeInterface", "cbr0"), ("InterfaceNamePrefix", "veth")])
def test_detect_local_by_interface_matches_golden(mode, interface):
    state = fx.state(detect_local_mode=mode, detect_local_interface=interface, cluster_cidr=None)
    check(f"services-detect-local-{mode}.nft", render(state).text())


def test_partial_sync_operations_match_golden():
    first = render(fx.state())
    services = [replace(s, endpoints=s.endpoints[:1]) if s.name == "web" else s
                for s in fx.SERVICES if s.name != "empty"]
    second = render(fx.state(services), first, changes_between(fx.state(), fx.state(services)))
    check("partial-scale-web-remove-empty.ops", "".join(op.description + "\n" for op in plan_partial(second, first).ops))


def _one_service_batch() -> bytes:
    state = fx.state(fx.SERVICES[:1])
    return plan_full(render(state), [], []).encode(1)[0]


def test_batch_hex_dump_matches_golden():
    lines = []
    for kind, flags, seq, payload in w.iter_messages(_one_service_batch()):
        lines.append(f"# seq {seq} type {kind:#06x} flags {flags:#06x}")
        body = payload.hex()
        lines.extend(body[i:i + 64] for i in range(0, len(body), 64))
    check("one-service-batch.hex", "\n".join(lines) + "\n")


DECODERS = {w.MSG_NEWTABLE: nft_table_msg, w.MSG_NEWCHAIN: nft_chain_msg, w.MSG_NEWRULE: nft_rule_msg,
            w.MSG_DELRULE: nft_rule_msg, w.MSG_NEWSET: nft_set_msg, w.MSG_NEWSETELEM: nft_set_elem_list_msg,
            w.MSG_DELSETELEM: nft_set_elem_list_msg}


def test_golden_batch_decodes_with_pyroute2_into_what_we_meant():
    """Decodes the stored hex dump (not a fresh encoding) with pyroute2's classes."""
    messages = []
    current: list[str] = []
    header = None
    for line in (GOLDEN_DIR / "one-service-batch.hex").read_text().splitlines():
        if line.startswith("#"):
            if header is not None:
                messages.append((header, bytes.fromhex("".join(current))))
            header, current = line, []
        else:
            current.append(line)
    messages.append((header, bytes.fromhex("".join(current))))

    ruleset = render(fx.state(fx.SERVICES[:1]))
    chains, rules, sets, element_counts = [], {}, [], {}
    for header, payload in messages:
        kind = int(header.split()[4], 16)
        if kind >> 8 != w.NFNL_SUBSYS_NFTABLES:
            assert kind in (w.NFNL_MSG_BATCH_BEGIN, w.NFNL_MSG_BATCH_END)
            continue
        cls = DECODERS[kind & 0xFF]
        raw = w.encode_message(0, 0, 0, 0, ())[:16] + payload  # any header: pyroute2 decodes the body
        msg = cls(raw[:0] + _with_length(raw))
        msg.decode()
        if cls is nft_chain_msg:
            chains.append(msg.get_attr("NFTA_CHAIN_NAME"))
            assert msg.get_attr("NFTA_CHAIN_TABLE") == "kproxy"
        elif cls is nft_rule_msg and kind & 0xFF == w.MSG_NEWRULE:
            names = [e.get_attr("NFTA_EXPR_NAME") for e in msg.get_attr("NFTA_RULE_EXPRESSIONS")]
            rules.setdefault(msg.get_attr("NFTA_RULE_CHAIN"), []).append(names)
        elif cls is nft_set_msg:
            sets.append(msg.get_attr("NFTA_SET_NAME"))
        elif cls is nft_set_elem_list_msg and kind & 0xFF == w.MSG_NEWSETELEM:
            elems = msg.get_attr("NFTA_SET_ELEM_LIST_ELEMENTS") or []
            name = msg.get_attr("NFTA_SET_ELEM_LIST_SET")
            element_counts[name] = element_counts.get(name, 0) + len(elems)
    assert chains == list(ruleset.chains)
    assert sets == list(ruleset.sets)
    assert {k: v for k, v in element_counts.items()} == {k: len(v) for k, v in ruleset.elements.items() if v}
    for name, chain in ruleset.chains.items():
        assert rules.get(name, []) == [[e[0] for e in rule.exprs] for rule in chain.rules], name


def _with_length(raw: bytes) -> bytes:
    return len(raw).to_bytes(4, "little") + raw[4:]
