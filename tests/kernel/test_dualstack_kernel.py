"""Dual-stack Services with real IPv4 and IPv6 packets at once, through the backend pair the
agent runs (kproxy.agent.dualstack), in namespaces (tests/kernel/topology.py, ipv6=True)."""
from __future__ import annotations

import pytest

from kproxy.agent.state import Endpoint, ServicePort
from tests.kernel.backends import config_for, open_backend, sync
from tests.kernel.topology import (CLIENT_IP, CLIENT_IP6, CLUSTER_CIDR, CLUSTER_CIDR6, NODE_IP, NODE_IP6, POD_PORT,
                                   pods_reached, single_node, state)

pytestmark = pytest.mark.kernel

V4, V6 = "10.96.0.10", "fd00:10:96::10"


@pytest.fixture(scope="module")
def topo():
    with single_node(["a", "b", "c"], tag="dsk", ipv6=True) as topology:
        yield topology


@pytest.fixture(params=["nft", "legacy", "nftables"])
def mode(request):
    return request.param  # iptables mode with this variant, or nftables mode


@pytest.fixture
def backend(topo, mode):
    with open_backend(topo.node, config_for(mode), dual_stack=True) as b:
        yield b


def eps(topo, *pods: str, local: bool = True) -> tuple[Endpoint, ...]:
    """Both families' endpoints of `pods` (one per address, as an IPv4 and an IPv6 slice give)."""
    out = []
    for name in pods:
        node = "n1" if local else "n2"
        for ip in (topo.pods[name].ip, topo.pods[name].ip6):
            out.append(Endpoint(ip, POD_PORT, is_local=local, node_name=node))
    return tuple(sorted(out))


def dual(name: str, v4: str, v6: str, endpoints=(), port: int = 80, protocol: str = "TCP", **kw) -> ServicePort:
    return ServicePort("default", name, "", protocol, port, cluster_ips=(v4, v6), endpoints=tuple(sorted(endpoints)),
                       **kw)


def dual_state(*services: ServicePort):
    return state(*services, cluster_cidr=f"{CLUSTER_CIDR},{CLUSTER_CIDR6}", node_ips=(NODE_IP, NODE_IP6))


def test_cluster_ip_tcp_both_families_masquerading_off_cluster_clients(topo, backend):
    sync(backend, dual_state(dual("web", V4, V6, eps(topo, "a", "b"))))
    assert pods_reached(topo, topo.client, V4, 80) == {"a", "b"}
    assert pods_reached(topo, topo.client, V6, 80) == {"a", "b"}
    assert topo.tcp(topo.client, V6, 80)[1] == NODE_IP6  # off-cluster: masqueraded
    pod, seen = topo.tcp(topo.pods["c"].netns, V6, 80)
    assert seen == topo.pods["c"].ip6  # from a pod: the source is kept


def test_cluster_ip_udp_both_families(topo, backend):
    sync(backend, dual_state(dual("dns", "10.96.0.53", "fd00:10:96::53", eps(topo, "a", "b"), port=53,
                                  protocol="UDP")))
    assert pods_reached(topo, topo.client, "10.96.0.53", 53, tries=30, proto="udp") == {"a", "b"}
    assert pods_reached(topo, topo.client, "fd00:10:96::53", 53, tries=30, proto="udp") == {"a", "b"}


def test_single_stack_ipv6_service_and_its_nodeport_on_the_nodes_ipv6_address(topo, backend):
    sp = ServicePort("default", "v6", "", "TCP", 80, cluster_ips=("fd00:10:96::20",), node_port=30080,
                     external_ips=("2001:db8::10",),
                     endpoints=tuple(sorted(e for e in eps(topo, "a", "b") if ":" in e.ip)))
    sync(backend, dual_state(sp))
    assert pods_reached(topo, topo.client, NODE_IP6, 30080) == {"a", "b"}
    assert pods_reached(topo, topo.client, "2001:db8::10", 80) == {"a", "b"}
    with pytest.raises((ConnectionRefusedError, TimeoutError, OSError)):
        topo.tcp(topo.client, NODE_IP, 30080, timeout=2)  # no IPv4 NodePort: the Service has no IPv4 address


