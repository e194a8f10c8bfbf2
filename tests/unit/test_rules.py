"""kproxy.rules over rendered rulesets (pure): the model, rule normalisation, the path tracer,
diff, output formats and the JSON schema; and the CLI's one-line errors."""
from __future__ import annotations

import json
import os
import re
from dataclasses import replace

import jsonschema
import pytest

from kproxy.agent.policy import categorize
from kproxy.cli.main import main as kproxy_main
from kproxy.iptables.render import render
from kproxy.iptables.trace import Tracer
from kproxy.rules import output
from kproxy.rules.adapter import NoAdapter, adapter_for
from kproxy.rules.diff import diff
from kproxy.rules.iptables import IptablesAdapter, build, normalise_rule, trace_chains
from kproxy.rules.send import Observed, confirm, parse_conntrack
from kproxy.rules.trace import Probe, ProbeError
from tests.golden import iptables_services as fx
from tests.flows.cases import FIXTURE_CASES as CASES

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "rules-schema.json")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def ruleset():
    return render(fx.state())


@pytest.fixture(scope="module")
def model(ruleset):
    return IptablesAdapter().from_ruleset(ruleset, "node-1")


@pytest.fixture(scope="module")
def schema():
    with open(SCHEMA_PATH) as f:
        doc = json.load(f)
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


def _chains(ruleset):
    return {key: [(t, 0, 0) for t in rules] for key, rules in ruleset.chains()}


# ------------------------------------------------------------------ normalisation


def test_normalise_rule_equates_rendered_and_saved_forms():
    pairs = [
        ('-m comment --comment "ns/a cluster IP" -m tcp -p tcp -d 10.96.0.12 --dport 80 ! -s 10.244.0.0/16 '
         '-j KUBE-MARK-MASQ',
         '! -s 10.244.0.0/16 -d 10.96.0.12/32 -p tcp -m comment --comment "ns/a cluster IP" -m tcp --dport 80 '
         '-j KUBE-MARK-MASQ'),
        ("-m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-X",
         "-m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-X"),
        ("-j MARK --or-mark 0x4000", "-j MARK --set-xmark 0x4000/0x4000"),
        ("-j MARK --xor-mark 0x4000", "-j MARK --set-xmark 0x4000/0x0"),
        ("-m recent --name S --rcheck --seconds 10 --reap -j S",
         "-m recent --rcheck --seconds 10 --reap --name S --mask 255.255.255.255 --rsource -j S"),
        ("-d 10.96.0.11 -p udp --dport 53 -j REJECT",
         "-d 10.96.0.11/32 -p udp -m udp --dport 53 -j REJECT --reject-with icmp-port-unreachable"),
    ]
    for rendered, saved in pairs:
        assert normalise_rule(rendered) == normalise_rule(saved), rendered
    different = [("-d 10.96.0.1 -j A", "! -d 10.96.0.1 -j A"), ("-d 10.96.0.1 -j A", "-d 10.96.0.1 -j B"),
                 ("--dport 80 -j A", "--dport 81 -j A"), ("-d 10.0.0.0/8 -j A", "-d 10.0.0.0 -j A")]
    for a, b in different:
        assert normalise_rule(a) != normalise_rule(b), (a, b)


def test_split_rule_is_shlex_for_every_rule(ruleset):
    import shlex
    from kproxy.rules.iptables import split_rule
    texts = [t for _, rules in ruleset.chains() for t in rules]
    texts += ['-m comment --comment "a \\"quoted\\" word" -j A', '-m comment --comment "" -j B',
              '! -s 10.244.0.0/16 -d 10.96.0.12/32 -p tcp -m comment --comment "ns/a cluster IP" -m tcp --dport 80 -j C']
    for text in texts:
        assert split_rule(text) == shlex.split(text), text


# ------------------------------------------------------------------ model


def test_every_service_port_with_its_frontends_and_endpoints(model):
    state = fx.state()
    assert [s.key for s in model.services] == sorted(state.services)
    for svc in model.services:
        sp = state.services[svc.key]
        assert svc.protocol == sp.protocol
        fronts = {(f.kind, f.ip, f.port) for f in svc.frontends}
        want = {("clusterIP", ip, sp.port) for ip in sp.cluster_ips}
        want |= {("externalIP", ip, sp.port) for ip in sp.external_ips}
        want |= {("loadBalancerIP", ip, sp.port) for ip in sp.load_balancer_ips}
        if sp.node_port:
            want.add(("nodePort", "", sp.node_port))
        if sp.health_check_node_port:
            want.add(("healthCheckNodePort", "", sp.health_check_node_port))
        assert fronts == want, svc.key
        # the endpoints the rules DNAT to: the Cluster-policy ones when some traffic uses that
        # policy, plus the local ones when some traffic uses the Local policy
        usable = {e.address for e in categorize(sp).reachable}
        assert {e.address for e in svc.endpoints} == usable, svc.key
        assert all(o.kind == "chain" or o.container.split("/")[1] in (
            "KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-PROXY-FIREWALL")
                   or re.search(r"/KUBE-(SVC|SVL|EXT|FW|SEP)-", o.container) for o in svc.objects), svc.key


