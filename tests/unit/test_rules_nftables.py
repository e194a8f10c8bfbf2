"""The nftables adapter over rendered rulesets (pure): parsing `nft list` text, attribution of
chains/maps/elements to Service ports, and the tracer, checked against the iptables mode's
trace table (the same Services must route alike in both modes)."""
from __future__ import annotations

import pytest

from kproxy.agent.policy import categorize
from kproxy.agent.state import changes_between
from kproxy.nftables.render import render
from kproxy.rules.diff import diff
from kproxy.rules.nftables import Dump, NftablesAdapter, normalise, parse_table
from kproxy.rules.nfttrace import NftTracer, Pkt, TraceError
from kproxy.rules.trace import Probe
from tests.golden import iptables_services as fx
from tests.flows.cases import FIXTURE_CASES as CASES

# kube-proxy's nftables mode does not accept NodePort connections on loopback (iptables does)
NOT_IN_NFTABLES = {"NodePort on localhost"}
# where kube-proxy's nftables mode decides otherwise than its iptables mode: a ClusterIP's port
# or protocol its Service lacks is rejected (cluster-ips-check)
NFTABLES_OUTCOMES = {"clusterIP wrong port passes untouched": {"REJECT"},
                     "clusterIP wrong protocol passes untouched": {"REJECT"}}


@pytest.fixture(scope="module")
def dump():
    return Dump(render(fx.state()).text())


def test_every_service_port_with_endpoints_is_modelled(dump):
    model = NftablesAdapter().from_inspection(dump, "node-1")
    state = fx.state()
    # a Service port some traffic can reach an endpoint of (else only no-endpoint elements exist)
    with_endpoints = {k for k, sp in state.services.items()
                      if categorize(sp).internal or (sp.has_external and categorize(sp).external)}
    assert {s.key for s in model.services} == with_endpoints
    for svc in model.services:
        sp = state.services[svc.key]
        assert {(f.kind, f.ip, f.port) for f in svc.frontends if f.kind == "clusterIP"} == {
            ("clusterIP", ip, sp.port) for ip in sp.cluster_ips}
        if sp.node_port:
            assert ("nodePort", "", sp.node_port) in {(f.kind, f.ip, f.port) for f in svc.frontends}
        assert svc.objects and all(o.container.startswith("nft") for o in svc.objects)
    assert not model.unowned
    # elements naming no Service (no-endpoint maps) are shared
    assert any(o.container == "nft/no-endpoint-services" for o in model.shared)


def test_parse_table_reads_chains_maps_and_multiline_elements():
    text = """table ip kproxy {
	map m {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 10.0.0.1 . tcp . 80 : goto a,
			     10.0.0.2 . udp . 53 : drop }
	}
	set s {
		type ipv4_addr
		flags dynamic,timeout
		timeout 1m
	}
	chain a { # handle 3
		type nat hook prerouting priority dstnat; policy accept;
		ip saddr 10.0.0.0/8 counter packets 5 bytes 300 jump b # handle 4
	}
}
"""
    t = parse_table(text)
    assert t.sets["m"] == ("map", False, ["10.0.0.1 . tcp . 80 : goto a", "10.0.0.2 . udp . 53 : drop"])
    assert t.sets["s"][1] is True
    assert t.chains["a"] == ["ip saddr 10.0.0.0/8 counter packets 5 bytes 300 jump b"]
    assert "hook prerouting" in t.hooks["a"]
    assert normalise("0x00000001 : goto x") == normalise("1 :  goto x")
    assert normalise(t.chains["a"][0]) == "ip saddr 10.0.0.0/8 jump b"