def test_service_without_endpoints_is_refused_with_icmpv6(topo, backend):
    sync(backend, dual_state(dual("empty", "10.96.0.30", "fd00:10:96::30"),
                             dual("empty-udp", "10.96.0.31", "fd00:10:96::31", protocol="UDP")))
    # a REJECT (ICMPv6 port unreachable) refuses at once; a DROP would time out instead
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.client, "fd00:10:96::30", 80, timeout=30)
    with pytest.raises(ConnectionRefusedError):
        topo.udp(topo.client, "fd00:10:96::31", 80, timeout=30)
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.client, "10.96.0.30", 80, timeout=30)


def test_session_affinity_sticks_in_both_families(topo, backend):
    sync(backend, dual_state(dual("sticky", "10.96.0.23", "fd00:10:96::23", eps(topo, "a", "b", "c"),
                                  session_affinity_timeout=600)))
    assert len(pods_reached(topo, topo.client, "fd00:10:96::23", 80, tries=15)) == 1
    assert len(pods_reached(topo, topo.client, "10.96.0.23", 80, tries=15)) == 1


def test_hairpin_over_ipv6(topo, backend):
    sync(backend, dual_state(dual("self", "10.96.0.24", "fd00:10:96::24", eps(topo, "a"))))
    pod, seen = topo.tcp(topo.pods["a"].netns, "fd00:10:96::24", 80)
    assert pod == "a"
    assert seen != topo.pods["a"].ip6  # masqueraded, or the reply would bypass the DNAT


def test_external_traffic_policy_local_over_ipv6_keeps_the_client_source(topo, backend):
    endpoints = eps(topo, "a") + eps(topo, "b", local=False)
    sync(backend, dual_state(dual("loc", "10.96.0.21", "fd00:10:96::21", endpoints, node_port=30081,
                                  external_policy_local=True)))
    assert pods_reached(topo, topo.client, NODE_IP6, 30081, tries=20) == {"a"}
    assert topo.tcp(topo.client, NODE_IP6, 30081)[1] == CLIENT_IP6
    assert topo.tcp(topo.client, NODE_IP, 30081)[1] == CLIENT_IP
    assert pods_reached(topo, topo.client, "fd00:10:96::21", 80) == {"a", "b"}


def programmed(topo, backend) -> dict[int, bool]:
    """Per family: whether the kernel holds rules of ours (KUBE-* chains, or table ip/ip6 kproxy)."""
    if backend.name == "nftables":
        tables = topo.run(topo.node, ["nft", "list", "tables"]).stdout.splitlines()
        return {4: "table ip kproxy" in tables, 6: "table ip6 kproxy" in tables}
    return {fam: ":KUBE-SERVICES" in backend.passes[fam].driver.save() for fam in (4, 6)}


def test_cleanup_removes_both_families(topo, backend):
    sync(backend, dual_state(dual("web", V4, V6, eps(topo, "a"))))
    assert programmed(topo, backend) == {4: True, 6: True}
    backend.cleanup()
    assert programmed(topo, backend) == {4: False, 6: False}


def test_kproxy_cleanup_removes_the_ipv6_rules_an_agent_left(topo, backend, mode):
    from kproxy.agent.dualstack import every_family

    sync(backend, dual_state(dual("web", V4, V6, eps(topo, "a"))))
    cleaner = every_family(type(backend.passes[4]), backend.netns, config_for(mode))  # as cleanup_cli builds it
    try:
        cleaner.cleanup()
    finally:
        cleaner.close()
    assert programmed(topo, backend) == {4: False, 6: False}


