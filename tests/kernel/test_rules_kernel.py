"""kproxy rules against a real kernel (tests/kernel/topology.py, one node, both iptables
variants): the model read back from iptables-save equals the rendered one, counters move with
real traffic, traces agree with the endpoints that really answered (and with --send's
conntrack entry), and diff catches rules added and deleted by hand."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest

from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from kproxy.rules.diff import diff
from kproxy.rules.iptables import IptablesAdapter
from kproxy.rules.trace import Probe
from tests.kernel.topology import CLIENT_IP, NODE_IP, POD_PORT, single_node

pytestmark = pytest.mark.kernel

CLUSTER_CIDR = "10.244.0.0/16"
TRIES = 30  # P(one of 2 endpoints never answers in 30 tries) = 2 * 2^-30
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = os.path.join(ROOT, "docs", "rules-schema.json")


@pytest.fixture(scope="module")
def topo():
    with single_node(["a", "b", "c"], tag="rulk") as topology:
        yield topology


@pytest.fixture(params=["nft", "legacy"])
def mode(request):
    return request.param  # the backend fixture (tests/kernel/conftest.py): iptables with this variant


def ep(topo, pod: str, local: bool = True) -> Endpoint:
    return Endpoint(topo.pods[pod].ip, POD_PORT, is_local=local, node_name="n1" if local else "n2")


def state(topo) -> ProxyState:
    web = ServicePort("default", "web", "http", "TCP", 80, cluster_ips=("10.96.0.10",), node_port=30080,
                      endpoints=tuple(sorted([ep(topo, "a"), ep(topo, "b")])))
    local = ServicePort("default", "local", "", "TCP", 80, cluster_ips=("10.96.0.11",), node_port=30081,
                        external_ips=("192.0.2.10",), external_policy_local=True, health_check_node_port=32001,
                        endpoints=tuple(sorted([ep(topo, "c"), ep(topo, "a", local=False)])))
    dns = ServicePort("kube-system", "dns", "dns", "UDP", 53, cluster_ips=("10.96.0.53",),
                      endpoints=(Endpoint(topo.pods["b"].ip, POD_PORT, node_name="n1", is_local=True),))
    empty = ServicePort("default", "empty", "", "TCP", 80, cluster_ips=("10.96.0.12",))
    return ProxyState("n1", node_ips=(NODE_IP,), cluster_cidr=CLUSTER_CIDR,
                      services={s.key: s for s in (web, local, dns, empty)})


def sync(backend, topo):
    ruleset = backend.render(state(topo))
    backend.apply(ruleset, None)
    return ruleset


def kproxy(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kproxy", *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def test_kernel_model_is_the_rendered_model_and_counts_real_packets(topo, backend):
    ruleset = sync(backend, topo)
    adapter = IptablesAdapter()
    desired = adapter.from_ruleset(ruleset, topo.node)
    kernel = adapter.from_inspection(backend.inspect(), topo.node)
    assert diff(desired, kernel) == []
    assert [(s.key, s.protocol, s.frontends, s.endpoints) for s in kernel.services] == [
        (s.key, s.protocol, s.frontends, s.endpoints) for s in desired.services]
    assert kernel.detail == {"variant": backend.variant.name}
    web = kernel.service("default/web:http")
    assert web.packets == 0
    for _ in range(5):
        topo.tcp(topo.client, "10.96.0.10", 80)
    web = adapter.from_inspection(backend.inspect(), topo.node).service("default/web:http")
    dispatch = next(o for o in web.objects if o.container == "nat/KUBE-SERVICES")
    assert dispatch.packets == 5 and dispatch.bytes > 0  # one NEW packet per connection in nat
    dnat = [o for o in web.objects if "--to-destination" in o.text]
    assert sum(o.packets for o in dnat) == 5
    assert web.packets == 5  # the Service's total counts each connection once (entry objects)
    assert sum(e.packets for e in web.endpoints) == 5


@pytest.mark.parametrize("src_ns,dst,port", [
    ("client", "10.96.0.10", 80),   # clusterIP from off-cluster: both endpoints, masqueraded
    ("client", NODE_IP, 30080),     # NodePort
    ("client", NODE_IP, 30081),     # eTP Local NodePort: the local endpoint only, source kept
    ("pod", "10.96.0.11", 80),      # clusterIP of the eTP Local Service from a pod: both, source kept
])
def test_trace_predicts_the_endpoints_that_answer(topo, backend, src_ns, dst, port):
    sync(backend, topo)
    ns = topo.client if src_ns == "client" else topo.pods["b"].netns
    src = CLIENT_IP if src_ns == "client" else topo.pods["b"].ip
    report = IptablesAdapter().trace(backend.inspect(), Probe("tcp", src, 0, dst, port), [NODE_IP])
    assert report.service and report.frontend is not None
    assert sum(c.probability for c in report.candidates) == pytest.approx(1.0)
    by_ip = {c.outcome.split(":")[0]: c for c in report.candidates}
    pod_ips = {p.ip: name for name, p in topo.pods.items()}
    answered = set()
    for _ in range(TRIES):
        pod, seen_source = topo.tcp(ns, dst, port)
        ip = topo.pods[pod].ip
        assert ip in by_ip, (pod, report.candidates)
        # masqueraded: the pod sees the node's address; otherwise the client's own
        assert (seen_source == NODE_IP) == by_ip[ip].masquerade, (pod, seen_source)
        answered.add(ip)
    assert answered == set(by_ip), "every candidate with p > 0 answers in TRIES attempts"
    assert all(ip in pod_ips for ip in by_ip)


def test_trace_of_a_service_without_endpoints_is_reject_and_the_kernel_refuses(topo, backend):
    sync(backend, topo)
    report = IptablesAdapter().trace(backend.inspect(), Probe("tcp", CLIENT_IP, 0, "10.96.0.12", 80), [NODE_IP])
    assert [c.outcome for c in report.candidates] == ["REJECT"]
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.client, "10.96.0.12", 80)


def test_cli_trace_send_is_confirmed_by_conntrack(topo, backend):
    sync(backend, topo)
    with open(SCHEMA) as f:
        schema = json.load(f)
    flavour = ["--iptables-backend", backend.variant.name]
    for proto, dst in (("tcp", "10.96.0.10:80"), ("udp", "10.96.0.53:53"), ("tcp", "10.96.0.12:80")):
        res = kproxy("rules", "trace", "--netns", topo.node, *flavour, "--proto", proto, "--src", CLIENT_IP,
                     "--dst", dst, "--send", "-o", "json")
        assert res.returncode == 0, res.stderr + res.stdout
        doc = json.loads(res.stdout)
        jsonschema.validate(doc, schema)
        assert doc["sent"]["confirmed"], doc["sent"]
        outcomes = {c["outcome"] for c in doc["candidates"]}
        if dst != "10.96.0.12:80":
            assert doc["sent"]["observed"]["outcome"] in outcomes
        else:
            assert outcomes == {"REJECT"} and doc["sent"]["observed"]["outcome"] == ""


def test_cli_show_json_and_text(topo, backend):
    sync(backend, topo)
    flavour = ["--iptables-backend", backend.variant.name]
    res = kproxy("rules", "--netns", topo.node, *flavour, "-o", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    with open(SCHEMA) as f:
        jsonschema.validate(doc, json.load(f))
    assert [s["name"] for s in doc["services"]] == ["empty", "local", "web", "dns"]
    res = kproxy("rules", "default/web", "--netns", topo.node, *flavour, "--width", "80")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[2].startswith("default/web:http  TCP") and max(map(len, lines)) <= 80
    assert "10.96.0.10:80/tcp (clusterIP)" in res.stdout and "*:30080/tcp (nodePort)" in res.stdout
    res = kproxy("rules", "default/nosuch", "--netns", topo.node, *flavour)
    assert res.returncode == 1 and res.stderr.strip() == (
        "kproxy rules: no rules for Service default/nosuch in the kernel (iptables mode)")


def test_diff_catches_rules_added_and_deleted_by_hand(topo, backend):
    ruleset = sync(backend, topo)
    adapter = IptablesAdapter()
    desired = adapter.from_ruleset(ruleset, topo.node)
    ipt = [backend.variant.iptables, "-t", "nat"]
    backend.netns.command(ipt + ["-I", "KUBE-SERVICES", "1", "-d", "10.96.0.99/32", "-p", "tcp", "--dport", "80",
                                 "-j", "DNAT", "--to-destination", "10.244.1.99:80"])
    sep = next(o.text for o in desired.service("default/web:http").objects if o.kind == "chain"
               and o.text.startswith("KUBE-SEP-"))
    backend.netns.command(ipt + ["-F", sep])
    found = diff(desired, adapter.from_inspection(backend.inspect(), topo.node))
    # what a packet meets: one endpoint of web is gone
    assert [(d.kind, d.scope, d.object.text.split()[0]) for d in found if d.object.kind == "behaviour"] == [
        ("missing", "default/web:http", "endpoint")]
    unexpected = [d for d in found if d.kind == "unexpected"]
    missing = [d for d in found if d.kind == "missing" and d.object.kind != "behaviour"]
    assert [(d.scope, d.object.container) for d in unexpected] == [("shared", "nat/KUBE-SERVICES")]
    assert "10.244.1.99:80" in unexpected[0].object.text
    assert {d.object.container for d in missing} == {f"nat/{sep}"} and len(missing) == 2
    assert all(d.scope == "default/web:http" for d in missing)
    # a stale chain from an earlier agent is unexpected too, as an unowned object
    backend.netns.command(ipt + ["-N", "KUBE-SEP-STALESTALESTALE1"])
    found = diff(desired, adapter.from_inspection(backend.inspect(), topo.node))
    assert ("unexpected", "unowned", "KUBE-SEP-STALESTALESTALE1") in {
        (d.kind, d.scope, d.object.text) for d in found}
    backend.apply(ruleset, None)  # a full sync repairs all of it
    assert diff(desired, adapter.from_inspection(backend.inspect(), topo.node)) == []
