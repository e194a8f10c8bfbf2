"""nftables mode's ClusterIP checks (pure): a ClusterIP on a port its Service lacks is rejected,
an unallocated address of the Service CIDR dropped, as upstream's nftables proxier does with
its `cluster-ips` set and `cluster-ips-check` chain; rendered, planned and traced."""
from __future__ import annotations

from dataclasses import replace

import pytest

from kproxy.agent.config import ConfigError, apply_overrides, parse_config, AgentConfig
from kproxy.nftables import render as r
from kproxy.nftables.plan import ElementOwners, plan_partial
from kproxy.rules.nftables import Dump, NftablesAdapter
from kproxy.rules.trace import Probe
from tests.unit.test_nft_render import NODE, ep, rerender, state, svc

CIDR = "10.96.0.0/12"
CLIENT = "10.200.0.2"


def test_cluster_ips_set_holds_every_cluster_ip_and_the_check_rejects_then_drops():
    web = svc("web", "10.96.0.10", [ep("10.244.1.2")])
    empty = svc("empty", "10.96.0.11")
    rs = r.render(state(web, empty, service_cidrs=(CIDR, "fd00::/108")))
    # a Service without endpoints is still an allocated ClusterIP (its own port rejects anyway)
    assert dict(rs.elements[r.CLUSTER_IPS]) == {("10.96.0.10",): None, ("10.96.0.11",): None}
    assert [x.text for x in rs.chains[r.CLUSTER_IPS_CHECK].rules] == [
        "ip daddr @cluster-ips reject", f"ip daddr {CIDR} drop"]  # IPv4 table: the IPv6 range is not ours
    # after DNAT: forwarded packets, and the node's own after nat-output
    assert [x.text for x in rs.chains["filter-forward"].rules][-1] == "ct state new jump cluster-ips-check"
    post = rs.chains[r.FILTER_OUTPUT_POST_DNAT]
    assert (post.hook.hooknum, post.hook.priority) == (r.w.HOOK_OUTPUT, r.NAT_DST_PRIORITY + 10)
    assert [x.text for x in post.rules] == ["ct state new jump cluster-ips-check"]


def test_without_a_service_cidr_only_the_wrong_port_check_exists():
    rs = r.render(state(svc("web", "10.96.0.10", [ep("10.244.1.2")])))
    assert [x.text for x in rs.chains[r.CLUSTER_IPS_CHECK].rules] == ["ip daddr @cluster-ips reject"]


def test_partial_sync_adds_and_removes_only_the_changed_services_cluster_ip():
    services = [svc(f"s{i}", f"10.96.0.{i}", [ep(f"10.244.1.{i}")]) for i in range(1, 30)]
    first = r.render(state(*services, service_cidrs=(CIDR,)))
    added = svc("new", "10.96.1.1", [ep("10.244.3.3")])
    second = rerender(state(*services, added, service_cidrs=(CIDR,)), first)
    ops = [op.description for op in plan_partial(second, first).ops]
    assert [op for op in ops if r.CLUSTER_IPS in op] == [f"add element {r.CLUSTER_IPS} {{ 10.96.1.1 }}"]
    third = rerender(state(*services[1:], added, service_cidrs=(CIDR,)), second)
    ops = [op.description for op in plan_partial(third, second).ops]
    assert [op for op in ops if r.CLUSTER_IPS in op] == [f"delete element {r.CLUSTER_IPS} {{ 10.96.0.1 }}"]


def test_a_multi_port_services_cluster_ip_stays_until_its_last_port_goes():
    http = svc("web", "10.96.0.10", [ep("10.244.1.2")])
    https = replace(http, port_name="https", port=443)
    first = r.render(state(http, https))
    owners = ElementOwners.of(first)
    assert owners.counts[r.CLUSTER_IPS] == {("10.96.0.10",): 2}
    second = rerender(state(http), first)
    tx = plan_partial(second, first, owners)
    assert not any(r.CLUSTER_IPS in op.description for op in tx.ops)
    owners.apply(tx.owner_delta)
    third = rerender(state(), second)
    assert f"delete element {r.CLUSTER_IPS} {{ 10.96.0.10 }}" in [
        op.description for op in plan_partial(third, second, owners).ops]


@pytest.fixture(scope="module")
def dump():
    web = svc("web", "10.96.0.10", [ep("10.244.1.2")])
    empty = svc("empty", "10.96.0.11")
    return Dump(r.render(state(web, empty, service_cidrs=(CIDR,))).text())


@pytest.mark.parametrize("dst,dport,proto,outcome", [
    ("10.96.0.10", 80, "tcp", "10.244.1.2:8080"),  # the Service's port
    ("10.96.0.10", 81, "tcp", "REJECT"),  # a port the Service lacks
    ("10.96.0.10", 80, "udp", "REJECT"),  # a protocol it lacks
    ("10.96.0.11", 80, "tcp", "REJECT"),  # no endpoints (service-endpoints-check)
    ("10.96.0.99", 80, "tcp", "DROP"),  # unallocated inside the Service CIDR
    ("10.111.255.254", 53, "udp", "DROP"),
    ("10.112.0.1", 80, "tcp", "ACCEPT"),  # outside it: not ours
    ("10.244.1.2", 8080, "tcp", "ACCEPT"),  # a pod directly
])
def test_trace_follows_the_cluster_ip_checks(dump, dst, dport, proto, outcome):
    report = NftablesAdapter().trace(dump, Probe(proto, CLIENT, 0, dst, dport), [NODE])
    assert [c.outcome for c in report.candidates] == [outcome]
    if outcome in ("DROP", "REJECT") and dst != "10.96.0.11":
        assert report.candidates[0].path[-1].container == f"nft/{r.CLUSTER_IPS_CHECK}"


def test_service_cidr_comes_from_the_config_file_and_the_flag():
    doc = {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
           "serviceCIDR": "10.96.0.0/12,fd00::/108"}
    assert parse_config(doc).service_cidrs == ("10.96.0.0/12", "fd00::/108")
    assert apply_overrides(AgentConfig(), {"service_cidr": "10.0.0.0/16"}).service_cidrs == ("10.0.0.0/16",)
    assert AgentConfig().service_cidrs == ()
    with pytest.raises(ConfigError, match="serviceCIDR"):
        parse_config({**doc, "serviceCIDR": "10.96.0.0/33"})
    with pytest.raises(ConfigError, match="--service-cidr"):
        apply_overrides(AgentConfig(), {"service_cidr": "nonsense"})
