"""detectLocalMode: what counts as pod traffic (ClusterCIDR, NodeCIDR, BridgeInterface,
InterfaceNamePrefix), from configuration to every mode's rules (pure)."""
from __future__ import annotations

import pytest

from kproxy.agent import translate
from kproxy.agent.addresses import LocalTraffic, local_traffic
from kproxy.agent.config import ConfigError, load_config, parse_config
from kproxy.agent.state import ProxyState
from kproxy.agent.tracker import ProxyStateBuilder, StateSettings
from kproxy.iptables.render import render as iptables_render
from kproxy.iptables.trace import trace
from kproxy.ipvs import nfrules
from kproxy.ipvs.render import render as ipvs_render
from kproxy.nftables import render as nft
from tests.golden import iptables_services as fx

HEADER = {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration"}


def state(**kw) -> ProxyState:
    return ProxyState("n", cluster_cidr=kw.pop("cluster_cidr", "10.244.0.0/16"), **kw)


def test_each_mode_picks_its_detector():
    assert local_traffic(state()) == LocalTraffic(cidr="10.244.0.0/16")
    assert local_traffic(state(detect_local_mode="NodeCIDR", node_pod_cidrs=("fd00::/64", "10.244.1.0/24"))) \
        == LocalTraffic(cidr="10.244.1.0/24")
    assert local_traffic(state(detect_local_mode="BridgeInterface", detect_local_interface="cbr0")) \
        == LocalTraffic(interface="cbr0")
    assert local_traffic(state(detect_local_mode="InterfaceNamePrefix", detect_local_interface="veth")) \
        == LocalTraffic(interface="veth", prefix=True)


def test_a_detector_without_its_input_detects_nothing():
    assert local_traffic(state(cluster_cidr=None)) is None
    assert local_traffic(state(detect_local_mode="NodeCIDR")) is None  # the Node has no podCIDRs (yet)


def test_iptables_matches():
    assert LocalTraffic(cidr="10.244.0.0/16").iptables_match(negate=True) == "! -s 10.244.0.0/16"
    assert LocalTraffic(interface="cbr0").iptables_match() == "-i cbr0"
    assert LocalTraffic(interface="veth", prefix=True).iptables_match(negate=True) == "! -i veth+"


def test_config_reads_detect_local_mode_and_its_inputs():
    cfg = parse_config({**HEADER, "detectLocalMode": "InterfaceNamePrefix",
                        "detectLocal": {"interfaceNamePrefix": "veth", "bridgeInterface": "cbr0"}})
    assert cfg.detect_local_mode == "InterfaceNamePrefix" and cfg.detect_local_interface == "veth"
    assert parse_config({**HEADER, "detectLocalMode": ""}).detect_local_mode == "ClusterCIDR"
    flags = load_config(None, {"detect_local_mode": "BridgeInterface", "pod_bridge_interface": "cbr0"})
    assert flags.detect_local_interface == "cbr0"


@pytest.mark.parametrize("doc, message", [
    ({"detectLocalMode": "PodCIDR"}, "detectLocalMode: must be one of ClusterCIDR, NodeCIDR"),
    ({"detectLocalMode": "BridgeInterface"}, "detectLocal.bridgeInterface: required when detectLocalMode is BridgeInterface"),
    ({"detectLocalMode": "InterfaceNamePrefix", "detectLocal": {"interfaceNamePrefix": ""}},
     "detectLocal.interfaceNamePrefix: required"),
    ({"detectLocal": {"bridgeInterface": "a b"}}, "detectLocal.bridgeInterface: invalid interface name"),
    ({"detectLocal": {"nope": "x"}}, "detectLocal.nope: unknown field"),
])
def test_config_errors_name_the_field(tmp_path, doc, message):
    path = tmp_path / "c.yaml"
    import yaml
    path.write_text(yaml.safe_dump({**HEADER, **doc}))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(str(path))


def test_node_pod_cidrs_come_from_the_node_spec_and_a_change_is_a_full_sync():
    node = {"metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.244.1.0/24", "bogus", "fd00:1::/64"]}}
    assert translate.node_pod_cidrs(node) == ("10.244.1.0/24", "fd00:1::/64")
    assert translate.node_pod_cidrs({"spec": {"podCIDR": "10.244.2.0/24"}}) == ("10.244.2.0/24",)
    assert translate.node_pod_cidrs(None) == ()
    b = ProxyStateBuilder(StateSettings(node_name="n", detect_local_mode="NodeCIDR"))
    b.build_state()
    b.node.on_add(node)
    r = b.build_state()
    assert r.changes.full and local_traffic(r.state) == LocalTraffic(cidr="10.244.1.0/24")


# ------------------------------------------------------------------ every mode's rules

PREFIX = dict(detect_local_mode="InterfaceNamePrefix", detect_local_interface="veth", cluster_cidr=None)


def test_iptables_pod_traffic_is_told_by_its_interface():
    rs = iptables_render(fx.state(**PREFIX))
    # a packet from a pod's veth keeps its source; the same address arriving on eth0 is masqueraded
    from_pod = trace(rs, fx.LOCAL_POD, "10.96.0.10", 80, iif="veth3")
    from_outside = trace(rs, fx.LOCAL_POD, "10.96.0.10", 80, iif="eth0")
    assert set(from_pod.masquerade.values()) == {False} and set(from_outside.masquerade.values()) == {True}
    # pod traffic to an externalTrafficPolicy=Local external IP short-circuits to every endpoint
    assert trace(rs, fx.LOCAL_POD, "192.0.2.10", 80, iif="veth3").endpoints == {"10.244.1.4:8080", "10.244.2.4:8080"}
    assert trace(rs, fx.EXTERNAL_CLIENT, "192.0.2.10", 80, iif="eth0").endpoints == {"10.244.1.4:8080"}


def test_nftables_rules_match_the_interface():
    rs = nft.render(fx.state(detect_local_mode="BridgeInterface", detect_local_interface="cbr0", cluster_cidr=None))
    texts = [rule.text for chain in rs.chains.values() for rule in chain.rules]
    assert any('iifname != "cbr0" jump mark-for-masquerade' in t for t in texts)
    assert any(t.startswith('iifname "cbr0" goto service-') for t in texts)
    prefix = nft.render(fx.state(**PREFIX))
    assert any('iifname != "veth*"' in rule.text for chain in prefix.chains.values() for rule in chain.rules)


def test_nftables_iifname_encoding():
    from kproxy.nftables import expr as x
    exact, wildcard = x.iifname("cbr0"), x.iifname("veth", prefix=True, negate=True)
    assert exact.exprs[1][1][2][1][0][1] == b"cbr0".ljust(16, b"\0")  # whole name, NUL-padded
    assert wildcard.exprs[1][1][2][1][0][1] == b"veth"  # only the prefix's bytes
    assert wildcard.exprs[1][1][1][1] == (1).to_bytes(4, "big")  # NEQ


def test_ipvs_masquerades_cluster_ip_traffic_not_from_pods():
    text = nfrules.restore_text(ipvs_render(fx.state(**PREFIX)).netfilter)
    assert "-A KUBE-IPVS-SERVICES ! -i veth+ -m set --match-set KUBE-IPVS-CLUSTER-IP dst,dst -j MARK" in text
    text = nfrules.restore_text(ipvs_render(fx.state(detect_local_mode="NodeCIDR", node_pod_cidrs=("10.244.1.0/24",))).netfilter)
    assert "-A KUBE-IPVS-SERVICES ! -s 10.244.1.0/24 -m set" in text
