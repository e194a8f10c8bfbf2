"""The real agent runs with nothing but DIR/kube-proxy.kubeconfig (client certificate of
system:kube-proxy, server verified against the cluster CA) and its default RBAC rights: it
syncs Services and EndpointSlices, is never refused, and cannot write a Service."""
from __future__ import annotations

import json

import pytest

from kproxy.api.resources import ENDPOINT_SLICES, NODES, SERVICES
from kproxy.api.status import ApiError
from kproxy.client.sync import Client
from tests import nsutil
from tests.agent.agentproc import HEALTHZ_PORT, AgentProcess, wait_until
from tests.apiserver.fixtures import start_apiserver

pytestmark = pytest.mark.kernel  # needs root for the network namespace


@pytest.fixture
def tls_apiserver(tmp_path):
    server = start_apiserver(tmp_path, ["--no-controllers"])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def agent_ns():
    with nsutil.netns("secagent") as name:
        yield name


def test_agent_syncs_with_its_own_identity_only(tmp_path, tls_apiserver, agent_ns):
    admin = Client.from_kubeconfig(tls_apiserver.kubeconfig)
    try:
        admin.create(NODES, {"metadata": {"name": "node-1"},
                             "status": {"addresses": [{"type": "InternalIP", "address": "10.200.0.11"}]}})
        admin.create(SERVICES, {"metadata": {"name": "web", "namespace": "default"},
                                "spec": {"clusterIP": "10.96.0.50", "selector": {"app": "web"},
                                         "ports": [{"name": "p", "port": 80, "targetPort": 8080}]}})
        admin.create(ENDPOINT_SLICES, {
            "addressType": "IPv4", "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}],
            "metadata": {"name": "web-a", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "endpoints": [{"addresses": ["10.244.1.2"], "nodeName": "node-1", "conditions": {"ready": True}}]})
    finally:
        admin.close()
    kubeconfig = str(tls_apiserver.data_dir / "kube-proxy.kubeconfig")
    with AgentProcess(tmp_path, kubeconfig, agent_ns) as agent:
        rec = agent.wait_record(lambda r: r["ruleset"]["services"].get("default/web:p", {}).get("endpoints"),
                                what="web with its endpoint in the agent's state")
        assert rec["ruleset"]["node_ips"] == ["10.200.0.11"]
        # the recorded state can precede the sync's end by a moment: wait for healthy, not any answer
        answer = wait_until(lambda: (a := agent.http_ready(HEALTHZ_PORT, "/healthz")) and a[0] == 200 and a,
                            what="healthz 200")
        assert answer[0] == 200
        assert agent.stop() == 0
    refused = [r for r in map(json.loads, (tls_apiserver.data_dir / "audit.log").read_text().splitlines())
               if r["user"] == "system:kube-proxy" and r["code"] in (401, 403)]
    assert refused == []
    # the same credential cannot change a Service
    agent_client = Client.from_kubeconfig(kubeconfig)
    try:
        with pytest.raises(ApiError) as exc:
            agent_client.delete(SERVICES, "web", namespace="default")
        assert exc.value.code == 403
        assert agent_client.get(SERVICES, "web", namespace="default")["spec"]["clusterIP"] == "10.96.0.50"
    finally:
        agent_client.close()