@pytest.mark.parametrize("case,src,dst,dport,proto,expected,masq", CASES, ids=[c[0] for c in CASES])
def test_tracer_routes_like_the_iptables_mode(dump, case, src, dst, dport, proto, expected, masq):
    report = NftablesAdapter().trace(dump, Probe(proto, src, 0, dst, dport), [fx.NODE_IP])
    assert sum(c.probability for c in report.candidates) == pytest.approx(1.0)
    if case in NOT_IN_NFTABLES:
        assert [c.outcome for c in report.candidates] == ["ACCEPT"]
        return
    assert {c.outcome for c in report.candidates} == NFTABLES_OUTCOMES.get(case, expected)
    assert {c.masquerade for c in report.candidates} == {masq}
    for c in report.candidates:
        if c.is_endpoint:
            (dnat,) = [step for step in c.path if " dnat " in f" {step.text}"]
            if dnat.text.endswith(f"dnat to {c.outcome}"):  # an endpoint chain (session affinity)
                pass
            else:  # a data map of endpoints: the outcome is one of its elements
                name = dnat.text.rsplit("@", 1)[1]
                ip, port = c.outcome.rsplit(":", 1)
                assert any(e.endswith(f": {ip} . {port}") for e in parse_table(dump.text).sets[name][2]), dnat
            assert report.service and report.frontend is not None and report.frontend.port == dport
        for step in c.path:
            assert step.text == parse_table(dump.text).chains[step.container[4:]][step.index]


def test_diff_sees_reordered_nft_rules(dump):
    from kproxy.rules.diff import diff
    from kproxy.rules.nftables import build
    adapter = NftablesAdapter()
    table = parse_table(dump.text)
    chain = next(c for c, rules in table.chains.items() if c.startswith("external-") and len(rules) > 2)
    table.chains[chain] = list(reversed(table.chains[chain]))
    assert [(d.kind, d.object.container) for d in diff(adapter.from_inspection(dump, "n"), build(table, "n"))] == [
        ("order", f"nft/{chain}")]


def test_endpoints_are_equally_likely(dump):
    report = NftablesAdapter().trace(dump, Probe("tcp", fx.LOCAL_POD, 0, "10.96.0.10", 80), [fx.NODE_IP])
    assert [c.probability for c in report.candidates] == pytest.approx([1 / 3] * 3)


def test_unmodelled_statements_are_refused(dump):
    table = parse_table(dump.text)
    table.chains["services"] = ["ip daddr 10.96.0.10 jhash ip saddr mod 251 seed 0x1 vmap @x"]
    with pytest.raises(TraceError):
        NftTracer(table).paths(Pkt("10.0.0.1", "10.96.0.10", 80, "tcp"))


def test_hairpin_marks_only_the_path_back_to_the_sender(dump):
    report = NftablesAdapter().trace(dump, Probe("tcp", "10.244.1.2", 0, "10.96.0.10", 80), [fx.NODE_IP])
    assert {c.outcome: c.masquerade for c in report.candidates} == {
        "10.244.1.2:8080": True, "10.244.1.3:8080": False, "10.244.2.2:8080": False}
    (back,) = [c for c in report.candidates if c.masquerade]
    assert [s.container for s in back.path[-2:]] == ["nft/nat-postrouting", "nft/mark-for-masquerade"]


def test_a_slot_no_chain_picks_from_is_unowned_and_endpoints_come_from_the_chains_range(dump):
    from kproxy.rules.nftables import build
    table = parse_table(dump.text)
    kind, dynamic, elements = table.sets["endpoints-0"]
    table.sets["endpoints-0"] = (kind, dynamic, elements + ["4000 : 10.9.9.9 . 80"])  # block 0: nobody's
    model = build(table, "n")
    assert [o.text for o in model.unowned] == ["4000 : 10.9.9.9 . 80"]
    web = model.service("default/web:http")
    assert {e.address for e in web.endpoints} == {"10.244.1.2:8080", "10.244.1.3:8080", "10.244.2.2:8080"}


# ------------------------------------------------------------------ diff: allocation is not drift


def _svc(i: int, eps: str = "ab", **kw):
    from kproxy.agent.state import Endpoint, ServicePort
    return ServicePort("default", f"s{i}", "", "TCP", 80, cluster_ips=(f"10.96.1.{i}",),
                       endpoints=tuple(Endpoint(f"10.244.{i}.{n}", 8080) for n in range(len(eps))), **kw)


def _state(services, revision):
    from kproxy.agent.state import ProxyState
    return ProxyState("n1", node_ips=(fx.NODE_IP,), cluster_cidr="10.244.0.0/16",
                      services={s.key: s for s in services}, revision=revision)


