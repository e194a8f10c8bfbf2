"""The real agent process against the real apiserver, with the test-only "record" backend:
objects flow into ProxyState, changes coalesce, a failed apply makes the next sync full, and
health/metrics answer inside the agent's network namespace."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from kproxy.api.resources import ENDPOINT_SLICES, NODES, PODS, SERVICES
from kproxy.client.sync import Client
from tests.agent.agentproc import HEALTHZ_PORT, METRICS_PORT, REPO, AgentProcess, wait_until
from tests.apiserver.fixtures import start_apiserver

pytestmark = pytest.mark.kernel  # needs root for the network namespace


def service(name, cluster_ip, port=80, protocol="TCP", labels=None):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": {"clusterIP": cluster_ip, "selector": {"app": name},
                     "ports": [{"name": "p", "port": port, "protocol": protocol, "targetPort": 8080}]}}


def endpoint_slice(name, svc, ips, node="node-1", ready=True):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": svc}},
            "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "nodeName": node, "conditions": {"ready": ready}} for ip in ips]}


def endpoints_of(record, key):
    svc = record["ruleset"]["services"].get(key)
    return None if svc is None else [(e["ip"], e["ready"], e["is_local"]) for e in svc["endpoints"]]


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_objects_flow_into_state_inside_netns(tmp_path, apiserver, client, agent_ns):
    client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
                          "status": {"addresses": [{"type": "InternalIP", "address": "10.200.0.11"}]}})
    client.create(SERVICES, service("web", "10.96.0.50"))
    client.create(SERVICES, service("ignored", "10.96.0.51",
                                    labels={"service.kubernetes.io/service-proxy-name": "other"}))
    client.create(ENDPOINT_SLICES, endpoint_slice("web-a", "web", ["10.244.1.2", "10.244.2.2"]))
    with AgentProcess(tmp_path, apiserver.kubeconfig, agent_ns) as agent:
        agent.wait_record(lambda r: "default/web:p" in r["ruleset"]["services"], what="web in state")
        # the very first sync waited for every informer: it already holds everything
        first = agent.records()[0]
        assert first["full"] and not first["failed"]
        assert first["netns"] == agent.netns_inode()  # applied on the netns thread
        assert first["ruleset"]["node_ips"] == ["10.200.0.11"]
        assert first["ruleset"]["cluster_cidr"] == "10.244.0.0/16"
        assert "default/ignored:p" not in first["ruleset"]["services"]
        assert first["ruleset"]["services"]["default/web:p"]["cluster_ips"] == ["10.96.0.50"]
        assert endpoints_of(first, "default/web:p") == [("10.244.1.2", True, True), ("10.244.2.2", True, True)]

        # an endpoint becomes not ready on another node: a partial sync carries it
        slc = client.get(ENDPOINT_SLICES, "web-a", namespace="default")
        slc["endpoints"][1]["conditions"] = {"ready": False}
        slc["endpoints"][1]["nodeName"] = "node-2"
        client.update(ENDPOINT_SLICES, slc)
        rec = agent.wait_record(lambda r: endpoints_of(r, "default/web:p") == [("10.244.1.2", True, True),
                                                                               ("10.244.2.2", False, False)],
                                what="updated endpoints")
        assert rec["full"] is False

        client.delete(SERVICES, "web", namespace="default")
        agent.wait_record(lambda r: "default/web:p" not in r["ruleset"]["services"] and r["ruleset"]["revision"] > 1,
                          what="service removed")

        # health and metrics are served inside the namespace
        status, body = wait_until(lambda: agent.http_ready(HEALTHZ_PORT, "/healthz"), what="healthz")
        assert status == 200
        doc = json.loads(body)
        assert doc["nodeEligible"] is True and doc["lastUpdated"] and doc["currentTime"]
        assert agent.http(HEALTHZ_PORT, "/livez")[0] == 200
        status, text = agent.http(METRICS_PORT, "/metrics")
        assert status == 200
        assert metric(text, "kubeproxy_sync_proxy_rules_duration_seconds_count") >= 3
        assert metric(text, "kubeproxy_sync_full_proxy_rules_duration_seconds_count") >= 1
        assert metric(text, "kubeproxy_sync_partial_proxy_rules_duration_seconds_count") >= 1
        assert metric(text, "kubeproxy_sync_proxy_rules_last_timestamp_seconds") > 0
        assert metric(text, "kubeproxy_sync_proxy_rules_service_changes_total") >= 2
        assert metric(text, "kubeproxy_sync_proxy_rules_endpoint_changes_total") >= 2
        assert agent.http(METRICS_PORT, "/proxyMode") == (200, "record")
        assert agent.stop() == 0
    # SIGTERM leaves the rules: the backend's cleanup was never called
    assert agent.records("cleanup") == []


def test_burst_of_changes_is_coalesced(tmp_path, apiserver, client, agent_ns):
    with AgentProcess(tmp_path, apiserver.kubeconfig, agent_ns, min_sync="2s") as agent:
        agent.wait_record(lambda r: True, what="first sync")
        count = 30
        for i in range(count):
            client.create(SERVICES, service(f"s{i}", f"10.96.1.{i + 1}"))
        final = agent.wait_record(
            lambda r: sum(k.startswith("default/s") for k in r["ruleset"]["services"]) == count, what="all services")
        applies = agent.records()
        # every change is in the state, through far fewer syncs than changes
        assert len(applies) < count
        assert applies[-1] == final


def test_failed_apply_makes_next_sync_full(tmp_path, apiserver, client, agent_ns):
    with AgentProcess(tmp_path, apiserver.kubeconfig, agent_ns) as agent:
        agent.wait_record(lambda r: True, what="first sync")
        client.create(SERVICES, service("a", "10.96.0.60"))
        agent.wait_record(lambda r: "default/a:p" in r["ruleset"]["services"] and not r["full"],
                          what="partial sync of a")
        agent.fail_next(2)
        client.create(SERVICES, service("b", "10.96.0.61"))
        ok = agent.wait_record(lambda r: "default/b:p" in r["ruleset"]["services"] and not r["failed"],
                               what="b applied after retries")
        failed = [r for r in agent.records() if r["failed"]]
        assert len(failed) == 2
        assert failed[0]["full"] is False  # the first attempt was partial
        assert failed[1]["full"] is True  # after a failure, the retry is full
        assert ok["full"] is True
        _, text = agent.http(METRICS_PORT, "/metrics")
        assert metric(text, "kubeproxy_sync_proxy_rules_iptables_restore_failures_total") == 2
        # once it succeeded, partial syncs resume
        client.create(SERVICES, service("c", "10.96.0.62"))
        rec = agent.wait_record(lambda r: "default/c:p" in r["ruleset"]["services"], what="c applied")
        assert rec["full"] is False and not rec["failed"]


def test_periodic_full_sync(tmp_path, apiserver, client, agent_ns):
    with AgentProcess(tmp_path, apiserver.kubeconfig, agent_ns, sync="1s") as agent:
        wait_until(lambda: len([r for r in agent.records() if r["full"]]) >= 3, what="three full syncs")
        assert all(r["full"] for r in agent.records())  # nothing changed: only periodic full syncs


def read_sysctl(netns: str, name: str) -> int:
    return int(subprocess.run(["ip", "netns", "exec", netns, "cat", f"/proc/sys/{name}"], capture_output=True,
                              text=True, check=True).stdout)


def test_start_applies_conntrack_settings_and_reads_the_namespaces_addresses(tmp_path, apiserver, agent_ns):
    established = "net/netfilter/nf_conntrack_tcp_timeout_established"
    host_before = int(open(f"/proc/sys/{established}").read())
    subprocess.run(["ip", "-n", agent_ns, "addr", "add", "192.168.1.5/24", "dev", "lo"], check=True)
    config = tmp_path / "config.yaml"
    config.write_text("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
                      "conntrack: {tcpEstablishedTimeout: 7m, udpTimeout: 33s}\n")
    with AgentProcess(tmp_path, apiserver.kubeconfig, agent_ns, extra_args=["--config", str(config)]) as agent:
        first = agent.wait_record(lambda r: True, what="a first sync")
        # from the kernel, in the namespace: both families (each backend pass takes its own)
        assert first["ruleset"]["local_ips"] == ["127.0.0.1", "192.168.1.5", "::1"]
        assert read_sysctl(agent_ns, established) == 420
        assert read_sysctl(agent_ns, "net/netfilter/nf_conntrack_udp_timeout") == 33
        assert "conntrack: net/netfilter/nf_conntrack_tcp_timeout_established = 420: set" in agent.log()
    assert int(open(f"/proc/sys/{established}").read()) == host_before


def test_unreachable_apiserver_keeps_retrying_and_is_unhealthy(tmp_path, agent_ns):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:9'}\n"
        "users:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n")
    with AgentProcess(tmp_path, str(kubeconfig), agent_ns) as agent:
        status, body = wait_until(lambda: agent.http_ready(HEALTHZ_PORT, "/healthz"), what="healthz")
        assert status == 503
        assert json.loads(body)["lastUpdated"] == ""
        assert agent.http(HEALTHZ_PORT, "/livez")[0] == 503
        wait_until(lambda: "retrying" in agent.log(), what="a retry log line")
        assert agent.proc.poll() is None
        agent.signal(signal.SIGTERM)
        assert agent.proc.wait(15) == 0
    assert agent.records() == []


def test_cleanup_cli_runs_backend_cleanup_in_netns(tmp_path, agent_ns):
    record = tmp_path / "record.jsonl"
    env = {"KPROXY_TEST_RECORD_FILE": str(record), "PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    result = subprocess.run([sys.executable, "-m", "kproxy", "cleanup", "--mode", "record", "--netns", agent_ns,
                             "--backend-module", "tests.agent.recording_backend"],
                            capture_output=True, text=True, env=env, cwd=str(REPO), timeout=60)
    assert result.returncode == 0, result.stderr
    (line,) = record.read_text().splitlines()
    doc = json.loads(line)
    assert doc["op"] == "cleanup"
    inode = subprocess.run(["ip", "netns", "exec", agent_ns, "stat", "-L", "-c", "%i", "/proc/self/ns/net"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert doc["netns"] == int(inode)


def test_network_programming_latency_is_observed_from_the_controllers_trigger_time(tmp_path, agent_ns):
    """KEP-3453 end to end: the EndpointSlice controller (inside the apiserver) stamps each slice
    write with its trigger time, and the agent's histogram observes one sample per programmed
    change, in the finer buckets below upstream's first (0.25 s)."""
    server = start_apiserver(tmp_path / "api", [])
    client = Client.from_kubeconfig(server.kubeconfig)
    try:
        client.create(SERVICES, service("web", "10.96.0.60"))
        pod = client.create(PODS, {"metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
                                   "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "x"}]}})
        ready = {"phase": "Running", "podIP": "10.244.1.9", "podIPs": [{"ip": "10.244.1.9"}],
                 "conditions": [{"type": "Ready", "status": "False"}]}
        pod = client.update_status(PODS, {**pod, "status": ready})
        with AgentProcess(tmp_path, server.kubeconfig, agent_ns) as agent:
            agent.wait_record(lambda r: [e[:2] for e in endpoints_of(r, "default/web:p") or []] == [("10.244.1.9", False)],
                              what="the not-ready endpoint")

            def count() -> float:
                return metric(agent.http(METRICS_PORT, "/metrics")[1],
                              "kubeproxy_network_programming_duration_seconds_count") or 0.0

            before = count()
            ready["conditions"] = [{"type": "Ready", "status": "True"}]
            client.update_status(PODS, {**client.get(PODS, "web-1", "default"), "status": ready})
            agent.wait_record(lambda r: [e[:2] for e in endpoints_of(r, "default/web:p") or []] == [("10.244.1.9", True)],
                              what="the endpoint turning ready")
            wait_until(lambda: count() > before, what="a network programming sample")
            text = agent.http(METRICS_PORT, "/metrics")[1]
            assert 'kubeproxy_network_programming_duration_seconds_bucket{le="0.005"}' in text
    finally:
        client.close()
        server.stop()