def test_udp_conntrack_cleanup_over_ipv6(topo, backend):
    from kproxy.agent import conntrack

    before = dual_state(dual("dns", "10.96.0.54", "fd00:10:96::54", eps(topo, "a"), port=53, protocol="UDP"))
    previous = sync(backend, before)
    assert topo.udp(topo.client, "fd00:10:96::54", 53, source_port=40053)[0] == "a"  # an entry DNATed to a
    after = dual_state(dual("dns", "10.96.0.54", "fd00:10:96::54", eps(topo, "b"), port=53, protocol="UDP"))
    sync(backend, after, previous, full=False)
    # the entry still steers this flow to a until the agent's cleanup deletes it
    assert topo.udp(topo.client, "fd00:10:96::54", 53, source_port=40053)[0] == "a"
    filters = conntrack.plan_flush(before, after)
    assert any(f.family == "ipv6" and f.reply_src == topo.pods["a"].ip6 for f in filters)
    conntrack.flush(backend.netns, filters)
    assert topo.udp(topo.client, "fd00:10:96::54", 53, source_port=40053)[0] == "b"


def test_kproxy_rules_shows_traces_and_diffs_both_families(topo, backend):
    from kproxy.rules.adapter import adapter_for
    from kproxy.rules.diff import diff
    from kproxy.rules.dualstack import DualStackAdapter
    from kproxy.rules.trace import Probe

    state = dual_state(dual("web", V4, V6, eps(topo, "a", "b"), node_port=30090))
    ruleset = sync(backend, state)
    adapter = DualStackAdapter(adapter_for(backend.name))  # as `kproxy rules` wraps it
    reading = backend.netns.run(adapter.read, backend)
    rules = adapter.from_inspection(reading, "")
    (web,) = rules.services
    assert {f.ip for f in web.frontends if f.kind != "nodePort"} == {V4, V6}
    assert {e.address for e in web.endpoints} >= {f"[{topo.pods['a'].ip6}]:8080", f"{topo.pods['a'].ip}:8080"}
    assert rules.detail["families"] == "IPv4, IPv6"
    assert diff(adapter.from_ruleset(ruleset, ""), rules) == []
    local = [NODE_IP, NODE_IP6]
    report = adapter.trace(reading, Probe("tcp", CLIENT_IP6, 0, V6, 80), local)
    assert {c.outcome for c in report.candidates} == {f"[{topo.pods[p].ip6}]:8080" for p in ("a", "b")}
    report = adapter.trace(reading, Probe("tcp", CLIENT_IP6, 0, NODE_IP6, 30090), local)
    assert {c.outcome for c in report.candidates} == {f"[{topo.pods[p].ip6}]:8080" for p in ("a", "b")}
    report = adapter.trace(reading, Probe("tcp", CLIENT_IP, 0, V4, 80), local)
    assert {c.outcome for c in report.candidates} == {f"{topo.pods[p].ip}:8080" for p in ("a", "b")}


def test_node_port_addresses_per_family(topo, backend):
    from dataclasses import replace

    from kproxy.agent.localaddrs import read_local_ips

    local_ips = backend.netns.run(read_local_ips)
    assert NODE_IP6 in local_ips
    sp = dual("np", "10.96.0.40", "fd00:10:96::40", eps(topo, "a"), node_port=30095)
    # only an IPv4 CIDR: IPv6 NodePorts fall back to every IPv6 address (upstream's zero CIDR)
    sync(backend, replace(dual_state(sp), local_ips=local_ips, node_port_addresses=("10.200.0.0/24",)))
    assert topo.tcp(topo.client, NODE_IP6, 30095)[0] == "a"
    assert topo.tcp(topo.client, NODE_IP, 30095)[0] == "a"
    # an IPv6 CIDR the node has no address in: no IPv6 NodePort, the IPv4 one stays
    sync(backend, replace(dual_state(sp), local_ips=local_ips,
                          node_port_addresses=("10.200.0.0/24", "fd00:300::/64")))
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.client, NODE_IP6, 30095)
    assert topo.tcp(topo.client, NODE_IP, 30095)[0] == "a"