def test_endpoints_behind_a_local_chain_are_marked_local(model):
    etp = model.service("default/etp-local:")
    assert {e.address: e.local for e in etp.endpoints} == {"10.244.1.4:8080": True, "10.244.2.4:8080": None}


def test_objects_are_grouped_by_service_and_static_chains_are_shared(model, ruleset):
    owned = [o for s in model.services for o in s.objects]
    every_rule = sum(len(rules) for _, rules in ruleset.chains())
    rules = [o for o in owned + list(model.shared) if o.kind == "rule" and "/" in o.container
             and o.container.split("/")[1].startswith("KUBE-")]
    assert len(rules) == every_rule
    assert not model.unowned
    shared_chains = {o.text for o in model.shared if o.kind == "chain"}
    assert {"KUBE-MARK-MASQ", "KUBE-POSTROUTING", "KUBE-FORWARD"} <= shared_chains
    assert {(o.container, o.text) for o in model.shared if o.container == "nat/PREROUTING"}


def test_chains_nothing_reaches_are_unowned(ruleset):
    chains = _chains(ruleset)
    chains[("nat", "KUBE-SEP-STALESTALESTALE1")] = [("-p tcp -j DNAT --to-destination 10.244.9.9:80", 5, 300)]
    model = build(chains, [], "n")
    assert [(o.kind, o.text) for o in model.unowned] == [
        ("chain", "KUBE-SEP-STALESTALESTALE1"), ("rule", "-p tcp -j DNAT --to-destination 10.244.9.9:80")]
    assert model.unowned[1].packets == 5


def test_select_keeps_one_service(model):
    multi = model.select("default", "multi")
    assert [s.port_name for s in multi.services] == ["http", "https"]
    assert not multi.shared and not multi.unowned


# ------------------------------------------------------------------ trace


@pytest.mark.parametrize("case,src,dst,dport,proto,expected,masq", CASES, ids=[c[0] for c in CASES])
def test_path_tracer_agrees_with_the_iptables_tracer(ruleset, model, case, src, dst, dport, proto, expected, masq):
    chains = ruleset.chain_map()
    report = trace_chains(chains, Probe(proto, src, 0, dst, dport), [fx.NODE_IP], model)
    plain = Tracer(ruleset, local_addresses=[fx.NODE_IP]).trace(src, dst, dport, proto)
    assert {c.outcome: pytest.approx(c.probability) for c in report.candidates} == plain.outcomes
    assert {c.outcome: c.masquerade for c in report.candidates} == plain.masquerade
    for c in report.candidates:
        for step in c.path:  # every step is the rule the kernel holds at that place
            table, chain = step.container.split("/")
            assert chains[(table, chain)][step.index] == step.text
        if c.is_endpoint:
            assert c.path[-1].text.endswith(f"--to-destination {c.outcome}")
            assert report.service and report.frontend is not None
            assert report.frontend.port == dport
        elif c.outcome in ("DROP", "REJECT"):
            assert c.path and c.path[-1].text.endswith(f"-j {c.outcome}")
    if expected == {"ACCEPT"}:
        assert report.service == "" and report.note


def test_trace_names_service_frontend_and_path(ruleset, model):
    report = trace_chains(ruleset.chain_map(), Probe("tcp", fx.EXTERNAL_CLIENT, 0, fx.NODE_IP, 30080),
                          [fx.NODE_IP], model)
    assert report.service == "default/nodeport:"
    assert (report.frontend.kind, report.frontend.port) == ("nodePort", 30080)
    first = report.candidates[0]
    containers = [s.container for s in first.path]
    assert containers[:3] == ["nat/KUBE-SERVICES", "nat/KUBE-NODEPORTS", containers[2]]
    assert containers[2].startswith("nat/KUBE-EXT-") and first.masquerade


