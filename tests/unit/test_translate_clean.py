"""translate guarantees well-formed values to every backend: IPs and CIDRs parsed and
normalised, unusable entries left out and described (kube-proxy trims source ranges and ignores
the ones that do not parse); the padded source range of issue 14 item 2 renders in nftables."""
from __future__ import annotations

import pytest

from kproxy.agent import translate
from kproxy.agent.state import ProxyState
from kproxy.agent.tracker import ProxyStateBuilder, StateSettings
from tests.unit.test_tracker import ep, eps, svc


def lb(**spec):
    obj = svc("lb", type_="LoadBalancer", ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}],
              **spec)
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
    return obj


@pytest.mark.parametrize("raw, clean", [
    ("10.1.2.3", "10.1.2.3"), (" 10.1.2.3 ", "10.1.2.3"), ("010.001.002.003", "10.1.2.3"),
    ("2001:DB8::1", "2001:db8::1"), ("10.1.2", None), ("10.1.2.300", None), ("", None), (None, None),
    (7, None), ("10.1.2.3/32", None), ("١٠.1.2.3", None),
])
def test_clean_ip(raw, clean):
    assert translate.clean_ip(raw) == clean


@pytest.mark.parametrize("raw, clean", [
    ("203.0.113.0/25", "203.0.113.0/25"), (" 203.0.113.0/25", "203.0.113.0/25"),
    ("203.0.113.7/25 ", "203.0.113.0/25"), ("2001:db8::1/64", "2001:db8::/64"), ("0.0.0.0/0", "0.0.0.0/0"),
    ("203.0.113.0", None), ("203.0.113.0/33", None), ("203.0.113.0/-1", None), ("garbage", None),
    ("203.0.113.0/ 25", None), (None, None), (["10.0.0.0/8"], None),
])
def test_clean_cidr(raw, clean):
    assert translate.clean_cidr(raw) == clean


def test_source_ranges_are_trimmed_normalised_and_bad_ones_left_out():
    obj = lb(loadBalancerSourceRanges=[" 203.0.113.0/25", "garbage", "198.51.100.9/24", 5, "198.51.100.0/24"])
    (sp,) = translate.service_ports(obj)
    assert sp.load_balancer_source_ranges == ("203.0.113.0/25", "198.51.100.0/24")
    issues = translate.service_issues(obj)
    assert issues == ("spec.loadBalancerSourceRanges[1] 'garbage' is not a CIDR",
                      "spec.loadBalancerSourceRanges[3] 5 is not a CIDR")


def test_addresses_are_cleaned_and_a_service_without_a_usable_cluster_ip_is_not_programmed():
    obj = lb(externalIPs=[" 10.1.2.3", "nope", "10.1.2.3"], clusterIPs=["10.96.0.010", "bad"])
    obj["status"]["loadBalancer"]["ingress"] = [{"ip": "192.0.2.10 "}, {"ip": "192.0.2.x"}]
    (sp,) = translate.service_ports(obj)
    assert sp.cluster_ips == ("10.96.0.10",)
    assert sp.external_ips == ("10.1.2.3",)
    assert sp.load_balancer_ips == ("192.0.2.10",)
    assert len(translate.service_issues(obj)) == 3
    broken = svc("broken", cluster_ip="10.96.0.300")
    assert translate.service_ports(broken) == ()
    assert translate.service_issues(broken) == (
        "spec.clusterIPs[0] '10.96.0.300' is not an IP address",
        "no usable cluster IP: the Service is not programmed")


def test_ports_protocols_and_affinity_out_of_range():
    obj = svc("p", ports=[{"name": "a", "port": 0}, {"name": "b", "port": 80, "protocol": "ICMP"},
                          {"name": "c", "port": 81}],
              sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10 ** 12}})
    (sp,) = translate.service_ports(obj)
    assert (sp.port_name, sp.session_affinity_timeout) == ("c", translate.DEFAULT_AFFINITY_TIMEOUT)
    assert len(translate.service_issues(obj)) == 3
    assert translate.service_issues(svc("fine")) == ()


def test_slice_endpoints_of_the_wrong_family_or_unparseable_are_left_out():
    slc = eps("s1", "web", endpoints=[ep("10.244.0.1"), ep(" 10.244.0.2"), ep("2001:db8::1"), ep("x")],
              ports=[{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "bad", "port": 0},
                     {"name": "sctp", "port": 9, "protocol": "GRE"}])
    view = translate.slice_view(slc, "n")
    assert [k for k, _ in view] == [("http", "TCP")]
    assert [e.ip for e in view[0][1]] == ["10.244.0.1", "10.244.0.2"]
    assert len(translate.slice_issues(slc)) == 4


def padded_source_range_state() -> ProxyState:
    b = ProxyStateBuilder(StateSettings(node_name="n"))
    b.services.on_add(lb(loadBalancerSourceRanges=[" 203.0.113.0/25"]))
    b.slices.on_add(eps("lb-1", "lb", endpoints=[ep("10.244.0.5")]))
    return b.build_state().state


def test_padded_source_range_renders_in_nftables():
    """Issue 14 item 2: the padded entry made render_ruleset raise, so nothing was programmed."""
    from kproxy.nftables.render import render
    text = render(padded_source_range_state()).text()
    assert "ip saddr 203.0.113.0/25 return" in text


def test_tracker_reports_issues_once_per_change():
    b = ProxyStateBuilder(StateSettings(node_name="n"))
    bad = lb(loadBalancerSourceRanges=["garbage"])
    b.services.on_add(bad)
    b.services.on_update(bad, bad)
    (key, (obj, issues)), = b.services.take_issues().items()
    assert key == "default/lb" and issues == ("spec.loadBalancerSourceRanges[0] 'garbage' is not a CIDR",)
    b.services.on_update(bad, bad)
    assert b.services.take_issues() == {}  # the same problems: not reported again
    fixed = lb(loadBalancerSourceRanges=["10.0.0.0/8"])
    b.services.on_update(bad, fixed)
    b.services.on_update(fixed, bad)
    assert list(b.services.take_issues()) == ["default/lb"]  # came back after being fixed
