"""`kproxy rules` without --mode reads the mode the node's agent programmed (one node,
tests/kernel/topology.py): from the agent's /proxyMode when it answers, else from what the
namespace holds (iptables, nftables, userspace here; ipvs in tests/vm/guest), and says so."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest

from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from tests.kernel.backends import config_for, open_backend
from tests.kernel.topology import NODE_IP, POD_PORT, _stop, _wait_listening, single_node

pytestmark = pytest.mark.kernel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = os.path.join(ROOT, "docs", "rules-schema.json")


@pytest.fixture(scope="module")
def topo():
    with single_node(["a"], tag="rdet") as topology:
        yield topology


def state(topo) -> ProxyState:
    web = ServicePort("default", "web", "", "TCP", 80, cluster_ips=("10.96.0.10",),
                      endpoints=(Endpoint(topo.pods["a"].ip, POD_PORT, node_name="n1", is_local=True),))
    return ProxyState("n1", node_ips=(NODE_IP,), cluster_cidr="10.244.0.0/16", services={web.key: web})


@pytest.fixture
def programmed(topo, request):
    """The node programmed by the mode named by the test's parameter; cleaned up afterwards."""
    with open_backend(topo.node, config_for(request.param, iptables={"localhost_nodeports": False})) as backend:
        backend.apply(backend.render(state(topo)), None)
        yield request.param


def rules(topo, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kproxy", "rules", "--netns", topo.node, *argv],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def json_rules(topo, *argv: str) -> dict:
    res = rules(topo, "-o", "json", *argv)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    with open(SCHEMA) as f:
        jsonschema.validate(doc, json.load(f))
    return doc


@pytest.mark.parametrize("programmed", ["iptables", "nftables", "userspace"], indirect=True)
def test_the_mode_is_read_from_the_kernel(topo, programmed):
    doc = json_rules(topo)
    assert doc["mode"] == programmed
    assert doc["modeDetection"]["source"] == "kernel" and doc["modeDetection"]["mode"] == programmed
    assert "no agent answered at 127.0.0.1:10249" in doc["modeDetection"]["reason"]
    assert [s["name"] for s in doc["services"]] == ["web"]
    res = rules(topo, "--no-objects")
    assert res.returncode == 0 and "web" in res.stdout
    assert res.stderr.startswith(f"kproxy rules: reading {programmed} mode: ")
    assert len(res.stderr.splitlines()) == 1


def test_an_empty_namespace_shows_the_iptables_view_and_says_so(topo):
    doc = json_rules(topo)
    assert doc["modeDetection"]["source"] == "default" and doc["mode"] == "iptables" and doc["services"] == []


@pytest.fixture
def agent(topo):
    """The agent's real metrics listener (kproxy.agent.servers.metrics_app) in the node's
    namespace, claiming nftables mode."""
    code = ("from aiohttp import web; from kproxy.agent.metrics import ProxyMetrics; "
            "from kproxy.agent.servers import metrics_app; "
            "web.run_app(metrics_app(ProxyMetrics(), 'nftables'), host='127.0.0.1', port=10249, print=None)")
    proc = subprocess.Popen(["ip", "netns", "exec", topo.node, sys.executable, "-c", code], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(topo.node, 10249, proc)
        yield proc
    finally:
        _stop(proc)


@pytest.mark.parametrize("programmed", ["nftables"], indirect=True)
def test_the_agent_answer_comes_first(topo, programmed, agent):
    # iptables chains left over from another mode do not mislead the detection
    topo.run(topo.node, ["iptables-nft", "-t", "nat", "-N", "KUBE-SERVICES"])
    try:
        doc = json_rules(topo)
    finally:
        topo.run(topo.node, ["iptables-nft", "-t", "nat", "-X", "KUBE-SERVICES"])
    assert doc["mode"] == "nftables" and [s["name"] for s in doc["services"]] == ["web"]
    assert doc["modeDetection"] == {"mode": "nftables", "source": "agent",
                                    "reason": "the agent's /proxyMode at 127.0.0.1:10249 answered 'nftables'"}
    # --mode still decides when given
    doc = json_rules(topo, "--mode", "iptables", "--iptables-backend", "nft")
    assert doc["mode"] == "iptables" and doc["modeDetection"]["source"] == "flag"


def test_a_bad_metrics_address_is_one_line_not_a_traceback(topo, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
                      "metricsBindAddress: 'not an address'\n")
    res = rules(topo, "--config", str(config))
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
