"""The agent deletes stale UDP conntrack entries after a sync: a real DNATed entry in the
agent's namespace disappears when its endpoint is removed through the apiserver, and an
unrelated entry stays."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kproxy.api.resources import ENDPOINT_SLICES, SERVICES
from kproxy.netns import NetNS
from tests import nsutil
from tests.agent.agentproc import METRICS_PORT, AgentProcess, wait_until
from tests.agent.test_conntrack_kernel import CLUSTER_IP, OTHER_PORT, POD_IP, POD_PORT, PORT, entries, udp_exchange

pytestmark = pytest.mark.kernel


def synced(agent: AgentProcess) -> int:
    """Syncs the agent finished (kubeproxy_sync_proxy_rules_duration_seconds_count)."""
    res = agent.http_ready(METRICS_PORT, "/metrics")
    if res is None or res[0] != 200:
        return 0
    for family in text_string_to_metric_families(res[1]):
        if family.name == "kubeproxy_sync_proxy_rules_duration_seconds":
            return int(sum(s.value for s in family.samples if s.name.endswith("_count")))
    return 0


@pytest.fixture
def ns():
    with nsutil.netns("ctflow") as name:
        for argv in (["ip", "-n", name, "addr", "add", f"{CLUSTER_IP}/32", "dev", "lo"],
                     ["ip", "-n", name, "addr", "add", f"{POD_IP}/32", "dev", "lo"],
                     ["ip", "netns", "exec", name, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", CLUSTER_IP,
                      "-p", "udp", "--dport", str(PORT), "-j", "DNAT", "--to-destination", f"{POD_IP}:{POD_PORT}"],
                     # entries must not expire by themselves while the test waits for the flush
                     ["ip", "netns", "exec", name, "sysctl", "-q", "-w", "net.netfilter.nf_conntrack_udp_timeout=600"]):
            nsutil.run(argv)
        yield name


def test_removed_endpoint_entries_are_flushed(tmp_path, apiserver, client, ns):
    client.create(SERVICES, {"apiVersion": "v1", "kind": "Service",
                             "metadata": {"name": "dns", "namespace": "default"},
                             "spec": {"clusterIP": CLUSTER_IP,
                                      "ports": [{"name": "dns", "port": PORT, "protocol": "UDP"}]}})
    slc = client.create(ENDPOINT_SLICES, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": "dns-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "dns"}},
        "ports": [{"name": "dns", "port": POD_PORT, "protocol": "UDP"}],
        "endpoints": [{"addresses": [POD_IP], "conditions": {"ready": True}}]})
    handle = NetNS(ns)
    try:
        with AgentProcess(tmp_path, apiserver.kubeconfig, ns) as agent:
            agent.wait_record(lambda r: r["ruleset"]["services"].get("default/dns:dns", {}).get("endpoints"),
                              what="dns with its endpoint")
            # The agent flushes the Service's entries for its 0 -> 1 endpoint transition after the
            # apply it recorded; an entry made before that flush would vanish (seen in CI). A sync
            # is counted in the metrics only once its flush is done: wait for every recorded one.
            applies = len(agent.records())
            wait_until(lambda: synced(agent) >= applies, what=f"{applies} syncs to finish")
            udp_exchange(handle, (POD_IP, OTHER_PORT), OTHER_PORT)
            udp_exchange(handle, (CLUSTER_IP, PORT), POD_PORT)
            assert f"dst={CLUSTER_IP}" in entries(handle)

            slc["endpoints"] = []
            client.update(ENDPOINT_SLICES, slc)
            agent.wait_record(lambda r: r["ruleset"]["services"].get("default/dns:dns", {}).get("endpoints") == [],
                              what="dns without endpoints")
            wait_until(lambda: f"dst={CLUSTER_IP}" not in entries(handle), what="the stale entry to be deleted")
            assert f"dport={OTHER_PORT}" in entries(handle)
    finally:
        handle.close()
