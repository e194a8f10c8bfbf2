"""One family's view of a ProxyState (kproxy.agent.families) and the per-family address answers."""
from kproxy.agent.addresses import local_traffic, nodeport_ips, nodeport_listen_ips
from kproxy.agent.families import IPV4, IPV6, families_in, family_view, service_view
from kproxy.agent.state import Endpoint, ProxyState, ServicePort

EP4 = Endpoint("10.244.1.2", 8080)
EP6 = Endpoint("fd00:10:244:1::2", 8080)


def dual(**kw) -> ServicePort:
    return ServicePort("default", "web", "", "TCP", 80, cluster_ips=("10.96.0.10", "fd00:10:96::10"),
                       endpoints=(EP4, EP6), **kw)


def test_dual_stack_service_splits_into_both_families():
    sp = dual(external_ips=("192.0.2.1", "2001:db8::1"), load_balancer_ips=("fd00:beef::1",),
              load_balancer_source_ranges=("203.0.113.0/24", "2001:db8:1::/48"))
    v4, v6 = service_view(sp, IPV4), service_view(sp, IPV6)
    assert v4 is not None and v6 is not None
    assert (v4.cluster_ips, v4.endpoints, v4.external_ips, v4.load_balancer_ips,
            v4.load_balancer_source_ranges) == (("10.96.0.10",), (EP4,), ("192.0.2.1",), (), ("203.0.113.0/24",))
    assert (v6.cluster_ips, v6.endpoints, v6.external_ips, v6.load_balancer_ips,
            v6.load_balancer_source_ranges) == (("fd00:10:96::10",), (EP6,), ("2001:db8::1",),
                                                ("fd00:beef::1",), ("2001:db8:1::/48",))
    assert v4.key == v6.key == sp.key


def test_single_stack_service_is_absent_from_the_other_family_and_kept_as_is_in_its_own():
    sp = ServicePort("default", "v6only", "", "UDP", 53, cluster_ips=("fd00:10:96::a",), endpoints=(EP6,))
    assert service_view(sp, IPV4) is None
    assert service_view(sp, IPV6) is sp  # same object: renders reuse what they made for it


def test_state_view_narrows_node_addresses_and_cidrs():
    state = ProxyState("n1", node_ips=("10.200.0.11", "fd00:200::11"), cluster_cidr="10.244.0.0/16,fd00:10:244::/56",
                       service_cidrs=("10.96.0.0/12", "fd00:10:96::/112"),
                       node_pod_cidrs=("10.244.1.0/24", "fd00:10:244:1::/64"),
                       local_ips=("10.200.0.11", "127.0.0.1", "fd00:200::11", "::1"),
                       services={dual().key: dual()})
    v6 = family_view(state, IPV6)
    assert v6.ip_family == IPV6
    assert v6.node_ips == ("fd00:200::11",) and v6.cluster_cidr == "fd00:10:244::/56"
    assert v6.service_cidrs == ("fd00:10:96::/112",) and v6.node_pod_cidrs == ("fd00:10:244:1::/64",)
    assert v6.local_ips == ("fd00:200::11", "::1")
    assert local_traffic(v6).cidr == "fd00:10:244::/56"
    v4 = family_view(state, IPV4)
    assert v4.cluster_cidr == "10.244.0.0/16" and local_traffic(v4).cidr == "10.244.0.0/16"
    assert family_view(v6, IPV6) == v6 and families_in(state) == (IPV4, IPV6)


def test_node_port_addresses_per_family_as_upstream():
    state = ProxyState("n1", node_ips=("10.200.0.11", "fd00:200::11"),
                       local_ips=("10.200.0.11", "127.0.0.1", "fd00:200::11", "fd00:300::5", "::1"),
                       node_port_addresses=("10.200.0.0/24",))
    # a family without a CIDR of its own falls back to every local address (the zero CIDR)
    assert nodeport_ips(family_view(state, IPV6)) is None
    assert nodeport_listen_ips(family_view(state, IPV6)) == ["fd00:200::11", "fd00:300::5"]
    assert nodeport_ips(family_view(state, IPV4)) == ["10.200.0.11"]
    narrowed = family_view(ProxyState("n1", local_ips=state.local_ips,
                                      node_port_addresses=("10.200.0.0/24", "fd00:300::/64")), IPV6)
    assert nodeport_ips(narrowed) == ["fd00:300::5"]
    primary = family_view(ProxyState("n1", node_ips=state.node_ips, local_ips=state.local_ips,
                                     node_port_addresses=("primary",)), IPV6)
    assert nodeport_ips(primary) == ["fd00:200::11"]


def test_localhost_nodeports_are_ipv4_only():
    # offline rendering (local addresses unknown): loopback stands in for IPv4 only
    state = ProxyState("n1", node_ips=("10.200.0.11", "fd00:200::11"), node_port_addresses=("0.0.0.0/0", "::/0"))
    assert nodeport_ips(family_view(state, IPV4), include_loopback=True) == ["10.200.0.11", "127.0.0.1"]
    assert nodeport_ips(family_view(state, IPV6), include_loopback=True) == ["fd00:200::11"]


def _slice(name: str, address_type: str, *addresses: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": address_type, "ports": [{"port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}, "nodeName": "n1"} for a in addresses]}


def test_translation_of_a_dual_stack_service_and_its_slices_per_address_type():
    from kproxy.agent.translate import build_service_ports, slice_view

    svc = {"metadata": {"name": "web", "namespace": "default"},
           "spec": {"type": "ClusterIP", "clusterIP": "fd00:10:96::10", "clusterIPs": ["fd00:10:96::10", "10.96.0.10"],
                    "ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "RequireDualStack",
                    "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}}
    views = [slice_view(_slice("web-v4", "IPv4", "10.244.1.2"), "n1"),
             slice_view(_slice("web-v6", "IPv6", "fd00:10:244:1::2", "10.244.1.9"), "n1")]  # wrong family: left out
    (sp,) = build_service_ports(svc, views).values()
    assert sp.cluster_ips == ("fd00:10:96::10", "10.96.0.10")
    state = ProxyState("n1", services={sp.key: sp})
    v4, v6 = family_view(state, IPV4).services[sp.key], family_view(state, IPV6).services[sp.key]
    assert [(e.ip, e.is_local) for e in v4.endpoints] == [("10.244.1.2", True)]
    assert [e.ip for e in v6.endpoints] == ["fd00:10:244:1::2"]


def test_a_partial_view_narrows_only_the_changed_ports_and_equals_a_full_one():
    from dataclasses import replace

    from kproxy.agent.state import changes_between

    other = ServicePort("default", "v4only", "", "TCP", 81, cluster_ips=("10.96.0.11",), endpoints=(EP4,))
    before = ProxyState("n1", node_ips=("10.200.0.11", "fd00:200::11"),
                        services={dual().key: dual(), other.key: other})
    after = replace(before, services={dual().key: replace(dual(), endpoints=(EP6,))}, revision=1)
    base = family_view(before, IPV6)
    partial = family_view(after, IPV6, base, changes_between(before, after))
    assert partial.services == family_view(after, IPV6).services and partial.revision == 1
    assert family_view(partial, IPV6) is partial  # a view is narrowed once