def test_probe_parsing():
    assert Probe.parse("TCP", "10.0.0.1:1234", "10.96.0.1:80") == Probe("tcp", "10.0.0.1", 1234, "10.96.0.1", 80)
    assert Probe.parse("udp", "10.0.0.1", "10.96.0.1:53").sport == 0
    assert Probe.parse("tcp", "[fd00:10::2]:1234", "[fd00:172:30::41]:80") == \
        Probe("tcp", "fd00:10::2", 1234, "fd00:172:30::41", 80)
    assert Probe.parse("tcp", "2600:5200::1", "[2001:db8::1]:3001").src == "2600:5200::1"
    for proto, src, dst in [("icmp", "1.2.3.4", "1.2.3.4:1"), ("tcp", "x", "1.2.3.4:1"),
                            ("tcp", "1.2.3.4", "1.2.3.4"), ("tcp", "1.2.3.4", "1.2.3.4:0"),
                            ("tcp", "1.2.3.4:99999", "1.2.3.4:1"), ("tcp", "1.2.3.4", "::1:80"),
                            ("tcp", "1.2.3.4", "[fd00::1]"), ("tcp", "[nope]:1", "1.2.3.4:1")]:
        with pytest.raises(ProbeError):
            Probe.parse(proto, src, dst)


# ------------------------------------------------------------------ diff


def test_diff_of_equal_states_is_empty(ruleset, model):
    assert diff(model, IptablesAdapter().from_ruleset(render(fx.state()), "node-1")) == []


def test_diff_finds_missing_unexpected_duplicated_and_reordered_rules(ruleset, model):
    chains = _chains(ruleset)
    key = next(k for k in chains if k[1].startswith("KUBE-SVC-") and len(chains[k]) > 2)
    removed = chains[key].pop(1)
    hand_made = ("-d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j ACCEPT", 0, 0)
    chains[("nat", "KUBE-SERVICES")] = [hand_made] + list(chains[("nat", "KUBE-SERVICES")])
    found = diff(model, build(chains, _jumps(ruleset), "node-1"))
    assert {(d.kind, d.object.container, d.object.text) for d in found} == {
        ("missing", f"{key[0]}/{key[1]}", removed[0]), ("unexpected", "nat/KUBE-SERVICES", hand_made[0])}
    assert next(d for d in found if d.kind == "unexpected").scope == "shared"

    dup = _chains(ruleset)
    dup[key] = dup[key] + [dup[key][-1]]
    assert [(d.kind, d.object.container) for d in diff(model, build(dup, _jumps(ruleset), "node-1"))] == [
        ("unexpected", f"{key[0]}/{key[1]}")]

    swapped = _chains(ruleset)
    swapped[key] = [swapped[key][1], swapped[key][0]] + swapped[key][2:]
    assert [(d.kind, d.object.container) for d in diff(model, build(swapped, _jumps(ruleset), "node-1"))] == [
        ("order", f"{key[0]}/{key[1]}")]


def _jumps(ruleset):
    return [(j.table, j.chain, (j.restore_text(), 0, 0)) for j in ruleset.jumps]


# ------------------------------------------------------------------ output


def test_json_and_yaml_outputs_validate_against_the_schema(schema, ruleset, model):
    import yaml
    report = trace_chains(ruleset.chain_map(), Probe("tcp", fx.LOCAL_POD, 0, "10.96.0.10", 80), [fx.NODE_IP], model)
    chains = _chains(ruleset)
    chains[("nat", "KUBE-SEP-STALESTALESTALE1")] = [("-j DNAT --to-destination 10.244.9.9:80", 1, 60)]
    differences = diff(model, build(chains, _jumps(ruleset), "node-1"))
    docs = [model.to_dict(), report.to_dict(), output.diff_doc(differences, "iptables", "node-1"),
            output.diff_doc([], "iptables", "node-1")]
    for doc in docs:
        jsonschema.validate(json.loads(output.as_json(doc)), schema)
        jsonschema.validate(yaml.safe_load(output.as_yaml(doc)), schema)
    broken = model.to_dict()
    broken["services"][0]["frontends"][0]["kind"] = "bogus"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


@pytest.mark.parametrize("width", [60, 80, 132])
def test_text_fits_the_width_and_columns_align(model, ruleset, width):
    report = trace_chains(ruleset.chain_map(), Probe("tcp", fx.EXTERNAL_CLIENT, 0, fx.NODE_IP, 30081),
                          [fx.NODE_IP], model)
    found = diff(model, build({}, [], "node-1"))
    checked = 0
    for text in (output.rules_text(model, width), output.trace_text(report, width), output.diff_text(found, width)):
        lines = text.splitlines()
        assert max(len(line) for line in lines) <= width
        assert "\x1b" not in text
        # in each table, every row starts its columns where the header does (group lines, which
        # name a chain, have one word and are skipped)
        for i, line in enumerate(lines):
            if not line.strip().startswith(("PKTS", "ENDPOINT", "DIFF")):
                continue
            starts = [m.start() for m in re.finditer(r"(?<=  )[^ ]", line)]
            for row in lines[i + 1:]:
                if not row.strip() or row.strip().startswith(("PKTS", "ENDPOINT", "DIFF")):
                    break
                if len(row.split()) == 1 or (row.startswith("  ") and not row.startswith("    ") and "/" in row
                                              and "  " not in row.strip()):
                    continue
                for s in starts:  # no cell runs into the two-space gap before the next column
                    if line[s] != "…" and s < len(row):
                        assert row[s - 2:s] == "  ", (line, row)
                        checked += 1
    assert checked > 100
    assert "…" in output.rules_text(model, 60)
    # the trace shows each step's place and rule
    assert "nat/KUBE-NODEPORTS #" in output.trace_text(report, width)


