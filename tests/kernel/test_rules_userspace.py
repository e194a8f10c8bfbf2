"""kproxy rules for userspace mode against a real proxy process and real rules (one node,
tests/kernel/topology.py): listeners and redirect rules attributed to their Service port, the
model read back equals the rendered one (listener ports aside), and diff catches hand edits."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest

from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from kproxy.rules.adapter import read
from kproxy.rules.diff import diff
from kproxy.rules.trace import Probe
from kproxy.rules.userspace import UserspaceAdapter
from tests.kernel.backends import config_for
from tests.kernel.topology import CLIENT_IP, NODE_IP, POD_PORT, single_node

pytestmark = pytest.mark.kernel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = os.path.join(ROOT, "docs", "rules-schema.json")


@pytest.fixture(scope="module")
def topo():
    with single_node(["a", "b"], tag="rulus") as topology:
        yield topology


@pytest.fixture
def mode():
    return "userspace"  # the backend fixture: tests/kernel/conftest.py


@pytest.fixture
def backend_config(mode):
    return config_for(mode, iptables={"localhost_nodeports": False})


def state(topo) -> ProxyState:
    eps = tuple(sorted(Endpoint(p.ip, POD_PORT, node_name="n1", is_local=True) for p in topo.pods.values()))
    web = ServicePort("default", "web", "", "TCP", 80, cluster_ips=("10.96.0.10",), node_port=30080, endpoints=eps)
    empty = ServicePort("default", "empty", "", "TCP", 80, cluster_ips=("10.96.0.12",))
    return ProxyState("n1", node_ips=(NODE_IP,), cluster_cidr="10.244.0.0/16",
                      services={s.key: s for s in (web, empty)})


def test_listeners_and_rules_per_service_and_diff(topo, backend):
    plan = backend.render(state(topo))
    backend.apply(plan, None)
    for _ in range(3):
        topo.tcp(topo.client, "10.96.0.10", 80)
    adapter = UserspaceAdapter()
    kernel = adapter.from_inspection(backend.inspect(), topo.node)
    desired = adapter.from_ruleset(plan, topo.node)
    assert diff(desired, kernel) == []
    web = kernel.service("default/web:")
    assert {(f.kind, f.ip, f.port) for f in web.frontends} == {("clusterIP", "10.96.0.10", 80), ("nodePort", "", 30080)}
    assert {e.address for e in web.endpoints} == {f"{p.ip}:{POD_PORT}" for p in topo.pods.values()}
    listeners = [o for o in web.objects if o.kind == "listener"]
    assert [o.container for o in listeners] == sorted(f"userspace/{k}" for k in plan.listeners
                                                      if k.startswith("default/web:#"))
    assert listeners and all(f"{p.ip}:{POD_PORT}" in o.text for o in listeners for p in topo.pods.values())
    assert web.packets == 3  # the clusterIP redirect rule saw the three connections
    assert [o.kind for o in kernel.service("default/empty:").objects] == ["rule"]  # REJECT, no listener

    # a redirect deleted by hand is missing; a rule added by hand is unexpected
    ipt = ["iptables-nft", "-t", "nat"]
    dispatch = next(o for o in web.objects if o.container == "nat/KUBE-SERVICES")
    port = dispatch.text.rsplit(":", 1)[1] if "--to-destination" in dispatch.text else dispatch.text.split()[-1]
    backend.netns.command(ipt + ["-D", "KUBE-SERVICES", "1"])
    backend.netns.command(ipt + ["-A", "KUBE-NODEPORTS", "-p", "tcp", "--dport", "30999", "-j", "REDIRECT",
                                 "--to-ports", port])
    found = {(d.kind, d.scope, d.object.container) for d in diff(desired, adapter.from_inspection(backend.inspect(),
                                                                                                 topo.node))}
    assert found == {("missing", "default/web:", "nat/KUBE-SERVICES"), ("unexpected", "shared", "nat/KUBE-NODEPORTS"),
                     ("missing", "default/web:", "default/web:")}  # what a packet meets: a frontend is gone


def test_cli_shows_userspace_mode_as_json(topo, backend):
    backend.apply(backend.render(state(topo)), None)
    res = subprocess.run([sys.executable, "-m", "kproxy", "rules", "--mode", "userspace", "--netns", topo.node,
                          "--iptables-backend", "nft", "-o", "json"], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    with open(SCHEMA) as f:
        jsonschema.validate(doc, json.load(f))
    assert doc["mode"] == "userspace" and [s["name"] for s in doc["services"]] == ["empty", "web"]
    res = subprocess.run([sys.executable, "-m", "kproxy", "rules", "trace", "--mode", "userspace", "--netns",
                          topo.node, "--proto", "tcp", "--src", f"{CLIENT_IP}:{SPORTS[0]}", "--dst", "10.96.0.10:80",
                          "-o", "json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["mode"] == "userspace" and doc["service"] == "default/web:"
    [only] = doc["candidates"]
    assert only["probability"] == 1.0 and only["path"][-1]["container"] == "userspace/default/web:#internal"
    assert only["outcome"] == _answered_by(topo, SPORTS[0])


SPORTS = tuple(range(41000, 41012))


def _answered_by(topo, sport: int) -> str:
    """Connects from the client with source port `sport`; the endpoint ("ip:port") that answered."""
    pod, _ = topo.tcp(topo.client, "10.96.0.10", 80, source=CLIENT_IP, source_port=sport)
    return f"{topo.pods[pod].ip}:{POD_PORT}"


def test_trace_predicts_the_endpoint_maglev_picks(topo, backend):
    backend.apply(backend.render(state(topo)), None)
    adapter = UserspaceAdapter()
    reading = read(adapter, backend)
    assert reading.balancer == "maglev"
    predicted = {}
    for sport in SPORTS:
        report = adapter.trace(reading, Probe("tcp", CLIENT_IP, sport, "10.96.0.10", 80), [NODE_IP])
        assert report.service == "default/web:" and report.frontend.kind == "clusterIP"
        [only] = report.candidates
        assert only.probability == 1.0
        assert not only.masquerade  # the pods are on this node: the proxy connects with the client's address
        predicted[sport] = only.outcome
    assert {sport: _answered_by(topo, sport) for sport in SPORTS} == predicted
    assert topo.tcp(topo.client, "10.96.0.10", 80)[1] == CLIENT_IP  # and the pods do see the client
    assert set(predicted.values()) == {f"{p.ip}:{POD_PORT}" for p in topo.pods.values()}  # both were picked

    # without a source port: every endpoint with its share of the Maglev table
    report = adapter.trace(reading, Probe("tcp", CLIENT_IP, 0, "10.96.0.10", 80), [NODE_IP])
    assert {c.outcome for c in report.candidates} == set(predicted.values())
    assert abs(sum(c.probability for c in report.candidates) - 1.0) < 1e-9
    assert all(0.3 < c.probability < 0.7 for c in report.candidates)
    # a Service without endpoints: rejected by its rule, no listener involved
    report = adapter.trace(reading, Probe("tcp", CLIENT_IP, 41000, "10.96.0.12", 80), [NODE_IP])
    assert [c.outcome for c in report.candidates] == ["REJECT"]


def test_cli_marks_sctp_service_ports_as_skipped(topo, backend):
    """userspace mode does not proxy SCTP: `kproxy rules` names such Service ports as skipped
    (json and text), from what the proxy process was told, without the apiserver."""
    st = state(topo)
    sctp = ServicePort("default", "sig", "diameter", "SCTP", 3868, cluster_ips=("10.96.0.13",))
    backend.apply(backend.render(ProxyState("n1", node_ips=st.node_ips, cluster_cidr=st.cluster_cidr,
                                            services={**st.services, sctp.key: sctp})), None)
    argv = [sys.executable, "-m", "kproxy", "rules", "--mode", "userspace", "--netns", topo.node,
            "--iptables-backend", "nft"]
    res = subprocess.run(argv + ["-o", "json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    with open(SCHEMA) as f:
        jsonschema.validate(doc, json.load(f))
    assert doc["skipped"] == [{"service": "default/sig:diameter", "reason": "userspace mode does not proxy SCTP"}]
    assert [s["name"] for s in doc["services"]] == ["empty", "web"]
    for selection in ([], ["default/sig"]):
        res = subprocess.run(argv + selection + ["--no-objects", "--width", "200"], capture_output=True, text=True,
                             cwd=ROOT, timeout=120)
        assert res.returncode == 0, res.stderr
        assert "default/sig:diameter  SKIPPED: userspace mode does not proxy SCTP" in res.stdout


def test_trace_follows_the_local_policy_short_circuit(topo, backend):
    """externalTrafficPolicy Local: a trace from a pod (pod CIDR) or from the node to the NodePort
    reaches every endpoint, one from outside only the local one (as the proxy does)."""
    a, b = (topo.pods[p].ip for p in ("a", "b"))
    svc = ServicePort("default", "etp", "", "TCP", 80, cluster_ips=("10.96.0.14",), node_port=30090,
                      external_policy_local=True,
                      endpoints=(Endpoint(a, POD_PORT, node_name="n1", is_local=True),
                                 Endpoint(b, POD_PORT, node_name="n2", is_local=False)))
    backend.apply(backend.render(ProxyState("n1", node_ips=(NODE_IP,), cluster_cidr="10.244.0.0/16",
                                            services={svc.key: svc})), None)
    adapter = UserspaceAdapter()
    reading = read(adapter, backend)

    def outcomes(src: str) -> set[str]:
        report = adapter.trace(reading, Probe("tcp", src, 0, NODE_IP, 30090), [NODE_IP])
        return {c.outcome for c in report.candidates}

    everyone = {f"{a}:{POD_PORT}", f"{b}:{POD_PORT}"}
    assert outcomes("10.244.7.7") == everyone  # a pod
    assert outcomes(NODE_IP) == everyone  # the node itself
    assert outcomes(CLIENT_IP) == {f"{a}:{POD_PORT}"}
