"""kproxy rules for nftables mode against the kernel (one node, tests/kernel/topology.py): the
model read back with `nft list table` equals the rendered one, Service ports own their map
elements, chains and maps, and diff catches elements and rules added or deleted by hand."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest

from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from kproxy.rules.diff import diff
from kproxy.rules.nftables import NftablesAdapter
from kproxy.rules.trace import Probe
from tests.kernel.topology import CLIENT_IP, NODE_IP, POD_PORT, single_node

pytestmark = pytest.mark.kernel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = os.path.join(ROOT, "docs", "rules-schema.json")
TRIES = 30  # P(one of 2 endpoints never answers) = 2 * 2^-30


@pytest.fixture(scope="module")
def topo():
    with single_node(["a", "b"], tag="rulnft") as topology:
        yield topology


@pytest.fixture
def mode():
    return "nftables"  # the backend fixture: tests/kernel/conftest.py


def state(topo) -> ProxyState:
    a = Endpoint(topo.pods["a"].ip, POD_PORT, node_name="n1", is_local=True)
    b = Endpoint(topo.pods["b"].ip, POD_PORT, node_name="n2", is_local=False)
    services = [
        ServicePort("default", "web", "http", "TCP", 80, cluster_ips=("10.96.0.10",), node_port=30080,
                    external_ips=("192.0.2.10",), external_policy_local=True, endpoints=(a, b)),
        ServicePort("default", "lb", "", "TCP", 80, cluster_ips=("10.96.0.11",), load_balancer_ips=("198.51.100.7",),
                    load_balancer_source_ranges=("10.0.0.0/8",), session_affinity_timeout=60, endpoints=(a, b)),
        ServicePort("kube-system", "dns", "dns", "UDP", 53, cluster_ips=("10.96.0.53",), endpoints=(a,)),
    ]
    return ProxyState("n1", node_ips=(NODE_IP,), cluster_cidr="10.244.0.0/16", services={s.key: s for s in services})


def read(adapter, backend):
    return adapter.from_inspection(backend.netns.run(adapter.read, backend), backend.netns.name)


def test_kernel_model_is_the_rendered_model(topo, backend):
    st = state(topo)
    ruleset = backend.render(st)
    backend.apply(ruleset, None)
    adapter = NftablesAdapter()
    kernel = read(adapter, backend)
    assert diff(adapter.from_ruleset(ruleset, topo.node), kernel) == []
    assert [s.key for s in kernel.services] == ["default/lb:", "default/web:http", "kube-system/dns:dns"]
    for svc in kernel.services:
        sp = st.services[svc.key]
        want = {("clusterIP", ip, sp.port) for ip in sp.cluster_ips}
        want |= {("externalIP", ip, sp.port) for ip in sp.external_ips}
        want |= {("loadBalancerIP", ip, sp.port) for ip in sp.load_balancer_ips}
        if sp.node_port:
            want.add(("nodePort", "", sp.node_port))
        assert {(f.kind, f.ip, f.port) for f in svc.frontends} == want, svc.key
        assert {e.address for e in svc.endpoints} == {e.address for e in sp.endpoints}, svc.key
    web = kernel.service("default/web:http")
    assert {e.address: e.local for e in web.endpoints} == {f"{topo.pods['a'].ip}:{POD_PORT}": True,
                                                           f"{topo.pods['b'].ip}:{POD_PORT}": None}
    assert sum(o.entry for o in web.objects) == 3  # clusterIP, externalIP and NodePort elements
    assert not kernel.unowned
    # the traffic really goes where the model says
    assert topo.udp(topo.client, "10.96.0.53", 53)[0] == "a"


def test_diff_catches_hand_edits(topo, backend):
    ruleset = backend.render(state(topo))
    backend.apply(ruleset, None)
    adapter = NftablesAdapter()
    desired = adapter.from_ruleset(ruleset, topo.node)
    nft = ["nft"]
    backend.netns.command(nft + ["add", "rule", "ip", "kproxy", "services", "ip", "daddr", "10.96.255.1", "tcp",
                                 "dport", "81", "drop"])
    backend.netns.command(nft + ["delete", "element", "ip", "kproxy", "service-ips", "{", "10.96.0.53", ".", "udp",
                                 ".", "53", "}"])
    backend.netns.command(nft + ["add", "chain", "ip", "kproxy", "service-aaaaaaaa-default/old/tcp/"])
    found = {(d.kind, d.scope, d.object.container) for d in diff(desired, read(adapter, backend))}
    assert found == {("unexpected", "shared", "nft/services"), ("missing", "kube-system/dns:dns", "nft/service-ips"),
                     ("unexpected", "unowned", "nft"),
                     # what a packet meets: dns is gone (nothing else reaches its chains)
                     ("missing", "kube-system/dns:dns", "kube-system/dns:dns")}
    backend.apply(ruleset, None)  # a full sync repairs it all
    assert diff(desired, read(adapter, backend)) == []


@pytest.mark.parametrize("src_ns,dst,port", [
    ("client", "10.96.0.10", 80),   # clusterIP from off-cluster: both endpoints, masqueraded
    ("client", NODE_IP, 30080),     # eTP Local NodePort: the local endpoint only, source kept
    ("pod", NODE_IP, 30080),        # the same NodePort from a pod: both endpoints
])
def test_trace_predicts_the_endpoints_that_answer(topo, backend, src_ns, dst, port):
    backend.apply(backend.render(state(topo)), None)
    ns = topo.client if src_ns == "client" else topo.pods["b"].netns
    src = CLIENT_IP if src_ns == "client" else topo.pods["b"].ip
    adapter = NftablesAdapter()
    report = adapter.trace(backend.netns.run(adapter.read, backend), Probe("tcp", src, 0, dst, port), [NODE_IP])
    by_ip = {c.outcome.split(":")[0]: c for c in report.candidates}
    assert report.service == "default/web:http" and all(c.is_endpoint for c in report.candidates)
    answered = set()
    for _ in range(TRIES):
        pod, seen_source = topo.tcp(ns, dst, port)
        candidate = by_ip[topo.pods[pod].ip]
        assert (seen_source == NODE_IP) == candidate.masquerade, (pod, seen_source)
        answered.add(topo.pods[pod].ip)
    assert answered == set(by_ip)


def test_cli_json_and_trace_send(topo, backend):
    backend.apply(backend.render(state(topo)), None)
    with open(SCHEMA) as f:
        schema = json.load(f)
    res = subprocess.run([sys.executable, "-m", "kproxy", "rules", "--mode", "nftables", "--netns", topo.node,
                          "-o", "json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, schema)
    assert doc["mode"] == "nftables" and len(doc["services"]) == 3
    for proto, dst in (("tcp", "10.96.0.10:80"), ("udp", "10.96.0.53:53")):
        res = subprocess.run([sys.executable, "-m", "kproxy", "rules", "trace", "--mode", "nftables", "--netns",
                              topo.node, "--proto", proto, "--src", CLIENT_IP, "--dst", dst, "--send", "-o", "json"],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert res.returncode == 0, res.stderr + res.stdout
        doc = json.loads(res.stdout)
        jsonschema.validate(doc, schema)
        assert doc["sent"]["confirmed"] and doc["sent"]["observed"]["outcome"] in {
            c["outcome"] for c in doc["candidates"]}