def test_text_names_services_as_people_write_them(model):
    text = output.rules_text(model, 120)
    assert "\ndefault/empty  TCP" in text and "\ndefault/web:http  TCP" in text
    assert '--comment' not in text.split("PKTS", 1)[1].split("\n\n")[0]  # rule comments left out


def test_diff_text_names_the_settings_it_rendered_with(model):
    found = diff(model, build({}, [], "node-1"))
    text = output.diff_text(found, 100, settings="node n1, cluster CIDR 10.244.0.0/16, masquerade-all false")
    assert text.splitlines()[-1] == "(desired state rendered for node n1, cluster CIDR 10.244.0.0/16, masquerade-all false)"
    assert output.diff_text([], 100, settings="x") == "kernel matches the desired state\n"


def test_colour_only_when_asked(model):
    coloured = output.rules_text(model, 100, colour=True)
    assert "\x1b[" in coloured
    assert ANSI.sub("", coloured) == output.rules_text(model, 100, colour=False)


# ------------------------------------------------------------------ --send helpers


def test_conntrack_line_and_confirmation(ruleset, model):
    probe = Probe("tcp", "10.200.0.2", 40000, "10.96.0.10", 80)
    line = ("tcp      6 119 SYN_SENT src=10.200.0.2 dst=10.96.0.10 sport=40000 dport=80 [UNREPLIED] "
            "src=10.244.1.3 dst=10.200.0.11 sport=8080 dport=40000 mark=0 use=1")
    seen = parse_conntrack(line, probe)
    assert seen == Observed("10.244.1.3:8080", True, line)
    report = trace_chains(ruleset.chain_map(), probe, [fx.NODE_IP], model)
    assert confirm(report, seen).ok
    assert not confirm(report, replace(seen, outcome="10.244.9.9:8080")).ok
    assert not confirm(report, replace(seen, masquerade=False)).ok
    assert not confirm(report, Observed("", False)).ok
    rejected = trace_chains(ruleset.chain_map(), Probe("tcp", fx.LOCAL_POD, 1, "10.96.0.24", 80), [fx.NODE_IP], model)
    assert confirm(rejected, Observed("", False)).ok


# ------------------------------------------------------------------ adapters and CLI errors


def test_adapter_registry_and_reading():
    from kproxy.rules.adapter import read, register, ADAPTERS
    assert adapter_for("iptables").mode == "iptables"
    with pytest.raises(NoAdapter, match="no rules adapter for mode 'nosuch'"):
        adapter_for("nosuch")
    register("test-mode", "kproxy.rules.iptables", "IptablesAdapter")
    try:
        assert adapter_for("test-mode").mode == "iptables"
    finally:
        del ADAPTERS["test-mode"]

    class Backend:
        def inspect(self):
            return "inspected"

    class Reader:
        def read(self, backend):
            return "read " + backend.inspect()

    assert read(IptablesAdapter(), Backend()) == "inspected"  # no read(): the backend's inspect()
    assert read(Reader(), Backend()) == "read inspected"


@pytest.mark.parametrize("argv,message", [
    (["rules", "notaservice"], "expected NAMESPACE/SERVICE, trace or diff"),
    (["rules", "--src", "1.2.3.4"], "belong to `kproxy rules trace`"),
    (["rules", "--lab", "x"], "--lab needs --node"),
    (["rules", "--mode", "nosuch"], "no rules adapter for mode 'nosuch'"),
    (["rules", "--netns", "kproxy-no-such-netns"], "--netns"),
    (["rules", "--node", "node1", "--lab", "no-such-lab-here"], "--node: lab 'no-such-lab-here' is not up"),
    (["rules", "--config", "/nonexistent/kp.yaml"], "config file /nonexistent/kp.yaml"),
    (["rules", "trace", "--mode", "userspace", "--proto", "tcp", "--src", "10.0.0.1", "--dst", "10.96.0.1:80",
      "--send"], "--send: not for userspace mode"),
])
def test_cli_errors_are_one_line(capsys, argv, message):
    code = kproxy_main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