def _hex_slots(text: str) -> str:
    """A ruleset's text with slot keys as the kernel prints them (0x%08x)."""
    import re
    out = re.sub(r"(?m)(\{ |^\s+)(\d+) : ", lambda m: f"{m.group(1)}0x{int(m.group(2)):08x} : ", text)
    assert out != text
    return out


def test_incremental_and_from_scratch_renders_of_one_state_do_not_differ():
    """Issue 14 item 8: create 12 Services, delete 4 (and add two that take freed slots): the
    incremental ruleset's slot ranges differ from a from-scratch render's, what packets meet
    does not."""
    created, previous, before = [], None, None
    for i in range(1, 13):
        created.append(_svc(i, "abc"[: 1 + i % 3], **({"session_affinity_timeout": 30} if i == 5 else {})))
        st = _state(created, i)
        previous, before = render(st, previous, changes_between(before, st)), st
    final = [s for s in created if s.name not in ("s2", "s3", "s6", "s9")] + [_svc(20, "abc"), _svc(21, "a")]
    incremental = render(_state(final, 13), previous, changes_between(before, _state(final, 13)))
    scratch = render(_state(final, 1))
    assert incremental.text() != scratch.text()  # the allocation differs ...
    adapter = NftablesAdapter()
    kernel = adapter.from_inspection(Dump(_hex_slots(incremental.text())), "n1")
    assert diff(adapter.from_ruleset(scratch, "n1"), kernel) == []  # ... what a packet meets does not
    s5 = kernel.service("default/s5:")
    assert s5.affinity == 30 and {e.weight for e in s5.endpoints} == {1}


def test_a_moved_endpoint_a_lost_slot_and_a_changed_affinity_are_drift():
    base = [_svc(1, "ab"), _svc(2, "abc", session_affinity_timeout=30)]
    desired = NftablesAdapter().from_ruleset(render(_state(base, 1)), "n1")
    changed = [_svc(1, "a"), _svc(2, "abc", session_affinity_timeout=60)]
    found = diff(desired, NftablesAdapter().from_ruleset(render(_state(changed, 1)), "n1"))
    assert [(d.kind, d.scope, d.object.text) for d in found if d.object.kind == "behaviour"] == [
        ("missing", "default/s1:", "endpoint 10.244.1.1:8080 weight 1"),
        ("missing", "default/s2:", "affinity ClientIP 30s"),
        ("unexpected", "default/s2:", "affinity ClientIP 60s")]
    # the objects behind them too: the slot element and the pick rule over one slot fewer
    assert {(d.kind, d.object.kind) for d in found if d.scope == "default/s1:" and d.object.kind != "behaviour"} == {
        ("missing", "map-element"), ("missing", "rule"), ("unexpected", "rule")}


def _without_chains(text: str, prefixes: tuple[str, ...]) -> str:
    """The dump with every chain whose name starts with one of `prefixes` removed."""
    out, skipping = [], False
    for line in text.splitlines():
        head = line.strip()
        if head.startswith("chain ") and head.split()[1].startswith(prefixes):
            skipping = True
        if not skipping:
            out.append(line)
        elif head == "}":
            skipping = False
    return "\n".join(out) + "\n"


def test_a_table_missing_chains_is_reported_not_a_crash(dump):
    """Issue 14 item 2: after a failed sync `kproxy rules trace` died with "jump to unknown chain
    firewall-check"; a missing chain is now traced as empty and named in the note."""
    partial = Dump(_without_chains(dump.text, ("firewall-check", "service-")))
    report = NftablesAdapter().trace(partial, Probe("tcp", "10.0.0.1", 0, "10.96.0.10", 80), [fx.NODE_IP])
    assert "firewall-check" in report.note and "lacks chain" in report.note
    # nothing DNATs it, so cluster-ips-check meets a known ClusterIP untranslated: rejected
    assert [c.outcome for c in report.candidates] == ["REJECT"]
    whole = NftablesAdapter().trace(dump, Probe("tcp", "10.0.0.1", 0, "10.96.0.10", 80), [fx.NODE_IP])
    assert "lacks" not in whole.note
